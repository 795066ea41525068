package env

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// fakeEngine is an in-memory Engine. Builds read the whole context, record
// it, run buildFn (which may block, write output or fail) and add an image.
type fakeEngine struct {
	mu      sync.Mutex
	images  map[string]*Image // by ID
	builds  []fakeBuild
	buildFn func(ctx context.Context, b fakeBuild, out io.Writer) error
	inUse   map[string]bool // image IDs a container uses
	inspErr error           // returned by every ImageInspect when set
	now     func() time.Time
	n       int

	// The Gate: every egress opened, how many were closed, what the
	// proxy "refused" (returned by Close), and an error for OpenEgress.
	egresses  []fakeEgress
	closed    int
	denied    []string
	egressErr error
}

type fakeEgress struct {
	Image, Key string
	Allow      []string
}

// The fake egress's network and proxy.
const (
	fakeEgressNetwork = "ferry-egress-test"
	fakeEgressProxy   = "http://172.30.0.2:3128"
)

func (f *fakeEngine) OpenEgress(_ context.Context, image, key string, allow []string) (*Egress, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.egressErr != nil {
		return nil, f.egressErr
	}
	f.egresses = append(f.egresses, fakeEgress{image, key, slices.Clone(allow)})
	return &Egress{Network: fakeEgressNetwork, Proxy: fakeEgressProxy, Close: func(context.Context) []string {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.closed++
		return f.denied
	}}, nil
}

type fakeBuild struct {
	Files map[string]string
	Opts  BuildOptions
}

func newFakeEngine() *fakeEngine {
	return &fakeEngine{images: map[string]*Image{}, inUse: map[string]bool{}, now: time.Now}
}

// addImage adds an image under tag ("" = untagged) and returns its ID.
func (f *fakeEngine) addImage(tag string, img Image) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if img.ID == "" {
		f.n++
		sum := sha256.Sum256([]byte(fmt.Sprint("image", f.n)))
		img.ID = "sha256:" + hex.EncodeToString(sum[:])
	}
	if tag != "" {
		f.untagLocked(tag)
		img.Tags = append(img.Tags, tag)
	}
	if img.Created.IsZero() {
		img.Created = f.now()
	}
	f.images[img.ID] = &img
	return img.ID
}

func (f *fakeEngine) untagLocked(tag string) {
	for _, im := range f.images {
		im.Tags = slices.DeleteFunc(im.Tags, func(t string) bool { return t == tag })
	}
}

func (f *fakeEngine) findLocked(ref string) *Image {
	if im, ok := f.images[ref]; ok {
		return im
	}
	for _, im := range f.images {
		if slices.Contains(im.Tags, ref) {
			return im
		}
	}
	return nil
}

func (f *fakeEngine) buildCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.builds)
}

func (f *fakeEngine) lastBuild() fakeBuild {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.builds[len(f.builds)-1]
}

func (f *fakeEngine) ImageInspect(_ context.Context, ref string) (Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.inspErr != nil {
		return Image{}, f.inspErr
	}
	im := f.findLocked(ref)
	if im == nil {
		return Image{}, fmt.Errorf("image %s: %w", ref, ErrImageNotFound)
	}
	c := *im
	c.Tags = slices.Clone(im.Tags)
	c.Labels = maps.Clone(im.Labels)
	return c, nil
}

func (f *fakeEngine) ImageList(_ context.Context, label string) ([]Image, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Image
	for _, im := range f.images {
		if _, ok := im.Labels[label]; ok {
			c := *im
			c.Tags = slices.Clone(im.Tags)
			out = append(out, c)
		}
	}
	return out, nil
}

func (f *fakeEngine) ImageRemove(_ context.Context, ref string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	im := f.findLocked(ref)
	if im == nil {
		return fmt.Errorf("remove %s: %w", ref, ErrImageNotFound)
	}
	if f.inUse[im.ID] {
		return fmt.Errorf("remove %s: %w", ref, ErrImageInUse)
	}
	if ref != im.ID && len(im.Tags) > 1 {
		f.untagLocked(ref)
		return nil
	}
	delete(f.images, im.ID)
	return nil
}

func (f *fakeEngine) ImageBuild(ctx context.Context, buildContext io.Reader, opts BuildOptions, out io.Writer) (string, error) {
	files, err := readTar(buildContext)
	if err != nil {
		return "", fmt.Errorf("read build context: %w", err)
	}
	b := fakeBuild{Files: files, Opts: opts}
	f.mu.Lock()
	f.builds = append(f.builds, b)
	fn := f.buildFn
	f.mu.Unlock()
	if fn != nil {
		if err := fn(ctx, b, out); err != nil {
			return "", err
		}
	}
	fmt.Fprintf(out, "Step 1/1 : FROM base\nSuccessfully built\n")
	labels, err := dockerfileLabels(files["Dockerfile"])
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrBuildFailed, err)
	}
	return f.addImage(opts.Tag, Image{Labels: labels, Size: 1000}), nil
}

var labelPairRE = regexp.MustCompile(`([a-z.]+)="((?:[^"\\]|\\.)*)"`)

// dockerfileLabels reads the LABEL line as Docker does: double-quoted
// values with \" and \\ escapes.
func dockerfileLabels(dockerfile string) (map[string]string, error) {
	labels := map[string]string{}
	for _, line := range strings.Split(dockerfile, "\n") {
		rest, ok := strings.CutPrefix(line, "LABEL ")
		if !ok {
			continue
		}
		for _, m := range labelPairRE.FindAllStringSubmatch(rest, -1) {
			v, err := strconv.Unquote(`"` + m[2] + `"`)
			if err != nil {
				return nil, fmt.Errorf("LABEL %s: %w", m[1], err)
			}
			labels[m[1]] = v
		}
	}
	return labels, nil
}

func readTar(r io.Reader) (map[string]string, error) {
	files := map[string]string{}
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files, nil
		}
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		if _, err := io.Copy(&buf, tr); err != nil {
			return nil, err
		}
		files[h.Name] = buf.String()
	}
}

// syncBuffer is a log several goroutines may write.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}
