package env

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The tests here prove the per-key lock holds across processes: they re-run
// the test binary (TestHelperProcess) as other "agents" on the same node,
// sharing a state dir.

const helperEnv = "FERRY_ENV_HELPER"

var helperSpec = Spec{Pip: []string{"ferrydemo==1.0"}, Apt: []string{"jq"}}

func helperSources() Sources { return Sources{PipIndexURL: "https://pypi.example/simple"} }

// TestHelperProcess is not a test: it is another process on the node.
//   - FERRY_ENV_HELPER=ensure: Ensure helperSpec with a fileEngine in dir,
//     print "REF <id>".
//   - FERRY_ENV_HELPER=hold: hold the lock of FERRY_ENV_HELPER_KEY, print
//     "locked", release when stdin closes.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		return
	}
	dir := os.Getenv("FERRY_ENV_HELPER_DIR")
	switch mode {
	case "hold":
		l, err := stateDir(filepath.Join(dir, "state")).lockKey(context.Background(), os.Getenv("FERRY_ENV_HELPER_KEY"), nil)
		require.NoError(t, err)
		fmt.Println("locked")
		_, _ = io.Copy(io.Discard, os.Stdin)
		l.unlock()
	case "ensure":
		logf, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("log-%d", os.Getpid())), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		require.NoError(t, err)
		defer logf.Close()
		b, err := New(&fileEngine{dir: dir}, Options{StateDir: filepath.Join(dir, "state"), Sources: helperSources(), BuildNetwork: "bridge"})
		require.NoError(t, err)
		ref, err := b.Ensure(context.Background(), helperSpec, baseName, logf)
		require.NoError(t, err)
		fmt.Printf("REF %s\n", ref.ID)
	}
}

func helperCmd(t *testing.T, mode, dir string, env ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperEnv+"="+mode, "FERRY_ENV_HELPER_DIR="+dir)
	cmd.Env = append(cmd.Env, env...)
	cmd.Stderr = os.Stderr
	return cmd
}

func TestEnsureAcrossProcessesBuildsOnce(t *testing.T) {
	dir := t.TempDir()
	fe := &fileEngine{dir: dir}
	require.NoError(t, fe.put(baseName, Image{ID: baseID}))

	const procs = 3
	var wg sync.WaitGroup
	outs := make([]string, procs)
	errs := make([]error, procs)
	for i := range procs {
		cmd := helperCmd(t, "ensure", dir, fmt.Sprintf("FERRY_ENV_HELPER_WAITERS=%d", procs-1))
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := cmd.Output()
			outs[i], errs[i] = string(out), err
		}()
	}
	wg.Wait()
	for i := range procs {
		require.NoError(t, errs[i], outs[i])
	}

	builds, err := os.ReadFile(filepath.Join(dir, "builds"))
	require.NoError(t, err)
	assert.Equal(t, 1, strings.Count(string(builds), "build "), "one build on the node for three processes")

	key := Key(baseID, helperSpec, helperSources())
	short := Short(key)
	logs, err := filepath.Glob(filepath.Join(dir, "log-*"))
	require.NoError(t, err)
	require.Len(t, logs, procs)
	var building, waiting int
	for _, p := range logs {
		data, err := os.ReadFile(p)
		require.NoError(t, err)
		s := string(data)
		if strings.HasPrefix(s, "building environment "+short+" (pip: 1 package, apt: 1 package)\n") {
			building++
		}
		if s == "waiting for environment "+short+", being built by another job\nenvironment "+short+" ready\n" {
			waiting++
		}
	}
	assert.Equal(t, 1, building)
	assert.Equal(t, procs-1, waiting)

	ref := strings.TrimSpace(outs[0])
	assert.True(t, strings.HasPrefix(ref, "REF sha256:"), ref)
	for _, o := range outs {
		assert.Equal(t, ref, strings.TrimSpace(o), "every process gets the one image")
	}
}

func TestEnsureWaitsForALockHeldByAnotherProcess(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	eng := newFakeEngine()
	addBase(eng)
	b := newTestBuilder(t, eng, Options{StateDir: filepath.Join(dir, "state"), Sources: helperSources(), BuildNetwork: "bridge"})
	key, err := b.Key(ctx, helperSpec, baseName)
	require.NoError(t, err)

	holder := helperCmd(t, "hold", dir, "FERRY_ENV_HELPER_KEY="+key)
	stdin, err := holder.StdinPipe()
	require.NoError(t, err)
	stdout, err := holder.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, holder.Start())
	t.Cleanup(func() { _ = stdin.Close(); _ = holder.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	require.NoError(t, err)
	require.Equal(t, "locked\n", line)

	log := &syncBuffer{}
	type result struct {
		ref ImageRef
		err error
	}
	done := make(chan result, 1)
	go func() {
		ref, err := b.Ensure(ctx, helperSpec, baseName, log)
		done <- result{ref, err}
	}()
	waiting := "waiting for environment " + Short(key) + ", being built by another job\n"
	require.Eventually(t, func() bool { return log.String() == waiting }, 5*time.Second, 5*time.Millisecond)
	time.Sleep(300 * time.Millisecond)
	assert.Equal(t, 0, eng.buildCount(), "no build while another process holds the lock")

	// The other process "finishes its build".
	id := eng.addImage(ImageName(key), Image{Labels: map[string]string{LabelKey: key, LabelBase: baseID}})
	_, err = b.Remove(ctx, key)
	assert.EqualError(t, err, "environment "+Short(key)+" is being built or looked up right now: try again in a moment")
	evicted, err := b.Evict(ctx, time.Nanosecond, 1, nil)
	require.NoError(t, err)
	assert.Empty(t, evicted, "eviction skips a locked environment")

	require.NoError(t, stdin.Close())
	var r result
	select {
	case r = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Ensure still waits after the other process released the lock")
	}
	require.NoError(t, r.err)
	assert.Equal(t, ImageRef{Name: ImageName(key), ID: id, Key: key}, r.ref)
	assert.Equal(t, 0, eng.buildCount(), "after the lock, Ensure found the other process's image")
	assert.Equal(t, waiting+"environment "+Short(key)+" ready\n", log.String())
}

// fileEngine keeps images as JSON files in dir/images, so processes share
// them. Its build records itself in dir/builds and waits until
// $FERRY_ENV_HELPER_WAITERS processes have logged that they wait.
type fileEngine struct{ dir string }

func (f *fileEngine) imagePath(ref string) string {
	return filepath.Join(f.dir, "images", url.PathEscape(ref)+".json")
}

func (f *fileEngine) put(ref string, img Image) error {
	if err := os.MkdirAll(filepath.Join(f.dir, "images"), 0o755); err != nil {
		return err
	}
	data, _ := json.Marshal(img)
	tmp := f.imagePath(ref) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, f.imagePath(ref))
}

func (f *fileEngine) ImageInspect(_ context.Context, ref string) (Image, error) {
	data, err := os.ReadFile(f.imagePath(ref))
	if os.IsNotExist(err) {
		return Image{}, ErrImageNotFound
	}
	if err != nil {
		return Image{}, err
	}
	var img Image
	return img, json.Unmarshal(data, &img)
}

func (f *fileEngine) ImageList(context.Context, string) ([]Image, error) { return nil, nil }
func (f *fileEngine) ImageRemove(context.Context, string) error          { return nil }

func (f *fileEngine) ImageBuild(_ context.Context, buildContext io.Reader, opts BuildOptions, out io.Writer) (string, error) {
	if _, err := io.Copy(io.Discard, buildContext); err != nil {
		return "", err
	}
	bf, err := os.OpenFile(filepath.Join(f.dir, "builds"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return "", err
	}
	fmt.Fprintf(bf, "build %d\n", os.Getpid())
	bf.Close()
	want := 0
	fmt.Sscan(os.Getenv("FERRY_ENV_HELPER_WAITERS"), &want)
	deadline := time.Now().Add(20 * time.Second)
	for f.waiters() < want && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	fmt.Fprintln(out, "Successfully built")
	id := fmt.Sprintf("sha256:%064d", os.Getpid())
	img := Image{ID: id, Tags: []string{opts.Tag}, Labels: map[string]string{LabelKey: strings.TrimPrefix(opts.Tag, "ferry/env:")}}
	if err := f.put(id, img); err != nil {
		return "", err
	}
	return id, f.put(opts.Tag, img)
}

func (f *fileEngine) waiters() int {
	logs, _ := filepath.Glob(filepath.Join(f.dir, "log-*"))
	n := 0
	for _, p := range logs {
		data, _ := os.ReadFile(p)
		n += strings.Count(string(data), "being built by another job")
	}
	return n
}
