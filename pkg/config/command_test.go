package config

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSplitCommand(t *testing.T) {
	tests := []struct {
		in      string
		want    []string
		wantErr string
	}{
		{in: "", want: nil},
		{in: "  \t ", want: nil},
		{in: "python3 main.py", want: []string{"python3", "main.py"}},
		{in: "  python3   main.py\t--x 1 ", want: []string{"python3", "main.py", "--x", "1"}},
		{in: `python3 main.py --x 'a b'`, want: []string{"python3", "main.py", "--x", "a b"}},
		{in: `echo "a b" 'c "d"' "e 'f'"`, want: []string{"echo", "a b", `c "d"`, "e 'f'"}},
		{in: `echo a\ b \'c\' \\`, want: []string{"echo", "a b", "'c'", `\`}},
		{in: `echo "a\"b" "x\\y" "\$HOME" "\n"`, want: []string{"echo", `a"b`, `x\y`, "$HOME", `\n`}},
		{in: `echo 'no \escapes $here'`, want: []string{"echo", `no \escapes $here`}},
		{in: `echo '' ""`, want: []string{"echo", "", ""}},
		{in: `a'b'"c"d`, want: []string{"abcd"}},
		{in: "python3 a.py \\\n  --b", want: []string{"python3", "a.py", "--b"}},
		{in: "python3 *.py ~/x --lr=[1,2] a#b", want: []string{"python3", "*.py", "~/x", "--lr=[1,2]", "a#b"}},
		{in: `python3 -c "print('é')"`, want: []string{"python3", "-c", "print('é')"}},
		{in: `env 'X=1' python`, want: []string{"env", "X=1", "python"}},
		{in: `'X=1' python`, want: []string{"X=1", "python"}},
		{in: `python 'a`, wantErr: "unbalanced single quote at character 8"},
		{in: `python "a`, wantErr: "unbalanced double quote at character 8"},
		{in: `python a\`, wantErr: "the command ends with a backslash"},
		{in: "python a.py > out.txt", wantErr: `">" at character 13 is shell syntax, but the command runs without a shell`},
		{in: "make && make test", wantErr: `"&" at character 6 is shell syntax`},
		{in: "a | b", wantErr: `"|" at character 3 is shell syntax`},
		{in: "echo $HOME", wantErr: `"$" at character 6 is shell syntax`},
		{in: "echo `date`", wantErr: "\"`\" at character 6 is shell syntax"},
		{in: "python a.py # comment", wantErr: `"#" at character 13 is shell syntax`},
		{in: `echo "$HOME"`, wantErr: `"$" inside double quotes would be expanded by a shell`},
		{in: "a.py\nb.py", wantErr: "the command spans more than one line"},
		{in: "FOO=1 python a.py", wantErr: `"FOO=1" looks like a shell variable assignment`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := SplitCommand(tt.in)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				assert.Nil(t, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}
