package submit

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ferry-hpc/ferry/pkg/bundle"
)

// The bundle cache keeps the last few bundles a user packed, under
// <spool>/.cache/bundles/<fingerprint>.tar.zst with its Info beside it, so
// that submitting an unchanged project again (other params, a re-run, a
// series of jobs) links the bundle instead of packing it. The fingerprint
// (bundle.Fingerprint) changes with any change to what would be packed.
// Job dirs hold hard links, so pruning the cache never touches a job.
const (
	cacheDir  = ".cache/bundles"
	cacheKeep = 8
	// staleTemp is when a temp file in the cache is surely not another
	// submit's, still being written.
	staleTemp = time.Hour
)

type bundleCache struct{ dir string }

func newBundleCache(spool string) bundleCache {
	return bundleCache{dir: filepath.Join(spool, filepath.FromSlash(cacheDir))}
}

func (c bundleCache) paths(key string) (tar, info string) {
	return filepath.Join(c.dir, key+".tar.zst"), filepath.Join(c.dir, key+".json")
}

// get links the cached bundle for key to dst and returns its Info.
func (c bundleCache) get(key, dst string) (bundle.Info, bool) {
	tarPath, infoPath := c.paths(key)
	data, err := os.ReadFile(infoPath)
	if err != nil {
		return bundle.Info{}, false
	}
	var info bundle.Info
	if json.Unmarshal(data, &info) != nil {
		return bundle.Info{}, false
	}
	fi, err := os.Stat(tarPath)
	if err != nil || fi.Size() != info.Size {
		return bundle.Info{}, false
	}
	if err := os.Link(tarPath, dst); err != nil {
		return bundle.Info{}, false
	}
	_ = os.Chtimes(infoPath, fi.ModTime(), timeNow()) // recently used
	return info, true
}

// put records the freshly packed (and fsynced) bundle at src under key.
// The cache is an optimisation: failing to fill it is not an error, and
// nothing in it is waited onto the disk (a submit would wait with it). After
// a crash an entry is whole or missing: its info is renamed into place,
// and get checks it against the bundle's size.
func (c bundleCache) put(key, src string, info bundle.Info) {
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return
	}
	tarPath, infoPath := c.paths(key)
	tmp := tarPath + ".tmp-" + filepath.Base(filepath.Dir(src))
	if err := os.Link(src, tmp); err != nil {
		return
	}
	if err := os.Rename(tmp, tarPath); err != nil {
		_ = os.Remove(tmp)
		return
	}
	data, err := json.Marshal(info)
	if err != nil {
		return
	}
	f, err := os.CreateTemp(c.dir, ".info.tmp-*")
	if err != nil {
		return
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), infoPath)
	}
	if err != nil {
		_ = os.Remove(f.Name())
		return
	}
	c.prune()
}

// prune keeps the cacheKeep most recently used entries, and removes temp
// files a submit killed half-way left behind.
func (c bundleCache) prune() {
	ents, err := os.ReadDir(c.dir)
	if err != nil {
		return
	}
	type used struct {
		key string
		at  int64
	}
	var list []used
	for _, e := range ents {
		fi, err := e.Info()
		if err != nil {
			continue
		}
		if strings.Contains(e.Name(), ".tmp-") {
			if timeNow().Sub(fi.ModTime()) > staleTemp {
				_ = os.Remove(filepath.Join(c.dir, e.Name()))
			}
			continue
		}
		key, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		list = append(list, used{key, fi.ModTime().UnixNano()})
	}
	if len(list) <= cacheKeep {
		return
	}
	sort.Slice(list, func(i, j int) bool { return list[i].at > list[j].at })
	for _, u := range list[cacheKeep:] {
		tarPath, infoPath := c.paths(u.key)
		_ = os.Remove(infoPath)
		_ = os.Remove(tarPath)
	}
}

// tooBig is the cap check, on the fingerprint scan's sizes.
func tooBig(files []bundle.FileSize, total, max int64) error {
	if max > 0 && total > max {
		return &BadInput{Err: &bundle.TooBigError{Total: total, Max: max, Biggest: files[:min(3, len(files))]}}
	}
	return nil
}

var timeNow = time.Now
