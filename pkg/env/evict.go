package env

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// ErrNotFound: no environment matches.
var ErrNotFound = errors.New("no such environment")

// Info is one environment image on the node, as admins see it.
type Info struct {
	Key  string `json:"key"`
	Name string `json:"name"` // "ferry/env:<key>"; the image ID when untagged
	ID   string `json:"id"`
	Base string `json:"base"` // the base image's ID
	Size int64  `json:"size"` // with its base
	// OwnSize is what the environment adds to its base: what removing it
	// frees, and what the eviction's size limit counts.
	OwnSize  int64     `json:"own_size"`
	Created  time.Time `json:"created"`
	LastUsed time.Time `json:"last_used"` // the recorded last use, else Created
	Spec     Spec      `json:"spec"`
}

// Eviction is an environment Evict removed, and why.
type Eviction struct {
	Info
	Reason string `json:"reason"`
}

// List returns the node's environments, most recently used first.
func (b *Builder) List(ctx context.Context) ([]Info, error) {
	imgs, err := b.engine.ImageList(ctx, LabelKey)
	if err != nil {
		return nil, fmt.Errorf("list environments: %w", err)
	}
	baseSizes := map[string]int64{}
	var out []Info
	for _, img := range imgs {
		key := img.Labels[LabelKey]
		if !keyRE.MatchString(key) {
			continue
		}
		in := Info{Key: key, Name: img.ID, ID: img.ID, Base: img.Labels[LabelBase],
			Size: img.Size, OwnSize: img.Size, Created: img.Created}
		if slices.Contains(img.Tags, ImageName(key)) {
			in.Name = ImageName(key)
		}
		_ = json.Unmarshal([]byte(img.Labels[LabelSpec]), &in.Spec)
		if in.Base != "" {
			bs, ok := baseSizes[in.Base]
			if !ok {
				bs = -1
				if bi, err := b.engine.ImageInspect(ctx, in.Base); err == nil {
					bs = bi.Size
				}
				baseSizes[in.Base] = bs
			}
			if bs >= 0 && bs <= img.Size {
				in.OwnSize = img.Size - bs
			}
		}
		in.LastUsed = b.state.lastUsed(key)
		if in.LastUsed.IsZero() {
			in.LastUsed = in.Created
		}
		out = append(out, in)
	}
	slices.SortFunc(out, func(a, b Info) int {
		return cmp.Or(b.LastUsed.Compare(a.LastUsed), strings.Compare(a.Key, b.Key))
	})
	return out, nil
}

// Evict removes environments unused for longer than maxAge (0: no age
// limit), then the least recently used ones until their total OwnSize is at
// most maxTotalBytes (0: no size limit). It never removes an image for
// which inUse (may be nil) says yes, one a container uses, or one being
// built or looked up under its lock at that moment. It returns what it
// removed, and the errors of removals that failed, joined.
func (b *Builder) Evict(ctx context.Context, maxAge time.Duration, maxTotalBytes int64, inUse func(imageID string) bool) ([]Eviction, error) {
	list, err := b.List(ctx)
	if err != nil {
		return nil, err
	}
	if inUse == nil {
		inUse = func(string) bool { return false }
	}
	slices.Reverse(list) // least recently used first
	now := b.opts.Now()
	var (
		total   int64
		removed []Eviction
		kept    []Info
		errs    []error
	)
	for _, in := range list {
		total += in.OwnSize
	}
	for _, in := range list {
		idle := now.Sub(in.LastUsed)
		if maxAge > 0 && idle > maxAge && !inUse(in.ID) {
			ok, err := b.remove(ctx, in)
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				removed = append(removed, Eviction{Info: in, Reason: "unused for " + days(idle)})
				total -= in.OwnSize
				continue
			}
		}
		kept = append(kept, in)
	}
	for _, in := range kept {
		if maxTotalBytes <= 0 || total <= maxTotalBytes {
			break
		}
		if inUse(in.ID) {
			continue
		}
		reason := fmt.Sprintf("environments took %s, over the limit of %s; this one was the least recently used", bytesText(total), bytesText(maxTotalBytes))
		ok, err := b.remove(ctx, in)
		if err != nil {
			errs = append(errs, err)
		}
		if ok {
			removed = append(removed, Eviction{Info: in, Reason: reason})
			total -= in.OwnSize
		}
	}
	return removed, errors.Join(errs...)
}

// Remove removes one environment, named by its key, a prefix of it (at
// least 4 characters) or its image ID, for admins. It refuses an
// environment a container uses or a build holds.
func (b *Builder) Remove(ctx context.Context, name string) (Info, error) {
	in, err := b.find(ctx, name)
	if err != nil {
		return Info{}, err
	}
	lock, err := b.state.tryLockKey(in.Key)
	if err != nil {
		return Info{}, err
	}
	if lock == nil {
		return Info{}, fmt.Errorf("environment %s is being built or looked up right now: try again in a moment", Short(in.Key))
	}
	defer lock.unlock()
	err = b.engine.ImageRemove(ctx, in.Name)
	switch {
	case errors.Is(err, ErrImageInUse):
		return Info{}, fmt.Errorf("environment %s is in use by a container: remove it when its jobs have ended", Short(in.Key))
	case err != nil && !errors.Is(err, ErrImageNotFound):
		return Info{}, fmt.Errorf("remove environment %s: %w", Short(in.Key), err)
	}
	if in.Name == ImageName(in.Key) {
		b.state.forget(in.Key)
	}
	return in, nil
}

func (b *Builder) find(ctx context.Context, name string) (Info, error) {
	name = strings.TrimPrefix(strings.TrimPrefix(name, "ferry/env:"), "sha256:")
	if len(name) < 4 {
		return Info{}, fmt.Errorf("environment %q: give at least 4 characters of its key", name)
	}
	list, err := b.List(ctx)
	if err != nil {
		return Info{}, err
	}
	var match []Info
	for _, in := range list {
		if strings.HasPrefix(in.Key, name) || strings.HasPrefix(strings.TrimPrefix(in.ID, "sha256:"), name) {
			match = append(match, in)
		}
	}
	switch len(match) {
	case 0:
		return Info{}, fmt.Errorf("environment %s: %w", name, ErrNotFound)
	case 1:
		return match[0], nil
	}
	return Info{}, fmt.Errorf("environment %s is ambiguous: %d environments match, give more of the key", name, len(match))
}

// remove removes in's image under its key's lock, skipping (ok false, no
// error) an environment that is locked, used since List read it, or used by
// a container.
func (b *Builder) remove(ctx context.Context, in Info) (bool, error) {
	lock, err := b.state.tryLockKey(in.Key)
	if err != nil || lock == nil {
		return false, err
	}
	defer lock.unlock()
	if lu := b.state.lastUsed(in.Key); lu.After(in.LastUsed) {
		return false, nil
	}
	err = b.engine.ImageRemove(ctx, in.Name)
	switch {
	case errors.Is(err, ErrImageInUse):
		return false, nil
	case err != nil && !errors.Is(err, ErrImageNotFound):
		return false, fmt.Errorf("remove environment %s: %w", Short(in.Key), err)
	}
	if in.Name == ImageName(in.Key) {
		b.state.forget(in.Key) // unlinks the lock file last, still holding it
	}
	return true, nil
}

func days(d time.Duration) string {
	if d >= 48*time.Hour {
		return fmt.Sprintf("%d days", int(d/(24*time.Hour)))
	}
	return d.Round(time.Minute).String()
}

func bytesText(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20))
	default:
		return fmt.Sprintf("%d B", n)
	}
}
