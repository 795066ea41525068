package output_test

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/cmd/output"
)

var (
	header = []string{"ID", "STATE", "PROJECT"}
	rows   = [][]string{
		{"01hqx513r0", "running", "vision"},
		{"01hqx1k840", "out_of_memory", "nlp"},
	}
)

func TestTable(t *testing.T) {
	tests := []struct {
		name string
		tty  bool
		rows [][]string
		want string
	}{
		{
			name: "terminal: aligned, with a header",
			tty:  true,
			rows: rows,
			want: "ID          STATE          PROJECT\n" +
				"01hqx513r0  running        vision\n" +
				"01hqx1k840  out_of_memory  nlp\n",
		},
		{
			name: "pipe: tab-separated, no header",
			rows: rows,
			want: "01hqx513r0\trunning\tvision\n01hqx1k840\tout_of_memory\tnlp\n",
		},
		{name: "terminal, no rows: header only", tty: true, want: "ID  STATE  PROJECT\n"},
		{name: "pipe, no rows: nothing", want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, output.Table(&b, tt.tty, header, tt.rows))
			assert.Equal(t, tt.want, b.String())
		})
	}
}

type failWriter struct{}

func (failWriter) Write([]byte) (int, error) { return 0, errors.New("broken pipe") }

func TestTableWriteError(t *testing.T) {
	assert.EqualError(t, output.Table(failWriter{}, false, header, rows), "broken pipe")
	assert.EqualError(t, output.Table(failWriter{}, true, header, rows), "broken pipe")
}

func TestWriteJSON(t *testing.T) {
	var b bytes.Buffer
	require.NoError(t, output.WriteJSON(&b, map[string]any{"id": "01ab", "n": 1}))
	assert.Equal(t, "{\n  \"id\": \"01ab\",\n  \"n\": 1\n}\n", b.String())
}

func TestOutputFlag(t *testing.T) {
	tests := []struct {
		args    []string
		want    output.Format
		wantErr string
	}{
		{args: nil, want: output.Text},
		{args: []string{"-o", "json"}, want: output.JSON},
		{args: []string{"--output", "text"}, want: output.Text},
		{args: []string{"-o=json"}, want: output.JSON},
		{args: []string{"-o", "yaml"}, wantErr: `unknown output format "yaml": use text or json`},
		{args: []string{"-o", "JSON"}, wantErr: `unknown output format "JSON"`},
		{args: []string{"-o", ""}, wantErr: `unknown output format ""`},
	}
	for _, tt := range tests {
		t.Run(string(tt.want)+tt.wantErr, func(t *testing.T) {
			var f output.Format
			ran := false
			cmd := &cobra.Command{Use: "ls", RunE: func(*cobra.Command, []string) error { ran = true; return nil }}
			output.AddFlag(cmd, &f)
			cmd.SetArgs(tt.args)
			cmd.SetOut(io.Discard)
			cmd.SetErr(io.Discard)
			err := cmd.Execute()
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				assert.False(t, ran)
				return
			}
			require.NoError(t, err)
			assert.True(t, ran)
			assert.Equal(t, tt.want, f)
		})
	}
}

func TestOutputFlagHelp(t *testing.T) {
	var f output.Format
	cmd := &cobra.Command{Use: "ls"}
	output.AddFlag(cmd, &f)
	fl := cmd.Flags().Lookup("output")
	require.NotNil(t, fl)
	assert.Equal(t, "o", fl.Shorthand)
	assert.Equal(t, "text", fl.DefValue)
	assert.Equal(t, "format", fl.Value.Type())
	assert.Contains(t, fl.Usage, "text or json")
}

func TestAgo(t *testing.T) {
	now := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		t    time.Time
		tty  bool
		want string
	}{
		{"zero", time.Time{}, true, "-"},
		{"zero, pipe", time.Time{}, false, "-"},
		{"seconds", now.Add(-42 * time.Second), true, "42s ago"},
		{"just now", now, true, "0s ago"},
		{"minutes", now.Add(-5*time.Minute - 30*time.Second), true, "5m ago"},
		{"hours", now.Add(-3 * time.Hour), true, "3h ago"},
		{"47 hours", now.Add(-47 * time.Hour), true, "47h ago"},
		{"days", now.Add(-72 * time.Hour), true, "3d ago"},
		{"pipe: RFC 3339 in UTC", time.Date(2024, 3, 10, 13, 0, 0, 0, time.FixedZone("CET", 3600)), false, "2024-03-10T12:00:00Z"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, output.Ago(tt.t, now, tt.tty))
		})
	}
}

func TestDuration(t *testing.T) {
	start := time.Date(2024, 3, 10, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		from, to time.Time
		want     string
	}{
		{"not started", time.Time{}, start, "-"},
		{"not ended", start, time.Time{}, "-"},
		{"sub-second", start, start.Add(1234567 * time.Microsecond), "1.23s"},
		{"seconds", start, start.Add(42 * time.Second), "42s"},
		{"minutes", start, start.Add(5*time.Minute + 3*time.Second + 400*time.Millisecond), "5m3s"},
		{"hours", start, start.Add(26 * time.Hour), "26h0m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, output.Duration(tt.from, tt.to))
		})
	}
}

func TestEscape(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "train resnet", "train resnet"},
		{"empty", "", ""},
		{"unicode letters print", "Übung 数据 ✓", "Übung 数据 ✓"},
		{"a backslash alone is literal", `lr\d`, `lr\d`},
		{"newline", "a\nb", `"a\nb"`},
		{"tab", "a\tb", `"a\tb"`},
		{"carriage return", "50%\r100%", `"50%\r100%"`},
		{"terminal escape", "\x1b[2J\x1b[31mred", `"\x1b[2J\x1b[31mred"`},
		{"bell and NUL", "\a\x00", `"\a\x00"`},
		{"DEL", "a\x7fb", `"a\x7fb"`},
		{"C1 CSI", "a\u009b31mb", `"a\u009b31mb"`},
		{"bidi override", "abc\u202edcba", `"abc\u202edcba"`},
		{"invalid UTF-8", "a\xffb", `"a\xffb"`},
		{"quote and backslash escaped once quoted", "\"x\\\n", `"\"x\\\n"`},
		{"a leading quote is quoted, never mistaken for an escape", `"a\nb"`, `"\"a\\nb\""`},
		{"a quote inside is fine", `say "hi"`, `say "hi"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := output.Escape(tt.in)
			assert.Equal(t, tt.want, got)
			for _, r := range got {
				assert.False(t, r < ' ' || r == 0x7f || (r >= 0x80 && r < 0xa0), "control character %q left in %q", r, got)
			}
		})
	}
}

func TestCommand(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{nil, ""},
		{[]string{"python3", "main.py", "--lr=0.1"}, "python3 main.py --lr=0.1"},
		{[]string{"python3", "-c", "print(1)\nprint(2)"}, `python3 -c "print(1)\nprint(2)"`},
		{[]string{"echo", "two words", ""}, `echo "two words" ""`},
		{[]string{"sh", "-c", `it's "x"`}, `sh -c "it's \"x\""`},
		{[]string{"echo", "\x1b[2J"}, `echo "\x1b[2J"`},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, output.Command(tt.args), "%q", tt.args)
	}
}

// A job name with a tab, a newline or an escape sequence stays in its cell:
// one line per row, as many columns as the header, nothing raw reaches the
// terminal.
func TestTableEscapesCells(t *testing.T) {
	hostile := [][]string{
		{"01hqx513r0", "a\tb\nc", "\x1b[2Jgone"},
		{"01hqx1k840", "fine", "ok"},
	}
	tests := []struct {
		name string
		tty  bool
		want string
	}{
		{
			name: "terminal",
			tty:  true,
			want: "ID          STATE      PROJECT\n" +
				"01hqx513r0  \"a\\tb\\nc\"  \"\\x1b[2Jgone\"\n" +
				"01hqx1k840  fine       ok\n",
		},
		{
			name: "pipe",
			want: "01hqx513r0\t\"a\\tb\\nc\"\t\"\\x1b[2Jgone\"\n01hqx1k840\tfine\tok\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var b bytes.Buffer
			require.NoError(t, output.Table(&b, tt.tty, header, hostile))
			assert.Equal(t, tt.want, b.String())
			assert.NotContains(t, b.String(), "\x1b")
			if !tt.tty {
				for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
					assert.Len(t, strings.Split(l, "\t"), len(header), "line %q", l)
				}
			}
		})
	}
	var b bytes.Buffer
	require.NoError(t, output.Table(&b, true, []string{"#", "loss\x1b[0m"}, nil))
	assert.Equal(t, "#  \"loss\\x1b[0m\"\n", b.String(), "headers (metric names) are escaped too")
}

func TestExitCodes(t *testing.T) {
	assert.Equal(t, "Exit codes:\n"+
		"  0    success\n"+
		"  1    error (the message says what went wrong)\n"+
		"  2    bad flags, arguments or input files", output.ExitCodes())
	got := output.ExitCodes(factory.CodeNotFound)
	assert.Contains(t, got, "\n  4    no such job (or not one of yours)")
	assert.NotContains(t, got, "\n  5 ")
	assert.Equal(t, factory.ExitCodesHelp, output.ExitCodes(factory.CodeNotFound, factory.CodeSlurm), "all codes: the whole section")
}
