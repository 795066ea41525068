package env

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const baseID = "sha256:1111111111111111111111111111111111111111111111111111111111111111"

func TestKeyIsStable(t *testing.T) {
	spec := Spec{Pip: []string{"numpy", "scipy>=1.10"}, Apt: []string{"jq"}}
	src := Sources{DebianMirror: "http://deb.debian.org/debian", PipIndexURL: "https://pypi.example/simple"}
	k := Key(baseID, spec, src)
	assert.Len(t, k, 64)
	assert.Equal(t, k, Key(baseID, Spec{Pip: []string{"scipy>=1.10", "numpy"}, Apt: []string{"jq", "jq"}}, src),
		"the order and repetition the user wrote do not matter")
	// The canonical encoding is part of the on-disk contract: images are
	// named by it. Changing it must come with a new KeyVersion.
	assert.Equal(t, "6446e8649183f66c84d24927b190de26245ff18808fe9a6b04f7bfafff9df3fe", k)
	assert.Equal(t, k[:12], Short(k))
	assert.Equal(t, "ferry/env:"+k, ImageName(k))
}

func TestKeyChangesWithEveryInput(t *testing.T) {
	spec := Spec{Pip: []string{"numpy", "scipy>=1.10"}, Apt: []string{"jq"}}
	src := Sources{DebianMirror: "http://deb.debian.org/debian", PipIndexURL: "https://pypi.example/simple"}
	withWheels := src
	withWheels.PipFindLinks, withWheels.WheelhouseDigest = "/srv/wheels", "aaaa"
	otherWheels := withWheels
	otherWheels.WheelhouseDigest = "bbbb"
	movedWheels := withWheels
	movedWheels.PipFindLinks = "/data/wheels"
	sdist := src
	sdist.PipAllowSdist = true

	keys := map[string]string{
		"reference":             Key(baseID, spec, src),
		"base image":            Key("sha256:2222222222222222222222222222222222222222222222222222222222222222", spec, src),
		"first requirement":     Key(baseID, Spec{Pip: []string{"numpy==1.26.4", "scipy>=1.10"}, Apt: spec.Apt}, src),
		"second requirement":    Key(baseID, Spec{Pip: []string{"numpy", "scipy>=1.11"}, Apt: spec.Apt}, src),
		"added requirement":     Key(baseID, Spec{Pip: []string{"numpy", "pandas", "scipy>=1.10"}, Apt: spec.Apt}, src),
		"removed requirement":   Key(baseID, Spec{Pip: []string{"numpy"}, Apt: spec.Apt}, src),
		"apt package":           Key(baseID, Spec{Pip: spec.Pip, Apt: []string{"jq", "curl"}}, src),
		"apt pin":               Key(baseID, Spec{Pip: spec.Pip, Apt: []string{"jq=1.6-2.1"}}, src),
		"pip line moved to apt": Key(baseID, Spec{Pip: []string{"numpy"}, Apt: []string{"jq", "scipy>=1.10"}}, src),
		"debian mirror":         Key(baseID, spec, Sources{DebianMirror: "http://mirror.example/debian", PipIndexURL: src.PipIndexURL}),
		"pip index":             Key(baseID, spec, Sources{DebianMirror: src.DebianMirror, PipIndexURL: "https://other.example/simple"}),
		"wheelhouse added":      Key(baseID, spec, withWheels),
		"wheelhouse content":    Key(baseID, spec, otherWheels),
		"sdists allowed":        Key(baseID, spec, sdist),
	}
	seen := map[string]string{}
	for what, k := range keys {
		if other, dup := seen[k]; dup {
			t.Errorf("changing %q gives the same key as %q", what, other)
		}
		seen[k] = what
	}
	assert.Equal(t, Key(baseID, spec, withWheels), Key(baseID, spec, movedWheels),
		"the wheelhouse counts by its content, not where it sits")
	aptOnly := Spec{Apt: []string{"jq"}}
	assert.Equal(t, Key(baseID, aptOnly, src), Key(baseID, aptOnly, otherWheels),
		"pip sources do not count for an environment without pip requirements")
	assert.NotEqual(t, Key(baseID, aptOnly, src), Key(baseID, aptOnly, Sources{DebianMirror: "http://mirror.example/debian"}))
}

func TestHashWheelhouse(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) {
		// as an admin would: a new file renamed into place
		tmp := filepath.Join(dir, ".tmp-"+name)
		require.NoError(t, os.WriteFile(tmp, []byte(content), 0o644))
		require.NoError(t, os.Rename(tmp, filepath.Join(dir, name)))
	}
	write("a-1.0-py3-none-any.whl", "aaaa")
	write("b-1.0-py3-none-any.whl", "bbbb")
	require.NoError(t, os.Mkdir(filepath.Join(dir, "sub"), 0o755))

	h1, err := HashWheelhouse(dir)
	require.NoError(t, err)
	h1again, err := HashWheelhouse(dir)
	require.NoError(t, err)
	assert.Equal(t, h1, h1again)

	require.NoError(t, os.WriteFile(filepath.Join(dir, ".index.lock"), []byte("x"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "sub", "c.whl"), []byte("x"), 0o644))
	h, _ := HashWheelhouse(dir)
	assert.Equal(t, h1, h, "dot files and subdirs are not read by pip and do not count")

	write("b-1.0-py3-none-any.whl", "BBBB") // same name, same size, other content
	h2, _ := HashWheelhouse(dir)
	assert.NotEqual(t, h1, h2)

	require.NoError(t, os.Rename(filepath.Join(dir, "b-1.0-py3-none-any.whl"), filepath.Join(dir, "b-1.1-py3-none-any.whl")))
	h3, _ := HashWheelhouse(dir)
	assert.NotEqual(t, h2, h3, "a renamed wheel counts")

	write("c-1.0-py3-none-any.whl", "cc")
	h4, _ := HashWheelhouse(dir)
	assert.NotEqual(t, h3, h4, "an added wheel counts")

	_, err = HashWheelhouse(filepath.Join(dir, "missing"))
	assert.ErrorContains(t, err, "read wheelhouse: ")
}

func TestSourcesValidate(t *testing.T) {
	assert.NoError(t, Sources{DebianMirror: "http://deb.debian.org/debian", PipIndexURL: "https://pypi.example/simple/", PipFindLinks: "/srv/wheels"}.Validate())
	assert.NoError(t, Sources{}.Validate())
	err := Sources{
		DebianMirror: "ftp://x",
		PipIndexURL:  "https://user:secret@pypi.example/simple",
		PipFindLinks: "wheels",
	}.Validate()
	require.Error(t, err)
	assert.Equal(t, `debian mirror: "ftp://x": must be an http:// or https:// URL`+"\n"+
		`pip_index_url: "https://user:xxxxx@pypi.example/simple": must not contain credentials (they would be recorded in every environment image)`+"\n"+
		`pip_find_links "wheels": must be an absolute path to a wheelhouse dir`, err.Error())
	assert.ErrorContains(t, Sources{DebianMirror: "http://x/debian main\ndeb http://evil"}.Validate(), "spaces, quotes and control characters are not allowed")
}
