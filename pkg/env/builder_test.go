package env

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const baseName = "ferry/sandbox:latest"

func newTestBuilder(t *testing.T, eng *fakeEngine, opts Options) *Builder {
	t.Helper()
	if opts.StateDir == "" {
		opts.StateDir = t.TempDir()
	}
	if opts.Sources.DebianMirror == "" && opts.BuildNetwork == "" {
		// Confined builds (the default) take Debian packages from the
		// admin's mirror only.
		opts.Sources.DebianMirror = testMirror
	}
	b, err := New(eng, opts)
	require.NoError(t, err)
	return b
}

const testMirror = "http://deb.debian.org/debian"

func addBase(eng *fakeEngine) string {
	return eng.addImage(baseName, Image{Size: 500, Labels: map[string]string{"ferry.sandbox": "1"}})
}

func wheelhouse(t *testing.T) string {
	dir := t.TempDir()
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ferrydemo-1.0-py3-none-any.whl"), []byte("demo wheel"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(dir, "ferrydep-1.0-py3-none-any.whl"), []byte("dep wheel"), 0o644))
	return dir
}

func TestEnsureBuildsOnceThenFindsTheImage(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	base := addBase(eng)
	wheels := wheelhouse(t)
	b := newTestBuilder(t, eng, Options{Sources: Sources{DebianMirror: "http://deb.debian.org/debian", PipFindLinks: wheels}})
	spec, err := NewSpec([]string{"ferrydemo==1.0"}, []string{"jq"})
	require.NoError(t, err)
	key, err := b.Key(ctx, spec, baseName)
	require.NoError(t, err)
	short := Short(key)

	var log strings.Builder
	ref, err := b.Ensure(ctx, spec, baseName, &log)
	require.NoError(t, err)
	assert.Equal(t, "ferry/env:"+key, ref.Name)
	assert.Equal(t, key, ref.Key)
	img, err := eng.ImageInspect(ctx, ref.Name)
	require.NoError(t, err)
	assert.Equal(t, img.ID, ref.ID)

	lines := strings.Split(strings.TrimSpace(log.String()), "\n")
	assert.Equal(t, "building environment "+short+" (pip: 1 package, apt: 1 package)", lines[0])
	assert.Equal(t, "build network: deb.debian.org:80 only, through ferry's egress proxy", lines[1])
	assert.Equal(t, "Step 1/1 : FROM base", lines[2], "the builder's job sees the build's output")
	assert.True(t, strings.HasPrefix(lines[len(lines)-1], "built environment "+short+" in "), lines[len(lines)-1])
	buildLog, err := os.ReadFile(filepath.Join(b.opts.StateDir, "logs", key+".log"))
	require.NoError(t, err)
	assert.Contains(t, string(buildLog), "Successfully built", "admins find the last build's output in the state dir")

	require.Equal(t, 1, eng.buildCount())
	bld := eng.lastBuild()
	assert.Equal(t, BuildOptions{Tag: "ferry/env:" + key, Network: fakeEgressNetwork, Proxy: fakeEgressProxy}, bld.Opts,
		"the build joins its own network, whose way out is the proxy")
	assert.Equal(t, []fakeEgress{{Image: base, Key: key, Allow: []string{"deb.debian.org:80"}}}, eng.egresses,
		"the proxy runs from the base and lets through the mirror only: the wheelhouse needs no network")
	assert.Equal(t, 1, eng.closed, "and goes when the build is done")
	assert.Equal(t, map[string]string{
		LabelKey: key, LabelBase: base, LabelVersion: "ferry-env-v1",
		LabelSpec: `{"pip":["ferrydemo==1.0"],"apt":["jq"]}`,
	}, img.Labels)
	assert.Equal(t, "# ferry environment "+key+" (generated; ferry-env-v1)\n"+
		"FROM "+base+"\n"+
		"COPY ferry-env/apt /ferry-env/apt\n"+
		`RUN ["/bin/sh", "/ferry-env/apt/env.sh", "apt"]`+"\n"+
		"COPY ferry-wheels /ferry-wheels\n"+
		"COPY ferry-env/pip /ferry-env/pip\n"+
		`RUN ["/bin/sh", "/ferry-env/apt/env.sh", "pip"]`+"\n"+
		`LABEL ferry.env="`+key+`" ferry.env.base="`+base+`" ferry.env.spec="{\"pip\":[\"ferrydemo==1.0\"],\"apt\":[\"jq\"]}" ferry.env.version="ferry-env-v1"`+"\n",
		bld.Files["Dockerfile"])
	assert.Equal(t, map[string]string{
		"Dockerfile":                                  bld.Files["Dockerfile"],
		"ferry-env/apt/env.sh":                        envScript,
		"ferry-env/apt/compile.py":                    compileScript,
		"ferry-env/apt/packages":                      "jq\n",
		"ferry-env/apt/mirror":                        "http://deb.debian.org/debian\n",
		"ferry-env/apt/need-pip":                      "",
		"ferry-env/pip/requirements.txt":              "ferrydemo==1.0\n",
		"ferry-wheels/ferrydemo-1.0-py3-none-any.whl": "demo wheel",
		"ferry-wheels/ferrydep-1.0-py3-none-any.whl":  "dep wheel",
	}, bld.Files, "values travel as files; no index-url without an index, no allow-sdist by default")

	used1 := b.state.lastUsed(key)
	require.False(t, used1.IsZero())
	require.NoError(t, os.Chtimes(b.state.path("used", key, ""), used1.Add(-time.Hour), used1.Add(-time.Hour)))

	var log2 strings.Builder
	ref2, err := b.Ensure(ctx, spec, baseName, &log2)
	require.NoError(t, err)
	assert.Equal(t, ref, ref2)
	assert.Empty(t, log2.String(), "an existing environment is used without a word")
	assert.Equal(t, 1, eng.buildCount())
	assert.True(t, b.state.lastUsed(key).After(used1.Add(-time.Hour)), "each use is recorded")
}

func TestEnsureAptOnlyAndBaseUser(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	base := eng.addImage("lab/image:1", Image{User: "1000:1000"})
	// On the admin's own build network the base's apt sources may serve.
	b := newTestBuilder(t, eng, Options{BuildNetwork: "bridge", Sources: Sources{PipIndexURL: "https://pypi.example/simple", PipFindLinks: wheelhouse(t)}})
	ref, err := b.Ensure(ctx, Spec{Apt: []string{"jq"}}, "lab/image:1", nil)
	require.NoError(t, err)
	bld := eng.lastBuild()
	assert.Equal(t, "# ferry environment "+ref.Key+" (generated; ferry-env-v1)\n"+
		"FROM "+base+"\n"+
		"USER root\n"+
		"COPY ferry-env/apt /ferry-env/apt\n"+
		`RUN ["/bin/sh", "/ferry-env/apt/env.sh", "apt-last"]`+"\n"+
		`LABEL ferry.env="`+ref.Key+`" ferry.env.base="`+base+`" ferry.env.spec="{\"apt\":[\"jq\"]}" ferry.env.version="ferry-env-v1"`+"\n"+
		"USER 1000:1000\n", bld.Files["Dockerfile"])
	for name := range bld.Files {
		assert.False(t, strings.HasPrefix(name, "ferry-wheels/") || strings.HasPrefix(name, "ferry-env/pip/"), "no pip files without requirements: %s", name)
	}
	assert.NotContains(t, bld.Files, "ferry-env/apt/mirror", "no mirror configured: the base's apt sources stay")

	_, err = b.Ensure(ctx, Spec{Pip: []string{"numpy"}}, "lab/image:1", nil)
	require.NoError(t, err)
	assert.Equal(t, "https://pypi.example/simple\n", eng.lastBuild().Files["ferry-env/pip/index-url"])
}

func TestEnsureRefuses(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	base := addBase(eng)
	b := newTestBuilder(t, eng, Options{})

	ref, err := b.Ensure(ctx, Spec{}, baseName, nil)
	require.NoError(t, err)
	assert.Equal(t, ImageRef{Name: baseName, ID: base}, ref, "an empty spec runs the base image")

	_, err = b.Ensure(ctx, Spec{Apt: []string{"jq"}}, "ferry/nope:1", nil)
	assert.EqualError(t, err, "base image ferry/nope:1 is not on this worker: ask an admin to build it")

	_, err = b.Ensure(ctx, Spec{Pip: []string{"numpy"}}, baseName, nil)
	assert.EqualError(t, err, "pip requirements need a package source, and this cluster has none: ask an admin to set pip_index_url or pip_find_links, or install the packages from Debian with apt:")

	_, err = b.Ensure(ctx, Spec{Apt: []string{"jq;id"}}, baseName, nil)
	assert.ErrorContains(t, err, `apt package "jq;id": shell metacharacters`)
	assert.Equal(t, 0, eng.buildCount())

	_, err = New(eng, Options{StateDir: t.TempDir(), Sources: Sources{PipFindLinks: "wheels"}})
	assert.EqualError(t, err, `environment sources: pip_find_links "wheels": must be an absolute path to a wheelhouse dir`)
}

func TestEnsureConcurrentCallsBuildOnce(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	addBase(eng)
	release := make(chan struct{})
	eng.buildFn = func(ctx context.Context, _ fakeBuild, _ io.Writer) error {
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	b := newTestBuilder(t, eng, Options{Sources: Sources{PipIndexURL: "https://pypi.example/simple"}})
	spec := Spec{Pip: []string{"a", "b", "c", "d"}}
	key, err := b.Key(ctx, spec, baseName)
	require.NoError(t, err)
	short := Short(key)
	waiting := "waiting for environment " + short + ", being built by another job\n"

	const n = 20
	logs := make([]*syncBuffer, n)
	refs := make([]ImageRef, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		logs[i] = &syncBuffer{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			refs[i], errs[i] = b.Ensure(ctx, spec, baseName, logs[i])
		}()
	}
	countWith := func(s string) int {
		c := 0
		for _, l := range logs {
			if strings.Contains(l.String(), s) {
				c++
			}
		}
		return c
	}
	require.Eventually(t, func() bool { return countWith(waiting) == n-1 }, 10*time.Second, 5*time.Millisecond,
		"19 callers say they wait")
	close(release)
	wg.Wait()

	assert.Equal(t, 1, eng.buildCount(), "one build for 20 jobs")
	assert.Equal(t, 1, countWith("building environment "+short+" (pip: 4 packages)\n"))
	assert.Equal(t, n-1, countWith("environment "+short+" ready after "))
	for i := range n {
		require.NoError(t, errs[i])
		assert.Equal(t, refs[0], refs[i])
		assert.False(t, strings.Contains(logs[i].String(), "building") && strings.Contains(logs[i].String(), "waiting"))
	}
}

func TestEnsureFailureIsCachedForTTL(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	addBase(eng)
	fail := true
	var mu sync.Mutex
	eng.buildFn = func(_ context.Context, _ fakeBuild, out io.Writer) error {
		mu.Lock()
		defer mu.Unlock()
		if !fail {
			return nil
		}
		for i := 1; i <= 30; i++ {
			fmt.Fprintf(out, "line %d\n", i)
		}
		return fmt.Errorf("%w: The command '/bin/sh /ferry-env/apt/env.sh apt' returned a non-zero code: 100", ErrBuildFailed)
	}
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	state := t.TempDir()
	b := newTestBuilder(t, eng, Options{StateDir: state, Now: clock.Now})
	spec := Spec{Apt: []string{"no-such-package"}}
	key, err := b.Key(ctx, spec, baseName)
	require.NoError(t, err)

	var want strings.Builder
	want.WriteString("environment " + Short(key) + " failed to build: The command '/bin/sh /ferry-env/apt/env.sh apt' returned a non-zero code: 100; the build's last lines:")
	for i := 11; i <= 30; i++ {
		fmt.Fprintf(&want, "\n  | line %d", i)
	}

	// Ten jobs at once: one build, all fail with its message.
	var wg sync.WaitGroup
	errs := make([]error, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = b.Ensure(ctx, spec, baseName, nil)
		}()
	}
	wg.Wait()
	assert.Equal(t, 1, eng.buildCount())
	for _, err := range errs {
		var be *BuildError
		require.ErrorAs(t, err, &be)
		assert.Equal(t, want.String(), err.Error())
	}

	clock.Add(4*time.Minute + 59*time.Second)
	var log strings.Builder
	_, err = b.Ensure(ctx, spec, baseName, &log)
	var be *BuildError
	require.ErrorAs(t, err, &be)
	assert.True(t, be.Cached)
	assert.Equal(t, want.String(), err.Error(), "the same message, fast")
	assert.Equal(t, "environment "+Short(key)+" failed to build at 12:00:00 UTC; not trying again before 12:05:00 UTC\n", log.String())
	assert.Equal(t, 1, eng.buildCount())

	other := newTestBuilder(t, eng, Options{StateDir: state, Now: clock.Now})
	_, err = other.Ensure(ctx, spec, baseName, nil)
	assert.Equal(t, want.String(), err.Error(), "another process on the node sees the failure too")
	assert.Equal(t, 1, eng.buildCount())

	clock.Add(time.Second)
	mu.Lock()
	fail = false
	mu.Unlock()
	ref, err := b.Ensure(ctx, spec, baseName, nil)
	require.NoError(t, err, "retried after the TTL")
	assert.Equal(t, 2, eng.buildCount())
	assert.Equal(t, key, ref.Key)
	assert.NoFileExists(t, filepath.Join(state, "failed", key+".json"))
}

func TestEnsureFailureTTLIsConfigurable(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	addBase(eng)
	eng.buildFn = func(context.Context, fakeBuild, io.Writer) error {
		return fmt.Errorf("%w: boom", ErrBuildFailed)
	}
	b := newTestBuilder(t, eng, Options{FailureTTL: -1})
	for range 2 {
		_, err := b.Ensure(ctx, Spec{Apt: []string{"jq"}}, baseName, nil)
		assert.ErrorContains(t, err, "failed to build: boom")
	}
	assert.Equal(t, 2, eng.buildCount(), "a negative TTL caches nothing")
}

func TestEnsureDaemonErrorsAreNotCached(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	addBase(eng)
	eng.buildFn = func(context.Context, fakeBuild, io.Writer) error {
		return errors.New("Cannot connect to the Docker daemon")
	}
	b := newTestBuilder(t, eng, Options{})
	spec := Spec{Apt: []string{"jq"}}
	key, _ := b.Key(ctx, spec, baseName)
	for range 2 {
		_, err := b.Ensure(ctx, spec, baseName, nil)
		assert.EqualError(t, err, "build environment "+Short(key)+": Cannot connect to the Docker daemon")
		var be *BuildError
		assert.False(t, errors.As(err, &be))
	}
	assert.Equal(t, 2, eng.buildCount())
}

func TestEnsureBuildOutlivesACallerThatLeaves(t *testing.T) {
	eng := newFakeEngine()
	addBase(eng)
	started, release := make(chan struct{}), make(chan struct{})
	eng.buildFn = func(context.Context, fakeBuild, io.Writer) error {
		close(started)
		<-release
		return nil
	}
	b := newTestBuilder(t, eng, Options{})
	spec := Spec{Apt: []string{"jq"}}
	ctx, cancel := context.WithCancel(context.Background())
	log := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		_, err := b.Ensure(ctx, spec, baseName, log)
		done <- err
	}()
	<-started
	cancel()
	err := <-done
	assert.ErrorIs(t, err, context.Canceled)
	close(release)

	ref, err := b.Ensure(context.Background(), spec, baseName, nil) // joins the flight or finds the image
	require.NoError(t, err)
	assert.Equal(t, 1, eng.buildCount())
	assert.NotEmpty(t, ref.ID)
	assert.NotContains(t, log.String(), "built environment", "the log of a job that left is not written")
}

func TestBuildContextRefusesAChangedWheel(t *testing.T) {
	dir := wheelhouse(t)
	files, err := readWheelhouse(dir, nil)
	require.NoError(t, err)
	p := plan{key: strings.Repeat("a", 64), base: Image{ID: baseID}, spec: Spec{Pip: []string{"ferrydemo"}}, wheels: files}
	require.NoError(t, p.writeContext(io.Discard))

	require.NoError(t, os.WriteFile(files[0].Path, []byte("DEMO WHEEL"), 0o644)) // same size
	assert.ErrorIs(t, p.writeContext(io.Discard), errWheelhouseChanged)
	require.NoError(t, os.WriteFile(files[0].Path, []byte("short"), 0o644))
	assert.ErrorIs(t, p.writeContext(io.Discard), errWheelhouseChanged)
}

func TestEnsureKeyFollowsTheWheelhouse(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	addBase(eng)
	dir := wheelhouse(t)
	b := newTestBuilder(t, eng, Options{Sources: Sources{PipFindLinks: dir}})
	spec := Spec{Pip: []string{"ferrydemo"}}
	ref1, err := b.Ensure(ctx, spec, baseName, nil)
	require.NoError(t, err)

	tmp := filepath.Join(dir, ".new")
	require.NoError(t, os.WriteFile(tmp, []byte("dep wheel 2"), 0o644))
	require.NoError(t, os.Rename(tmp, filepath.Join(dir, "ferrydep-1.0-py3-none-any.whl")))
	ref2, err := b.Ensure(ctx, spec, baseName, nil)
	require.NoError(t, err)
	assert.NotEqual(t, ref1.Key, ref2.Key, "a changed wheelhouse is a new environment")
	assert.Equal(t, 2, eng.buildCount())
	assert.Equal(t, "dep wheel 2", eng.lastBuild().Files["ferry-wheels/ferrydep-1.0-py3-none-any.whl"])
}

func TestLabelsSurviveTheDockerfile(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	addBase(eng)
	b := newTestBuilder(t, eng, Options{Sources: Sources{PipIndexURL: "https://pypi.example/simple"}})
	spec, err := NewSpec([]string{`tomli>=1; python_version < "3.11" and sys_platform != 'win32'`}, nil)
	require.NoError(t, err)
	ref, err := b.Ensure(ctx, spec, baseName, nil)
	require.NoError(t, err)
	list, err := b.List(ctx)
	require.NoError(t, err)
	require.Len(t, list, 1)
	assert.Equal(t, ref.Key, list[0].Key)
	assert.Equal(t, spec, list[0].Spec, "quotes and < in a marker round-trip through LABEL and JSON")
	assert.Contains(t, eng.lastBuild().Files["Dockerfile"], `python_version < \\\"3.11\\\"`)

	_, err = labelInstruction(map[string]string{"ferry.env": "a$HOME"})
	assert.Error(t, err)
	_, err = labelInstruction(map[string]string{"ferry.env": "a\nRUN id"})
	assert.Error(t, err)
}

func TestEnsureNormalisesAHandMadeSpec(t *testing.T) {
	ctx := context.Background()
	eng := newFakeEngine()
	addBase(eng)
	b := newTestBuilder(t, eng, Options{Sources: Sources{PipIndexURL: "https://pypi.example/simple"}})
	ref1, err := b.Ensure(ctx, Spec{Pip: []string{"NumPy >= 1.26", "SciPy"}}, baseName, nil)
	require.NoError(t, err)
	ref2, err := b.Ensure(ctx, Spec{Pip: []string{"scipy", "numpy>=1.26"}}, baseName, nil)
	require.NoError(t, err)
	assert.Equal(t, ref1, ref2)
	assert.Equal(t, 1, eng.buildCount())
	assert.Equal(t, "numpy>=1.26\nscipy\n", eng.lastBuild().Files["ferry-env/pip/requirements.txt"])
}

// engineOnly hides the fake's Gate: an engine that cannot confine builds.
type engineOnly struct{ Engine }

func TestConfinedBuilds(t *testing.T) {
	ctx := context.Background()
	pipSpec := Spec{Pip: []string{"ferrydemo==1.0"}}

	t.Run("a wheelhouse needs no network at all", func(t *testing.T) {
		eng := newFakeEngine()
		addBase(eng)
		b := newTestBuilder(t, eng, Options{Sources: Sources{PipFindLinks: wheelhouse(t)}})
		b.opts.Sources.DebianMirror = "" // no mirror: pip needs the base's pip
		_, err := b.Ensure(ctx, pipSpec, baseName, nil)
		require.NoError(t, err)
		assert.Equal(t, "none", eng.lastBuild().Opts.Network)
		assert.Empty(t, eng.lastBuild().Opts.Proxy)
		assert.Empty(t, eng.egresses, "no proxy for a build that reaches nothing")
	})

	t.Run("the mirror and an https index, each once, with their ports", func(t *testing.T) {
		eng := newFakeEngine()
		addBase(eng)
		b := newTestBuilder(t, eng, Options{Sources: Sources{DebianMirror: "http://Mirror.Example:8080/debian", PipIndexURL: "https://pypi.example/simple"}})
		_, err := b.Ensure(ctx, Spec{Pip: pipSpec.Pip, Apt: []string{"jq"}}, baseName, nil)
		require.NoError(t, err)
		require.Len(t, eng.egresses, 1)
		assert.Equal(t, []string{"mirror.example:8080", "pypi.example:443"}, eng.egresses[0].Allow)
		assert.Equal(t, 1, eng.closed)
	})

	t.Run("apt only: the index is not opened", func(t *testing.T) {
		eng := newFakeEngine()
		addBase(eng)
		b := newTestBuilder(t, eng, Options{Sources: Sources{PipIndexURL: "https://pypi.example/simple"}})
		_, err := b.Ensure(ctx, Spec{Apt: []string{"jq"}}, baseName, nil)
		require.NoError(t, err)
		require.Len(t, eng.egresses, 1)
		assert.Equal(t, []string{"deb.debian.org:80"}, eng.egresses[0].Allow)
	})

	t.Run("Debian packages without a mirror are refused before any build", func(t *testing.T) {
		eng := newFakeEngine()
		addBase(eng)
		b := newTestBuilder(t, eng, Options{})
		b.opts.Sources.DebianMirror = ""
		_, err := b.Ensure(ctx, Spec{Apt: []string{"jq"}}, baseName, nil)
		assert.ErrorContains(t, err, "Debian packages need environments.debian_mirror")
		assert.Zero(t, eng.buildCount())
		assert.Empty(t, eng.egresses)
	})

	t.Run("what the proxy refused explains a failed build", func(t *testing.T) {
		eng := newFakeEngine()
		addBase(eng)
		eng.denied = []string{"evil.example:443"}
		eng.buildFn = func(context.Context, fakeBuild, io.Writer) error {
			return fmt.Errorf("%w: The command '/bin/sh -c …' returned a non-zero code: 100", ErrBuildFailed)
		}
		b := newTestBuilder(t, eng, Options{})
		var log strings.Builder
		_, err := b.Ensure(ctx, Spec{Apt: []string{"jq"}}, baseName, &log)
		var be *BuildError
		require.ErrorAs(t, err, &be)
		assert.Contains(t, be.Reason, "returned a non-zero code: 100 (the build tried to reach evil.example:443, not among this cluster's package sources)")
		assert.Contains(t, log.String(), "ferry's egress proxy refused: evil.example:443\n")
		assert.Equal(t, 1, eng.closed, "the proxy goes after a failure too")
	})

	t.Run("the proxy not starting is not a cached build failure", func(t *testing.T) {
		eng := newFakeEngine()
		addBase(eng)
		eng.egressErr = errors.New("exec /ferry-egress: no such file")
		b := newTestBuilder(t, eng, Options{})
		_, err := b.Ensure(ctx, Spec{Apt: []string{"jq"}}, baseName, nil)
		assert.ErrorContains(t, err, "open the build's way out to deb.debian.org:80: exec /ferry-egress: no such file")
		var be *BuildError
		assert.False(t, errors.As(err, &be))
		assert.Zero(t, eng.buildCount())
	})

	t.Run("an engine without a gate must be given a network", func(t *testing.T) {
		eng := newFakeEngine()
		addBase(eng)
		b, err := New(engineOnly{eng}, Options{StateDir: t.TempDir(), Sources: Sources{DebianMirror: testMirror}})
		require.NoError(t, err)
		_, err = b.Ensure(ctx, Spec{Apt: []string{"jq"}}, baseName, nil)
		assert.ErrorContains(t, err, "cannot confine builds to the package sources: set environments.build_network")
		assert.Zero(t, eng.buildCount())
	})

	t.Run("the admin's network is used as it is", func(t *testing.T) {
		eng := newFakeEngine()
		addBase(eng)
		b := newTestBuilder(t, eng, Options{BuildNetwork: "course-build"})
		_, err := b.Ensure(ctx, Spec{Apt: []string{"jq"}}, baseName, nil)
		require.NoError(t, err)
		assert.Equal(t, BuildOptions{Tag: eng.lastBuild().Opts.Tag, Network: "course-build"}, eng.lastBuild().Opts)
		assert.Empty(t, eng.egresses)
	})
}

func TestNewRefusesABadBuildNetwork(t *testing.T) {
	for _, n := range []string{"host", "a b", "-x", "net;rm"} {
		_, err := New(newFakeEngine(), Options{StateDir: t.TempDir(), BuildNetwork: n})
		assert.ErrorContains(t, err, fmt.Sprintf("build network %q: want a Docker network's name, not host", n))
	}
	for _, n := range []string{"", "bridge", "none", "course_build.net-1"} {
		_, err := New(newFakeEngine(), Options{StateDir: t.TempDir(), BuildNetwork: n})
		assert.NoError(t, err, n)
	}
}
