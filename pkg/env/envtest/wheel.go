// Package envtest writes what tests of environments need: wheels.
package envtest

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// WriteWheel writes a pure-Python wheel NAME-VERSION-py3-none-any.whl into
// dir with the given files (path -> content) and Requires-Dist lines: what
// pip installs from a wheelhouse, made without pip or setuptools.
func WriteWheel(t testing.TB, dir, name, version string, files map[string]string, requires ...string) {
	t.Helper()
	distInfo := fmt.Sprintf("%s-%s.dist-info", name, version)
	var meta strings.Builder
	fmt.Fprintf(&meta, "Metadata-Version: 2.1\nName: %s\nVersion: %s\nSummary: ferry's test wheel\n", name, version)
	for _, r := range requires {
		fmt.Fprintf(&meta, "Requires-Dist: %s\n", r)
	}
	all := map[string]string{
		distInfo + "/METADATA": meta.String(),
		distInfo + "/WHEEL":    "Wheel-Version: 1.0\nGenerator: ferry-test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
	}
	for p, c := range files {
		all[p] = c
	}
	names := make([]string, 0, len(all))
	for p := range all {
		names = append(names, p)
	}
	slices.Sort(names)
	var record strings.Builder
	for _, p := range names {
		sum := sha256.Sum256([]byte(all[p]))
		fmt.Fprintf(&record, "%s,sha256=%s,%d\n", p, base64.RawURLEncoding.EncodeToString(sum[:]), len(all[p]))
	}
	fmt.Fprintf(&record, "%s/RECORD,,\n", distInfo)
	all[distInfo+"/RECORD"] = record.String()
	names = append(names, distInfo+"/RECORD")

	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, p := range names {
		w, err := zw.CreateHeader(&zip.FileHeader{Name: p, Method: zip.Deflate,
			Modified: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)})
		require.NoError(t, err)
		_, err = w.Write([]byte(all[p]))
		require.NoError(t, err)
	}
	require.NoError(t, zw.Close())
	require.NoError(t, os.WriteFile(filepath.Join(dir, fmt.Sprintf("%s-%s-py3-none-any.whl", name, version)), buf.Bytes(), 0o644))
}
