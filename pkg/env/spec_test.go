package env

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseRequirementsAccepts(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
	}{
		{"plain name", "numpy\n", []string{"numpy"}},
		{"PEP 503 normalisation", "Foo_Bar.baz>=1.0\nZOPE..Interface\n", []string{"foo-bar-baz>=1.0", "zope-interface"}},
		{"extras and specifiers sorted, spaces dropped", "requests[Socks, security] >= 2.31 , <3\n",
			[]string{"requests[security,socks]<3,>=2.31"}},
		{"parenthesised specifiers", "pandas (>=2.0)\n", []string{"pandas>=2.0"}},
		{"wildcard, arbitrary equality, compatible release", "scipy==1.11.*\nattrs===23.1.0\nrich~=13.0\n",
			[]string{"attrs===23.1.0", "rich~=13.0", "scipy==1.11.*"}},
		{"markers kept, whitespace collapsed", "Django>=4.2 ;  sys_platform == \"linux\"  and python_version>=\"3.8\"\ntomli; python_version < '3.11'\n",
			[]string{`django>=4.2; sys_platform == "linux" and python_version>="3.8"`, `tomli; python_version < '3.11'`}},
		{"comments and blank lines", "# the project's needs\n\nnumpy  # arrays\n   \n\t# indented comment\nscipy\n",
			[]string{"numpy", "scipy"}},
		{"backslash continuation", "scipy \\\n  >=1.10\n", []string{"scipy>=1.10"}},
		{"CRLF and a byte order mark", "\ufeffnumpy\r\nscipy\r\n", []string{"numpy", "scipy"}},
		{"sorted and deduplicated", "zlib-ng\nNumPy\nnumpy\nabc\n", []string{"abc", "numpy", "zlib-ng"}},
		{"empty file", "", nil},
		{"last line without newline", "numpy", []string{"numpy"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequirements(strings.NewReader(tt.in))
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestParseRequirementsRefuses(t *testing.T) {
	const (
		optionMsg  = `: packages come only from the cluster's package sources, so name packages and versions only`
		insteadMsg = `: name a package and version from the cluster's package sources instead`
	)
	tests := []struct {
		in   string
		want string
	}{
		{"# header\n\n-i https://pypi.org/simple\n", `requirements.txt line 3: option "-i" is not allowed` + optionMsg},
		{"--index-url=https://pypi.org/simple\n", `requirements.txt line 1: option "--index-url" is not allowed` + optionMsg},
		{"numpy\n--extra-index-url https://evil.example/simple\n", `requirements.txt line 2: option "--extra-index-url" is not allowed` + optionMsg},
		{"-f ./wheels\n", `requirements.txt line 1: option "-f" is not allowed` + optionMsg},
		{"--find-links=/tmp/wheels\n", `requirements.txt line 1: option "--find-links" is not allowed` + optionMsg},
		{"-e .\n", `requirements.txt line 1: option "-e" is not allowed` + optionMsg},
		{"--editable git+https://github.com/x/y\n", `requirements.txt line 1: option "--editable" is not allowed` + optionMsg},
		{"-r other.txt\n", `requirements.txt line 1: option "-r" is not allowed` + optionMsg},
		{"-c constraints.txt\n", `requirements.txt line 1: option "-c" is not allowed` + optionMsg},
		{"--trusted-host evil.example\n", `requirements.txt line 1: option "--trusted-host" is not allowed` + optionMsg},
		{"numpy==1.26.4 --hash=sha256:abcd\n", `requirements.txt line 1: option "--hash" is not allowed` + optionMsg},
		{"foo @ https://example.com/foo-1.0.tar.gz\n",
			`requirements.txt line 1: "foo @ https://example.com/foo-1.0.tar.gz" is a direct reference (name @ URL)` + insteadMsg},
		{"foo[bar]@file:///tmp/foo\n", `requirements.txt line 1: "foo[bar]@file:///tmp/foo" is a direct reference (name @ URL)` + insteadMsg},
		{"git+https://github.com/psf/requests\n", `requirements.txt line 1: "git+https://github.com/psf/requests" is a URL` + insteadMsg},
		{"https://example.com/foo-1.0-py3-none-any.whl\n", `requirements.txt line 1: "https://example.com/foo-1.0-py3-none-any.whl" is a URL` + insteadMsg},
		{"./mypkg\n", `requirements.txt line 1: "./mypkg" is a local path` + insteadMsg},
		{".\n", `requirements.txt line 1: "." is a local path` + insteadMsg},
		{"/opt/src/pkg\n", `requirements.txt line 1: "/opt/src/pkg" is a local path` + insteadMsg},
		{"~/src/pkg\n", `requirements.txt line 1: "~/src/pkg" is a local path` + insteadMsg},
		{"src/pkg\n", `requirements.txt line 1: "src/pkg" is a local path` + insteadMsg},
		{"foo-1.0-py3-none-any.whl\n", `requirements.txt line 1: "foo-1.0-py3-none-any.whl" is a local path` + insteadMsg},
		{"foo=1\n", `requirements.txt line 1: cannot parse "foo=1": ` + pep508Hint},
		{"${TOKEN}pkg\n", `requirements.txt line 1: cannot parse "${TOKEN}pkg": ` + pep508Hint},
		{"foo; $(reboot)\n", `requirements.txt line 1: cannot parse the environment marker in "foo; $(reboot)": use markers such as python_version >= "3.10" or sys_platform == "linux"`},
		{"numpy \\\n --index-url x\n", `requirements.txt line 1: option "--index-url" is not allowed` + optionMsg},
		{strings.Repeat("a", 1001) + "\n", `requirements.txt line 1: line is longer than 1000 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			got, err := ParseRequirements(strings.NewReader(tt.in))
			require.Error(t, err)
			assert.Nil(t, got)
			assert.Equal(t, tt.want, err.Error())
			assert.NotContains(t, err.Error(), "\n", "one line per refused requirement")
		})
	}
}

func TestParseRequirementsNamesEveryBadLine(t *testing.T) {
	_, err := ParseRequirements(strings.NewReader("numpy\n-i https://x\nscipy\n./local\n"))
	require.Error(t, err)
	lines := strings.Split(err.Error(), "\n")
	require.Len(t, lines, 2)
	assert.True(t, strings.HasPrefix(lines[0], `requirements.txt line 2: option "-i"`), lines[0])
	assert.True(t, strings.HasPrefix(lines[1], `requirements.txt line 4: "./local" is a local path`), lines[1])
}

func TestValidateAptPackage(t *testing.T) {
	for _, ok := range []string{"jq", "python3-six", "libstdc++6", "g++", "r-base-core", "jq=1.6-2.1", "foo=1:2.3~rc1+dfsg-1", "0ad"} {
		assert.NoError(t, ValidateAptPackage(ok), ok)
	}
	const (
		meta   = `: shell metacharacters and spaces are not allowed: give Debian package names such as python3-six or jq=1.6-2.1`
		policy = `: not a Debian package name (lowercase letters, digits, "+", "-", ".", at least two characters), optionally pinned as name=version`
	)
	tests := []struct{ in, want string }{
		{"jq; rm -rf /", `apt package "jq; rm -rf /"` + meta},
		{"$(reboot)", `apt package "$(reboot)"` + meta},
		{"jq python3", `apt package "jq python3"` + meta},
		{"a|b", `apt package "a|b"` + meta},
		{"x`id`", "apt package \"x`id`\"" + meta},
		{"jq\n", `apt package "jq\n"` + meta},
		{"Jq", `apt package "Jq"` + policy},
		{"j", `apt package "j"` + policy},
		{"-oAPT::x=1", `apt package "-oAPT::x=1"` + policy},
		{"jq=", `apt package "jq="` + policy},
		{"jq=latest", `apt package "jq=latest"` + policy},
		{"jq:amd64", `apt package "jq:amd64"` + policy},
		{"jq/bookworm-backports", `apt package "jq/bookworm-backports"` + policy},
		{"", `apt package "": empty name`},
	}
	for _, tt := range tests {
		err := ValidateAptPackage(tt.in)
		if assert.Error(t, err, tt.in) {
			assert.Equal(t, tt.want, err.Error())
		}
	}
}

func TestNewSpec(t *testing.T) {
	s, err := NewSpec([]string{"SciPy >= 1.10", "numpy", "numpy"}, []string{"jq", "curl", "jq"})
	require.NoError(t, err)
	assert.Equal(t, Spec{Pip: []string{"numpy", "scipy>=1.10"}, Apt: []string{"curl", "jq"}}, s)
	assert.Equal(t, "pip: 2 packages, apt: 2 packages", s.Summary())
	assert.Equal(t, "apt: 1 package", Spec{Apt: []string{"jq"}}.Summary())

	_, err = NewSpec([]string{"numpy", "-e ."}, []string{"jq;id"})
	require.Error(t, err)
	assert.Equal(t, `pip requirement 2: option "-e" is not allowed: packages come only from the cluster's package sources, so name packages and versions only`+"\n"+
		`apt package "jq;id": shell metacharacters and spaces are not allowed: give Debian package names such as python3-six or jq=1.6-2.1`, err.Error())

	assert.Error(t, Spec{Apt: []string{"x y"}}.Validate())
	assert.NoError(t, Spec{Pip: []string{"numpy"}}.Validate())
}
