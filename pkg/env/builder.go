package env

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"
)

// Defaults for Options.
const (
	DefaultStateDir     = "/var/lib/ferry/env"
	DefaultFailureTTL   = 5 * time.Minute
	DefaultBuildTimeout = 30 * time.Minute
	// tailLines is how many of the build's last lines a failure carries.
	tailLines = 20
)

// Options configure a Builder.
type Options struct {
	// StateDir holds locks, failure records and last-use times
	// (default DefaultStateDir). Node-local, root-only.
	StateDir string
	// Sources are the admin's package sources.
	Sources Sources
	// FailureTTL is how long a failed build is answered from its record
	// instead of being retried (default DefaultFailureTTL; negative: never
	// cached).
	FailureTTL time.Duration
	// BuildTimeout bounds one build (default DefaultBuildTimeout).
	BuildTimeout time.Duration
	// BuildNetwork is the Docker network the build's RUN steps use. ""
	// (the default) confines the build: it runs on a network of its own
	// with no route out but an egress proxy (the engine's Gate) that
	// forwards only to the configured sources, or with no network at all
	// when it needs none (a wheelhouse). A network's name ("bridge", or
	// one the admin firewalled) hands that job to the admin.
	BuildNetwork string
	// Now is the clock (tests); default time.Now.
	Now func() time.Time
}

// Builder builds and finds environments on one node. It is safe for
// concurrent use, and several processes may share a state dir.
type Builder struct {
	engine  Engine
	opts    Options
	state   stateDir
	hashes  hashCache
	mu      sync.Mutex
	flights map[string]*flight
}

// flight is one build that several Ensure calls in this process wait for.
type flight struct {
	done chan struct{}
	ref  ImageRef
	err  error
}

// ImageRef names an environment's image.
type ImageRef struct {
	Name string // "ferry/env:<key>", or the base image's name for an empty spec
	ID   string // the image ID ("sha256:…"): what a sandbox runs and result.json records
	Key  string // the environment's key; "" for an empty spec
}

// New returns a Builder on engine, creating the state dir.
func New(engine Engine, opts Options) (*Builder, error) {
	if opts.StateDir == "" {
		opts.StateDir = DefaultStateDir
	}
	if opts.FailureTTL == 0 {
		opts.FailureTTL = DefaultFailureTTL
	}
	if opts.BuildTimeout <= 0 {
		opts.BuildTimeout = DefaultBuildTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if err := opts.Sources.Validate(); err != nil {
		return nil, fmt.Errorf("environment sources: %w", err)
	}
	if n := opts.BuildNetwork; n != "" && (n == "host" || !networkNameRE.MatchString(n)) {
		return nil, fmt.Errorf("build network %q: want a Docker network's name, not host (or nothing: confined to the sources)", n)
	}
	b := &Builder{engine: engine, opts: opts, state: stateDir(opts.StateDir), flights: map[string]*flight{}}
	if err := b.state.init(); err != nil {
		return nil, err
	}
	return b, nil
}

// networkNameRE is a Docker network's name.
var networkNameRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$`)

// BuildError is a failed environment build. Ensure returns the same error,
// with Cached set, for the same key until RetryAfter.
type BuildError struct {
	Key        string
	Reason     string    // the daemon's one-line reason
	Lines      []string  // the build's last lines
	At         time.Time // when the build failed
	RetryAfter time.Time // until then Ensure answers from the failure record
	Cached     bool      // answered from the record, no build was tried
}

func (e *BuildError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "environment %s failed to build: %s", Short(e.Key), e.Reason)
	if len(e.Lines) > 0 {
		b.WriteString("; the build's last lines:")
		for _, l := range e.Lines {
			b.WriteString("\n  | " + l)
		}
	}
	return b.String()
}

// Key resolves base and returns the key Ensure would build spec under.
func (b *Builder) Key(ctx context.Context, spec Spec, base string) (string, error) {
	spec, err := NewSpec(spec.Pip, spec.Apt)
	if err != nil {
		return "", err
	}
	img, err := b.inspectBase(ctx, base)
	if err != nil {
		return "", err
	}
	src, err := b.resolvedSources(spec)
	if err != nil {
		return "", err
	}
	return Key(img.ID, spec, src), nil
}

// Ensure returns the environment image for spec on top of base (an image
// name or ID the caller has allowed), building it if needed. An empty spec
// returns base itself. While another job builds the same environment,
// Ensure waits and says so in log; the builder's job gets the build's
// output in its log. log may be nil.
func (b *Builder) Ensure(ctx context.Context, spec Spec, base string, log io.Writer) (ImageRef, error) {
	if log == nil {
		log = io.Discard
	}
	spec, err := NewSpec(spec.Pip, spec.Apt) // normalised as the key wants it
	if err != nil {
		return ImageRef{}, err
	}
	baseImg, err := b.inspectBase(ctx, base)
	if err != nil {
		return ImageRef{}, err
	}
	if spec.Empty() {
		return ImageRef{Name: base, ID: baseImg.ID}, nil
	}
	if len(spec.Pip) > 0 && !b.opts.Sources.hasPip() {
		return ImageRef{}, errors.New("pip requirements need a package source, and this cluster has none: ask an admin to set pip_index_url or pip_find_links, or install the packages from Debian with apt:")
	}
	src, err := b.resolvedSources(spec)
	if err != nil {
		return ImageRef{}, err
	}
	key := Key(baseImg.ID, spec, src)

	if ref, ok, err := b.lookup(ctx, key); err != nil {
		return ImageRef{}, err
	} else if ok {
		b.state.touchUsed(key, b.opts.Now())
		return ref, nil
	}
	if fe := b.state.failure(key, b.opts.Now(), b.opts.FailureTTL); fe != nil {
		b.sayCachedFailure(log, fe)
		return ImageRef{}, fe
	}

	b.mu.Lock()
	f, joined := b.flights[key]
	if !joined {
		f = &flight{done: make(chan struct{})}
		b.flights[key] = f
	}
	b.mu.Unlock()

	started := b.opts.Now()
	var out *detachWriter
	if joined {
		fmt.Fprintf(log, "waiting for environment %s, being built by another job\n", Short(key))
	} else {
		out = &detachWriter{w: log}
		p := plan{key: key, base: baseImg, spec: spec, sources: src}
		// The build outlives a caller that gives up: others may wait for it.
		bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.opts.BuildTimeout)
		go func() {
			defer cancel()
			f.ref, f.err = b.buildOnce(bctx, p, out)
			b.mu.Lock()
			delete(b.flights, key)
			b.mu.Unlock()
			close(f.done)
		}()
	}
	select {
	case <-f.done:
	case <-ctx.Done():
		if out != nil {
			out.detach()
		}
		return ImageRef{}, fmt.Errorf("wait for environment %s: %w", Short(key), ctx.Err())
	}
	if f.err != nil {
		return ImageRef{}, f.err
	}
	if joined {
		fmt.Fprintf(log, "environment %s ready after %s\n", Short(key), roundDuration(b.opts.Now().Sub(started)))
	}
	b.state.touchUsed(key, b.opts.Now())
	return f.ref, nil
}

// buildOnce builds p under the node-wide lock for its key, unless another
// process built it (or failed to) while this one waited.
func (b *Builder) buildOnce(ctx context.Context, p plan, log io.Writer) (ImageRef, error) {
	waited := false
	lock, err := b.state.lockKey(ctx, p.key, func() {
		waited = true
		fmt.Fprintf(log, "waiting for environment %s, being built by another job\n", Short(p.key))
	})
	if err != nil {
		return ImageRef{}, fmt.Errorf("wait for environment %s: %w", Short(p.key), err)
	}
	defer lock.unlock()
	started := b.opts.Now()
	if ref, ok, err := b.lookup(ctx, p.key); err != nil {
		return ImageRef{}, err
	} else if ok {
		if waited {
			fmt.Fprintf(log, "environment %s ready\n", Short(p.key))
		}
		return ref, nil
	}
	if fe := b.state.failure(p.key, b.opts.Now(), b.opts.FailureTTL); fe != nil {
		b.sayCachedFailure(log, fe)
		return ImageRef{}, fe
	}

	if p.sources.PipFindLinks != "" && len(p.spec.Pip) > 0 {
		files, err := readWheelhouse(p.sources.PipFindLinks, &b.hashes)
		if err != nil {
			return ImageRef{}, err
		}
		if wheelhouseDigest(files) != p.sources.WheelhouseDigest {
			return ImageRef{}, errWheelhouseChanged
		}
		p.wheels = files
	}

	fmt.Fprintf(log, "building environment %s (%s)\n", Short(p.key), p.spec.Summary())
	tail := &tailWriter{n: tailLines}
	writers := []io.Writer{log, tail}
	if lf, err := os.OpenFile(b.state.path("logs", p.key, ".log"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600); err == nil {
		defer lf.Close()
		writers = append(writers, lf)
	}
	id, err := b.build(ctx, p, io.MultiWriter(writers...))
	if err != nil {
		if !errors.Is(err, ErrBuildFailed) {
			return ImageRef{}, fmt.Errorf("build environment %s: %w", Short(p.key), err)
		}
		now := b.opts.Now()
		be := &BuildError{Key: p.key, Reason: buildReason(err), Lines: tail.Lines(), At: now, RetryAfter: now.Add(b.opts.FailureTTL)}
		if n := len(be.Lines); n > 0 && strings.TrimSpace(be.Lines[n-1]) == be.Reason {
			be.Lines = be.Lines[:n-1] // the reason is in the message already
		}
		if b.opts.FailureTTL > 0 {
			_ = b.state.recordFailure(be)
		}
		return ImageRef{}, be
	}
	b.state.clearFailure(p.key)
	b.state.touchUsed(p.key, b.opts.Now())
	fmt.Fprintf(log, "built environment %s in %s\n", Short(p.key), roundDuration(b.opts.Now().Sub(started)))
	return ImageRef{Name: ImageName(p.key), ID: id, Key: p.key}, nil
}

// errBuildDone stops a context writer whose engine stopped reading.
var errBuildDone = errors.New("build finished")

// build streams p's context into the engine.
func (b *Builder) build(ctx context.Context, p plan, out io.Writer) (_ string, err error) {
	if _, err := p.dockerfile(); err != nil {
		return "", err
	}
	opts := BuildOptions{Tag: ImageName(p.key), Network: b.opts.BuildNetwork}
	if opts.Network == "" {
		eg, oerr := b.openEgress(ctx, p, out)
		if oerr != nil {
			return "", oerr
		}
		if eg == nil {
			opts.Network = "none"
		} else {
			opts.Network, opts.Proxy = eg.Network, eg.Proxy
			defer func() {
				// The egress goes whatever happens; what it refused
				// explains a failed build.
				if denied := eg.Close(ctx); len(denied) > 0 && errors.Is(err, ErrBuildFailed) {
					fmt.Fprintf(out, "ferry's egress proxy refused: %s\n", strings.Join(denied, ", "))
					err = fmt.Errorf("%w (the build tried to reach %s, not among this cluster's package sources)", err, strings.Join(denied, ", "))
				}
			}()
		}
	}
	pr, pw := io.Pipe()
	wrote := make(chan error, 1)
	go func() {
		err := p.writeContext(pw)
		pw.CloseWithError(err)
		wrote <- err
	}()
	id, err := b.engine.ImageBuild(ctx, pr, opts, out)
	pr.CloseWithError(errBuildDone) // unblocks the writer if the engine stopped reading
	if werr := <-wrote; werr != nil && !errors.Is(werr, errBuildDone) {
		if err == nil {
			// The engine had all it read: do not keep an image built
			// from a context that did not match the key.
			_ = b.engine.ImageRemove(context.WithoutCancel(ctx), ImageName(p.key))
		}
		return "", werr
	}
	if err != nil {
		return "", err
	}
	return id, nil
}

// openEgress opens p's confined way out: nil when the build needs no
// network at all.
func (b *Builder) openEgress(ctx context.Context, p plan, out io.Writer) (*Egress, error) {
	allow, err := p.egressHosts()
	if err != nil || len(allow) == 0 {
		return nil, err
	}
	gate, ok := b.engine.(Gate)
	if !ok {
		return nil, errors.New("this engine cannot confine builds to the package sources: set environments.build_network to a network of your own")
	}
	eg, err := gate.OpenEgress(ctx, p.base.ID, p.key, allow)
	if err != nil {
		return nil, fmt.Errorf("open the build's way out to %s: %w", strings.Join(allow, ", "), err)
	}
	fmt.Fprintf(out, "build network: %s only, through ferry's egress proxy\n", strings.Join(allow, ", "))
	return eg, nil
}

// lookup finds key's image; ok is false when there is none.
func (b *Builder) lookup(ctx context.Context, key string) (ImageRef, bool, error) {
	img, err := b.engine.ImageInspect(ctx, ImageName(key))
	switch {
	case errors.Is(err, ErrImageNotFound):
		return ImageRef{}, false, nil
	case err != nil:
		return ImageRef{}, false, fmt.Errorf("inspect environment %s: %w", Short(key), err)
	case img.Labels[LabelKey] != key:
		// A tag someone else put there: not ours, build over it.
		return ImageRef{}, false, nil
	}
	return ImageRef{Name: ImageName(key), ID: img.ID, Key: key}, true, nil
}

func (b *Builder) inspectBase(ctx context.Context, base string) (Image, error) {
	img, err := b.engine.ImageInspect(ctx, base)
	if errors.Is(err, ErrImageNotFound) {
		return Image{}, fmt.Errorf("base image %s is not on this worker: ask an admin to build it", base)
	}
	if err != nil {
		return Image{}, fmt.Errorf("inspect base image %s: %w", base, err)
	}
	return img, nil
}

// resolvedSources fills in the wheelhouse's digest when spec needs pip.
func (b *Builder) resolvedSources(spec Spec) (Sources, error) {
	src := b.opts.Sources
	if src.PipFindLinks != "" && len(spec.Pip) > 0 {
		files, err := readWheelhouse(src.PipFindLinks, &b.hashes)
		if err != nil {
			return Sources{}, err
		}
		src.WheelhouseDigest = wheelhouseDigest(files)
	}
	return src, nil
}

func (b *Builder) sayCachedFailure(log io.Writer, fe *BuildError) {
	fmt.Fprintf(log, "environment %s failed to build at %s; not trying again before %s\n",
		Short(fe.Key), fe.At.UTC().Format("15:04:05 UTC"), fe.RetryAfter.UTC().Format("15:04:05 UTC"))
}

// buildReason is the engine's message without the sentinel's words.
func buildReason(err error) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, ErrBuildFailed.Error()+": ")
	msg = strings.ReplaceAll(msg, "\n", " ")
	return strings.TrimSpace(msg)
}

func roundDuration(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(100 * time.Millisecond)
}

// detachWriter forwards to w until detached: the build may outlive the job
// that started it, whose log must not be written after it left. Its
// errors are ignored: a broken log does not fail a build others wait for.
type detachWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (d *detachWriter) Write(p []byte) (int, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.w != nil {
		_, _ = d.w.Write(p)
	}
	return len(p), nil
}

func (d *detachWriter) detach() {
	d.mu.Lock()
	d.w = nil
	d.mu.Unlock()
}
