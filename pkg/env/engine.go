package env

import (
	"context"
	"errors"
	"io"
	"time"
)

// Labels on every environment image.
const (
	LabelKey     = "ferry.env"         // the key
	LabelBase    = "ferry.env.base"    // the base image's ID
	LabelSpec    = "ferry.env.spec"    // the Spec as JSON
	LabelVersion = "ferry.env.version" // KeyVersion
)

// Errors an Engine returns, wrapped or as is.
var (
	ErrImageNotFound = errors.New("image not found")
	// ErrImageInUse: a container (running or not) uses the image.
	ErrImageInUse = errors.New("image is in use by a container")
	// ErrBuildFailed: the build itself failed (a step exited non-zero, the
	// Dockerfile was refused), as opposed to the daemon being unreachable.
	ErrBuildFailed = errors.New("build failed")
)

// Image is what the Builder needs to know of an image.
type Image struct {
	ID      string // "sha256:…"
	Tags    []string
	Labels  map[string]string
	Size    int64
	Created time.Time
	User    string // the image's USER; "" = root
}

// BuildOptions are the Builder's instructions for one build.
type BuildOptions struct {
	Tag     string // the image's name
	Network string // Docker network for the build's RUN steps
	// Proxy is the egress proxy's URL the build's steps use (as
	// http_proxy and https_proxy); "" = none.
	Proxy string
}

// LabelEgress marks an egress proxy's container and network (value: the
// environment's key).
const LabelEgress = "ferry.env.egress"

// Gate is what an Engine implements to confine builds to the package
// sources: the Builder uses it when Options.BuildNetwork is "".
type Gate interface {
	// OpenEgress starts a proxy that forwards only to allow (host:port
	// pairs), from image (the build's base, so nothing else is needed on
	// the node), on a new internal network for the build of key: the
	// network has no other way out.
	OpenEgress(ctx context.Context, image, key string, allow []string) (*Egress, error)
}

// Egress is one build's way out.
type Egress struct {
	Network string // the build joins this network
	Proxy   string // and reaches the sources through this URL
	// Close stops and removes the proxy and the network and returns what
	// the proxy refused ("host:port"), in the order first seen.
	Close func(ctx context.Context) (denied []string)
}

// Engine is the seam in front of the Docker Engine API for images.
type Engine interface {
	// ImageInspect returns the image ref (name:tag or ID) names, or an error
	// wrapping ErrImageNotFound.
	ImageInspect(ctx context.Context, ref string) (Image, error)
	// ImageList returns the images that carry label (any value).
	ImageList(ctx context.Context, label string) ([]Image, error)
	// ImageRemove untags ref and deletes the image when no other tag names
	// it, never forcing: an error wraps ErrImageInUse when a container uses
	// it, ErrImageNotFound when it is gone.
	ImageRemove(ctx context.Context, ref string) error
	// ImageBuild builds the Dockerfile at the root of the tar stream
	// buildContext with the classic builder, never pulling, writes the
	// build's output to out and returns the new image's ID. A failed
	// build's error wraps ErrBuildFailed.
	ImageBuild(ctx context.Context, buildContext io.Reader, opts BuildOptions, out io.Writer) (string, error)
}
