package docker

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/env"
	"github.com/ferry-hpc/ferry/pkg/env/envtest"
	"github.com/ferry-hpc/ferry/pkg/sandbox"
	sandboxdocker "github.com/ferry-hpc/ferry/pkg/sandbox/docker"
)

const e2eBase = "ferry/debian:bookworm"

// requireE2E runs a test against the real Docker Engine only when
// FERRY_E2E=1; under CI=true a missing FERRY_E2E or base image fails it.
func requireE2E(t *testing.T) *Engine {
	t.Helper()
	switch {
	case os.Getenv("FERRY_E2E") == "1":
	case os.Getenv("CI") == "true":
		t.Fatal("CI=true but FERRY_E2E is unset: run with FERRY_E2E=1 as root, with Docker and the image " + e2eBase + " (bash sandbox/build.sh)")
	default:
		t.Skip("real Docker: set FERRY_E2E=1 (as root, with Docker and the image " + e2eBase + ")")
	}
	eng, err := New()
	require.NoError(t, err)
	t.Cleanup(func() { _ = eng.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := eng.ImageInspect(ctx, e2eBase); err != nil {
		msg := fmt.Sprintf("image %s: %v: build it with `bash sandbox/build.sh` (debootstrap, about a minute)", e2eBase, err)
		if os.Getenv("CI") == "true" || !errors.Is(err, env.ErrImageNotFound) {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return eng
}

// TestRealEnvironment builds an environment with pip (a wheelhouse of two
// tiny wheels written here, one depending on the other) and apt (jq from
// the Debian mirror) on the real Docker Engine, runs it the way a sandbox
// runs (no network, read-only root, uid 65534), and checks the cache, a
// changed requirement and a failing build.
func TestRealEnvironment(t *testing.T) {
	eng := requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Minute)
	defer cancel()
	testStart := time.Now()

	wheels := t.TempDir()
	envtest.WriteWheel(t, wheels, "ferrydemo", "1.0", map[string]string{
		"ferrydemo/__init__.py": "import ferrydep\n\n\ndef hello():\n    return \"ferrydemo 1.0 uses ferrydep \" + ferrydep.VERSION\n",
	}, "ferrydep==1.0")
	envtest.WriteWheel(t, wheels, "ferrydep", "1.0", map[string]string{
		"ferrydep/__init__.py": "VERSION = \"1.0\"\n",
	})
	mirror := os.Getenv("FERRY_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	b, err := env.New(eng, env.Options{StateDir: t.TempDir(), Sources: env.Sources{DebianMirror: mirror, PipFindLinks: wheels}})
	require.NoError(t, err)

	spec, err := env.NewSpec([]string{"ferrydemo==1.0"}, []string{"jq"})
	require.NoError(t, err)
	changed, err := env.NewSpec([]string{"ferrydemo==1.0", `ferrydep==1.0; python_version >= "3"`}, []string{"jq"})
	require.NoError(t, err)
	broken, err := env.NewSpec(nil, []string{"ferry-no-such-package"})
	require.NoError(t, err)
	var keys []string
	for _, s := range []env.Spec{spec, changed, broken} {
		k, err := b.Key(ctx, s, e2eBase)
		require.NoError(t, err)
		keys = append(keys, k)
		// The wheels are byte-identical from run to run, so a run that
		// died before its cleanup left this image: start afresh.
		_ = eng.ImageRemove(ctx, env.ImageName(k))
	}
	t.Cleanup(func() {
		for _, k := range keys {
			_ = eng.ImageRemove(context.Background(), env.ImageName(k))
		}
	})

	// First Ensure: a build, its output in the job's log.
	var log1 bytes.Buffer
	t0 := time.Now()
	ref, err := b.Ensure(ctx, spec, e2eBase, &log1)
	firstBuild := time.Since(t0)
	require.NoError(t, err, log1.String())
	assert.Equal(t, env.ImageName(keys[0]), ref.Name)
	assert.True(t, strings.HasPrefix(log1.String(), "building environment "+env.Short(keys[0])+" (pip: 1 package, apt: 1 package)\n"), log1.String())
	assert.Contains(t, log1.String(), "Successfully installed ferrydemo-1.0 ferrydep-1.0")
	assert.Contains(t, log1.String(), "build network: "+hostPort(t, mirror)+" only, through ferry's egress proxy\n",
		"the build is confined to the mirror (the wheelhouse needs no network)")
	img, err := eng.ImageInspect(ctx, ref.Name)
	require.NoError(t, err)
	assert.Equal(t, ref.ID, img.ID)
	base, err := eng.ImageInspect(ctx, e2eBase)
	require.NoError(t, err)
	assert.Equal(t, keys[0], img.Labels[env.LabelKey])
	assert.Equal(t, base.ID, img.Labels[env.LabelBase])
	assert.Equal(t, `{"pip":["ferrydemo==1.0"],"apt":["jq"]}`, img.Labels[env.LabelSpec])

	// The sandbox's lockdown: no network, read-only root, nobody.
	out := runSandbox(t, ctx, ref.Name, `python3 -c 'import ferrydemo, os; print(ferrydemo.hello()); print("bytecode", os.path.exists(ferrydemo.__cached__))' &&
echo '{"a":[1,2]}' | jq -c .a &&
id -u &&
test ! -e /ferry-env && test ! -e /ferry-wheels && test -z "$(ls /var/lib/apt/lists | grep -v -x -e lock -e partial -e auxfiles)" && echo clean`)
	assert.Equal(t, "ferrydemo 1.0 uses ferrydep 1.0\nbytecode True\n[1,2]\n65534\nclean\n", out)

	// Second Ensure: found at once, not a word in the log.
	var log2 bytes.Buffer
	t1 := time.Now()
	ref2, err := b.Ensure(ctx, spec, e2eBase, &log2)
	cached := time.Since(t1)
	require.NoError(t, err)
	assert.Equal(t, ref, ref2)
	assert.Empty(t, log2.String())

	// A changed requirement: another key, another build; the apt layer
	// comes from the build cache.
	var log3 bytes.Buffer
	t2 := time.Now()
	ref3, err := b.Ensure(ctx, changed, e2eBase, &log3)
	rebuild := time.Since(t2)
	require.NoError(t, err, log3.String())
	assert.NotEqual(t, ref.Key, ref3.Key)
	assert.NotEqual(t, ref.ID, ref3.ID)
	assert.Contains(t, log3.String(), "building environment "+env.Short(keys[1]))
	assert.Regexp(t, `(?s)RUN \["/bin/sh", "/ferry-env/apt/env.sh", "apt"\]\n ---> Using cache\n.*COPY ferry-wheels /ferry-wheels\n ---> Using cache\n`, log3.String(),
		"the apt step and the wheelhouse's layer are shared with the first environment")
	assert.Equal(t, "1.0\n", runSandbox(t, ctx, ref3.Name, `python3 -c 'import ferrydep; print(ferrydep.VERSION)'`))

	// A failing build: the error carries the build's last lines, and the
	// next Ensure answers from the failure record without building.
	t3 := time.Now()
	_, err = b.Ensure(ctx, broken, e2eBase, nil)
	failedBuild := time.Since(t3)
	var be *env.BuildError
	require.ErrorAs(t, err, &be)
	assert.Contains(t, err.Error(), "environment "+env.Short(keys[2])+" failed to build: ")
	assert.Contains(t, err.Error(), "Unable to locate package ferry-no-such-package")
	assert.NotContains(t, err.Error(), "\x1b[", "no terminal colours in the message")
	t.Logf("the failed build's error:\n%s", err)
	var stepIDs []string
	for _, l := range be.Lines {
		if id, ok := strings.CutPrefix(l, " ---> "); ok && !strings.HasPrefix(base.ID, "sha256:"+id) && !strings.HasPrefix(id, "Running") {
			stepIDs = append(stepIDs, id)
		}
	}
	require.NotEmpty(t, stepIDs, "the build's last lines show its steps:\n%s", err)
	for _, id := range stepIDs {
		_, err := eng.ImageInspect(ctx, id)
		assert.ErrorIs(t, err, env.ErrImageNotFound, "a failed build leaves no step image behind (%s)", id)
	}
	var log4 bytes.Buffer
	_, err = b.Ensure(ctx, broken, e2eBase, &log4)
	require.ErrorAs(t, err, &be)
	assert.True(t, be.Cached)
	assert.Contains(t, log4.String(), "not trying again before")

	list, err := b.List(ctx)
	require.NoError(t, err)
	var listed []string
	for _, in := range list {
		listed = append(listed, in.Key)
		if in.Key == ref3.Key {
			assert.Equal(t, changed, in.Spec, "the spec, marker quotes and all, survives the image's LABEL")
		}
		assert.Positive(t, in.OwnSize)
		assert.Less(t, in.OwnSize, in.Size)
	}
	assert.ElementsMatch(t, []string{ref.Key, ref3.Key}, listed)
	for _, k := range []string{ref.Key, ref3.Key} {
		_, err := b.Remove(ctx, k)
		require.NoError(t, err)
		_, err = eng.ImageInspect(ctx, env.ImageName(k))
		assert.ErrorIs(t, err, env.ErrImageNotFound)
	}

	assertNoEgressLeft(t, eng)
	fmt.Printf("BENCH env: first build (pip: 1 package + 1 dependency from a wheelhouse, apt: jq, from %s) %.1f s; cached Ensure %.1f ms; rebuild after a changed requirement (apt and wheelhouse layers from the build cache) %.1f s; failing build (apt: unknown package) %.1f s; whole test %.1f s\n",
		e2eBase, firstBuild.Seconds(), float64(cached.Microseconds())/1000, rebuild.Seconds(), failedBuild.Seconds(), time.Since(testStart).Seconds())
	t.Logf("first build's log:\n%s", log1.String())
}

// runSandbox runs script in image the way the agent runs a job, and
// returns its output.
func runSandbox(t *testing.T, ctx context.Context, image, script string) string {
	t.Helper()
	eng, err := sandboxdocker.New()
	require.NoError(t, err)
	defer eng.Close()
	var out bytes.Buffer
	c, err := eng.Start(ctx, sandbox.ContainerSpec{
		Name:        fmt.Sprintf("ferry-env-e2e-%d", time.Now().UnixNano()),
		Image:       image,
		Cmd:         []string{"/bin/sh", "-c", script},
		User:        "65534:65534",
		WorkingDir:  "/tmp",
		Network:     "none",
		NanoCPUs:    1e9,
		MemoryBytes: 512 << 20,
		PidsLimit:   64,
		TmpfsSize:   64 << 20,
		Labels:      map[string]string{"ferry.test": "env-e2e"},
	}, &out)
	require.NoError(t, err)
	defer func() { _ = eng.Remove(context.Background(), c.ID, time.Second) }()
	exit, err := eng.Wait(ctx, c)
	require.NoError(t, err)
	require.Equal(t, 0, exit.Code, out.String())
	return out.String()
}
