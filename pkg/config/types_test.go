package config

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func TestSizeYAML(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{in: `256M`, want: 256 << 20},
		{in: `"1G"`, want: 1 << 30},
		{in: `1.5G`, want: 3 << 29},
		{in: `512k`, want: 512 << 10},
		{in: `"256"`, want: 256 << 20}, // a string: Slurm's notation, megabytes
		{in: `1048576`, want: 1 << 20}, // an integer: bytes
		{in: `0x100000`, want: 1 << 20},
		{in: `-5`, want: -5}, // Validate refuses it
		{in: `lots`, wantErr: `line 1: column 4: invalid memory size "lots": want a size such as 512M or 4G`},
		{in: `1.5`, wantErr: `line 1: column 4: want a size such as 256M or 1G, or a whole number of bytes, got 1.5`},
		{in: `[1]`, wantErr: `line 1: column 4: want a size such as 256M or 1G, got a list`},
		{in: `99999999999999999999`, wantErr: `want a size such as 256M or 1G, or a whole number of bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var v struct {
				S Size `yaml:"s"`
			}
			err := yaml.Unmarshal([]byte("s: "+tt.in), &v)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, v.S)
		})
	}
}

func TestSizeStringAndRoundTrip(t *testing.T) {
	for _, s := range []Size{256 << 20, 1 << 30, 3 << 29, 512 << 10, 1000, 1 << 40} {
		out, err := yaml.Marshal(map[string]Size{"s": s})
		require.NoError(t, err)
		var back map[string]Size
		require.NoError(t, yaml.Unmarshal(out, &back))
		assert.Equal(t, s, back["s"], "round trip of %s via %q", s, out)
	}
	assert.Equal(t, "256M", Size(256<<20).String())
	assert.Equal(t, "1536M", Size(3<<29).String())
	assert.Equal(t, "1000 bytes", Size(1000).String())
}

func TestDurationYAML(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: `5s`, want: 5 * time.Second},
		{in: `"1m30s"`, want: 90 * time.Second},
		{in: `0`, want: 0},
		{in: `-1s`, want: -time.Second}, // Validate refuses it
		{in: `5`, wantErr: `line 1: column 4: 5 has no unit: write a duration such as 5s`},
		{in: `soon`, wantErr: `line 1: column 4: invalid duration "soon": want a duration such as 5s or 1m30s`},
		{in: `true`, wantErr: `want a duration such as 5s, got true`},
		{in: `{a: 1}`, wantErr: `want a duration such as 5s, got a mapping`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			var v struct {
				D Duration `yaml:"d"`
			}
			err := yaml.Unmarshal([]byte("d: "+tt.in), &v)
			if tt.wantErr != "" {
				assert.ErrorContains(t, err, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, v.D.Duration())
		})
	}
	out, err := yaml.Marshal(map[string]Duration{"d": Duration(90 * time.Second)})
	require.NoError(t, err)
	assert.Equal(t, "d: 1m30s\n", string(out))
}

// yamlFields returns every yaml path of Config with a pointer to its field.
func yamlFields(v reflect.Value, prefix string, out map[string]any) {
	t := v.Type()
	for i := range t.NumField() {
		key := yamlKey(t.Field(i))
		if key == "" {
			continue
		}
		path := joinPath(prefix, key)
		f := v.Field(i)
		if f.Kind() == reflect.Struct {
			yamlFields(f, path, out)
			continue
		}
		out[path] = f.Addr().Interface()
	}
}

func TestReferenceCoversEveryField(t *testing.T) {
	c := Default()
	want := map[string]any{}
	yamlFields(reflect.ValueOf(c).Elem(), "", want)
	require.Len(t, want, 46)

	ref := Reference()
	for path, ptr := range want {
		assert.Contains(t, ref, "| `"+path+"` |", "Reference lacks %s", path)
		f := fieldByKey(path)
		if assert.NotNil(t, f, "the field table lacks %s", path) {
			assert.Equal(t, ptr, f.ptr(c), "the table's pointer for %s points at another field", path)
			assert.NotEmpty(t, f.meaning)
		}
	}
	for _, f := range fields {
		if f.key != "" {
			assert.Contains(t, want, f.key, "the table has %s, which Config lacks", f.key)
		}
	}
	lines := strings.Split(strings.TrimSpace(ref), "\n")
	assert.Len(t, lines, len(fields)+2)
	for _, l := range lines {
		assert.Equal(t, 6, strings.Count(l, "|")-strings.Count(l, `\|`), "malformed row %q", l)
	}
}

func TestReferenceRows(t *testing.T) {
	ref := Reference()
	assert.Contains(t, ref, "| `max_bundle` | `FERRY_MAX_BUNDLE` | `256M` | admin; users may lower it |")
	assert.Contains(t, ref, "| `images` | — | `[default_image]` | admin |")
	assert.Contains(t, ref, "| `scratch_dir` | `FERRY_SCRATCH_DIR` | `/var/tmp/ferry` | admin |")
	assert.Contains(t, ref, "| `stop_grace` | — | `5s` | anyone |")
	assert.Contains(t, ref, "| — | `FERRY_CONFIG` | `/etc/ferry/config.yaml` | anyone |")
}

// Every variable in the table is applied by applyEnv.
func TestEveryVariableApplies(t *testing.T) {
	values := map[string]string{
		"FERRY_SPOOL_ROOT": "/s", "FERRY_DEFAULT_IMAGE": "i:1", "FERRY_MAX_BUNDLE": "1M",
		"FERRY_SCRATCH_DIR": "/sc", "FERRY_AGENT_SOCKET": "/a.sock", "FERRY_REDIS_ADDR": "r:1",
		"FERRY_REDIS_PASSWORD_FILE": "/pw", "FERRY_DASHBOARD_URL": "https://d.example",
	}
	c := Default()
	require.NoError(t, c.applyEnv(values, true))
	for _, f := range fields {
		if f.env == "" || f.key == "" {
			continue
		}
		v, ok := values[f.env]
		require.True(t, ok, "test lacks a value for %s", f.env)
		want := any(v)
		if _, ok := f.value(c).(Size); ok {
			s, err := ParseSize(v)
			require.NoError(t, err)
			want = s
		}
		assert.Equal(t, want, f.value(c), f.env)
	}
}
