package config

import (
	"encoding/json"
	"strings"
	"testing"
)

func FuzzParseJobFile(f *testing.F) {
	for _, seed := range []string{
		fullJobFile,
		"",
		"command: [python3, main.py]\n",
		"command: \"python3 'a b' \\\"c\\\"\"\n",
		"params: {a: 1, 2: b, c: [1.5, .inf], d: 2024-01-01, e: !!binary aGk=}\n",
		"params:\n  base: &b {x: 1}\n  m:\n    <<: *b\n    y: [*b, *b]\n",
		"params: &a {x: *a}\n",
		"params:\n  ? [a]\n  : 1\n",
		"params: {1: a, \"1\": b}\n",
		"cpu: 1\n",
		"cpus: many\n",
		"name: a\n---\nname: b\n",
		"name: [\n",
		"- a\n",
		"env: {A: 1, B: [x]}\n",
		"mem: 4X\ntime: 0\n",
		"a: &a [*a, *a, *a]\nb: &b [*a, *a, *a]\n",
		"command:\n  - python3\n  - ~\n",
		"params: {a: !!float x}\n",
		"params: !!map {? !!seq [a] : b}\n",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		jf, err := ParseJobFile("job.yaml", data)
		if err != nil {
			if jf != nil {
				t.Fatalf("both a JobFile and an error: %v", err)
			}
			for _, line := range strings.Split(err.Error(), "\n") {
				if !strings.HasPrefix(line, "job.yaml") {
					t.Fatalf("error line does not name the file: %q", line)
				}
			}
			return
		}
		if jf == nil {
			t.Fatal("no JobFile and no error")
		}
		if _, err := json.Marshal(jf.Params); err != nil {
			t.Fatalf("params do not marshal to JSON: %v (%#v)", err, jf.Params)
		}
	})
}
