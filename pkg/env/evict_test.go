package env

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const mib = 1 << 20

type evictFixture struct {
	eng   *fakeEngine
	b     *Builder
	clock *fakeClock
	base  string
	ids   map[string]string // name → image ID
	keys  map[string]string // name → key
}

func newEvictFixture(t *testing.T) *evictFixture {
	clock := &fakeClock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	eng := newFakeEngine()
	eng.now = clock.Now
	f := &evictFixture{eng: eng, clock: clock, ids: map[string]string{}, keys: map[string]string{}}
	f.base = eng.addImage(baseName, Image{Size: 500 * mib})
	f.b = newTestBuilder(t, eng, Options{Now: clock.Now})
	return f
}

// add puts an environment image with ownMiB on top of the base, created
// createdAgo and last used usedAgo ago (0: never recorded).
func (f *evictFixture) add(name, key string, ownMiB int64, createdAgo, usedAgo time.Duration) {
	now := f.clock.Now()
	id := f.eng.addImage(ImageName(key), Image{
		Size:    (500 + ownMiB) * mib,
		Created: now.Add(-createdAgo),
		Labels: map[string]string{LabelKey: key, LabelBase: f.base, LabelVersion: KeyVersion,
			LabelSpec: fmt.Sprintf(`{"pip":["%s"]}`, name)},
	})
	if usedAgo > 0 {
		f.b.state.touchUsed(key, now.Add(-usedAgo))
	}
	f.ids[name], f.keys[name] = id, key
}

func testKey(prefix string, n int) string {
	return prefix + fmt.Sprintf("%0*d", 64-len(prefix), n)
}

const day = 24 * time.Hour

func TestEvictByAgeThenSize(t *testing.T) {
	ctx := context.Background()
	f := newEvictFixture(t)
	f.add("a", testKey("a", 1), 50, 60*day, 40*day)
	f.add("b", testKey("b", 1), 30, 60*day, 10*day)
	f.add("c", testKey("c", 1), 200, 60*day, 1*day) // a job runs it
	f.add("d", testKey("d", 1), 100, 60*day, 2*time.Hour)
	f.add("e", testKey("e", 1), 80, 3*day, 0)       // never recorded: its creation counts
	f.add("f", testKey("f", 1), 60, 60*day, 20*day) // a stopped container still uses it
	f.eng.inUse[f.ids["f"]] = true
	inUse := func(id string) bool { return id == f.ids["c"] }

	removed, err := f.b.Evict(ctx, 30*day, 360*mib, inUse)
	require.NoError(t, err)
	var got []string
	for _, r := range removed {
		got = append(got, r.Spec.Pip[0]+": "+r.Reason)
	}
	assert.Equal(t, []string{
		"a: unused for 40 days",
		"b: environments took 470 MiB, over the limit of 360 MiB; this one was the least recently used",
		"e: environments took 440 MiB, over the limit of 360 MiB; this one was the least recently used",
	}, got, "age first; then least recently used first, skipping what is in use, until under the limit")

	list, err := f.b.List(ctx)
	require.NoError(t, err)
	var left []string
	for _, in := range list {
		left = append(left, in.Spec.Pip[0])
	}
	assert.Equal(t, []string{"d", "c", "f"}, left, "most recently used first")
	assert.NoFileExists(t, f.b.state.path("used", f.keys["a"], ""), "the state of a removed environment goes too")

	again, err := f.b.Evict(ctx, 30*day, 360*mib, inUse)
	require.NoError(t, err)
	assert.Empty(t, again)

	removed, err = f.b.Evict(ctx, 0, 1, nil)
	require.NoError(t, err)
	require.Len(t, removed, 2, "with nothing in use, all but the one with a container go")
	left = nil
	list, _ = f.b.List(ctx)
	for _, in := range list {
		left = append(left, in.Spec.Pip[0])
	}
	assert.Equal(t, []string{"f"}, left)
}

func TestEvictNoLimits(t *testing.T) {
	f := newEvictFixture(t)
	f.add("a", testKey("a", 1), 50, 400*day, 400*day)
	removed, err := f.b.Evict(context.Background(), 0, 0, nil)
	require.NoError(t, err)
	assert.Empty(t, removed)
}

func TestEvictSkipsAnEnvironmentUsedMeanwhile(t *testing.T) {
	ctx := context.Background()
	f := newEvictFixture(t)
	f.add("a", testKey("a", 1), 50, 60*day, 40*day)
	list, err := f.b.List(ctx)
	require.NoError(t, err)
	f.b.state.touchUsed(f.keys["a"], f.clock.Now()) // a job ensured it after List
	ok, err := f.b.remove(ctx, list[0])
	require.NoError(t, err)
	assert.False(t, ok)
}

func TestList(t *testing.T) {
	ctx := context.Background()
	f := newEvictFixture(t)
	f.add("old", testKey("a", 1), 50, 5*day, 4*day)
	f.add("new", testKey("b", 1), 30, 2*day, 0)
	list, err := f.b.List(ctx)
	require.NoError(t, err)
	now := f.clock.Now()
	assert.Equal(t, []Info{
		{Key: testKey("b", 1), Name: ImageName(testKey("b", 1)), ID: f.ids["new"], Base: f.base,
			Size: 530 * mib, OwnSize: 30 * mib, Created: now.Add(-2 * day), LastUsed: now.Add(-2 * day),
			Spec: Spec{Pip: []string{"new"}}},
		{Key: testKey("a", 1), Name: ImageName(testKey("a", 1)), ID: f.ids["old"], Base: f.base,
			Size: 550 * mib, OwnSize: 50 * mib, Created: now.Add(-5 * day), LastUsed: now.Add(-4 * day).Local(),
			Spec: Spec{Pip: []string{"old"}}},
	}, list)
}

func TestRemove(t *testing.T) {
	ctx := context.Background()
	f := newEvictFixture(t)
	f.add("one", testKey("abcd", 1), 10, day, day)
	f.add("two", testKey("abcd", 2), 10, day, day)
	f.add("busy", testKey("ee", 1), 10, day, day)
	f.eng.inUse[f.ids["busy"]] = true

	_, err := f.b.Remove(ctx, "abcd")
	assert.EqualError(t, err, "environment abcd is ambiguous: 2 environments match, give more of the key")
	_, err = f.b.Remove(ctx, "abc")
	assert.EqualError(t, err, `environment "abc": give at least 4 characters of its key`)
	_, err = f.b.Remove(ctx, "ffff")
	assert.ErrorIs(t, err, ErrNotFound)
	assert.EqualError(t, err, "environment ffff: no such environment")
	_, err = f.b.Remove(ctx, "ferry/env:"+f.keys["busy"])
	assert.EqualError(t, err, "environment "+Short(f.keys["busy"])+" is in use by a container: remove it when its jobs have ended")

	in, err := f.b.Remove(ctx, strings.TrimSuffix(f.keys["two"], "2")+"2")
	require.NoError(t, err)
	assert.Equal(t, f.ids["two"], in.ID)
	_, err = f.eng.ImageInspect(ctx, f.ids["two"])
	assert.ErrorIs(t, err, ErrImageNotFound)
	_, err = os.Stat(f.b.state.path("used", f.keys["two"], ""))
	assert.True(t, os.IsNotExist(err))

	in, err = f.b.Remove(ctx, strings.TrimPrefix(f.ids["one"], "sha256:")[:12])
	require.NoError(t, err, "an image ID works too")
	assert.Equal(t, f.keys["one"], in.Key)
}
