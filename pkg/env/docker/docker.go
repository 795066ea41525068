// Package docker is the environment Engine backed by the Docker Engine API
// (github.com/docker/docker/client, API version negotiated; never the
// docker CLI): image inspect, list, remove, and builds with the classic
// builder from a tar context, never pulling. Only the root side (the agent,
// ferryd) imports it.
package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/docker/docker/api/types/build"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/image"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"

	"github.com/ferry-hpc/ferry/pkg/env"
)

// Engine implements env.Engine.
type Engine struct {
	cli *client.Client
}

// New connects to the daemon named by DOCKER_HOST, or the default socket.
func New() (*Engine, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Engine{cli: cli}, nil
}

// Close releases the client.
func (e *Engine) Close() error { return e.cli.Close() }

func (e *Engine) ImageInspect(ctx context.Context, ref string) (env.Image, error) {
	img, err := e.cli.ImageInspect(ctx, ref)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return env.Image{}, fmt.Errorf("image %s: %w", ref, env.ErrImageNotFound)
		}
		return env.Image{}, fmt.Errorf("inspect image %s: %w", ref, err)
	}
	out := env.Image{ID: img.ID, Tags: img.RepoTags, Size: img.Size}
	out.Created, _ = time.Parse(time.RFC3339Nano, img.Created)
	if img.Config != nil {
		out.Labels = img.Config.Labels
		out.User = img.Config.User
	}
	return out, nil
}

func (e *Engine) ImageList(ctx context.Context, label string) ([]env.Image, error) {
	list, err := e.cli.ImageList(ctx, image.ListOptions{Filters: filters.NewArgs(filters.Arg("label", label))})
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	out := make([]env.Image, 0, len(list))
	for _, s := range list {
		out = append(out, env.Image{ID: s.ID, Tags: s.RepoTags, Labels: s.Labels, Size: s.Size,
			Created: time.Unix(s.Created, 0)})
	}
	return out, nil
}

func (e *Engine) ImageRemove(ctx context.Context, ref string) error {
	_, err := e.cli.ImageRemove(ctx, ref, image.RemoveOptions{PruneChildren: true})
	switch {
	case err == nil:
		return nil
	case errdefs.IsNotFound(err):
		return fmt.Errorf("remove image %s: %w", ref, env.ErrImageNotFound)
	case errdefs.IsConflict(err):
		return fmt.Errorf("remove image %s: %w (%v)", ref, env.ErrImageInUse, err)
	}
	return fmt.Errorf("remove image %s: %w", ref, err)
}

// buildMessage is one line of the daemon's build stream.
type buildMessage struct {
	Stream      string `json:"stream"`
	Status      string `json:"status"`
	Error       string `json:"error"`
	ErrorDetail *struct {
		Message string `json:"message"`
	} `json:"errorDetail"`
	Aux json.RawMessage `json:"aux"`
}

func (e *Engine) ImageBuild(ctx context.Context, buildContext io.Reader, opts env.BuildOptions, out io.Writer) (string, error) {
	var args map[string]*string
	if opts.Proxy != "" {
		// Docker's predefined proxy arguments: the steps see them, the
		// image's history and config do not.
		args = map[string]*string{}
		for _, k := range []string{"http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY"} {
			args[k] = &opts.Proxy
		}
	}
	resp, err := e.cli.ImageBuild(ctx, buildContext, build.ImageBuildOptions{
		BuildArgs:   args,
		Tags:        []string{opts.Tag},
		NetworkMode: opts.Network,
		Dockerfile:  "Dockerfile",
		Remove:      true, // intermediate containers, also after a failure
		ForceRemove: true,
		PullParent:  false,
		Version:     build.BuilderV1,
	})
	if err != nil {
		return "", fmt.Errorf("start build: %w", err)
	}
	defer resp.Body.Close()
	steps := &stepImages{}
	var id string
	dec := json.NewDecoder(resp.Body)
	for {
		var m buildMessage
		if err := dec.Decode(&m); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			e.removeSteps(ctx, steps.ids)
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			return "", fmt.Errorf("read build output: %w", err)
		}
		switch {
		case m.Error != "" || m.ErrorDetail != nil:
			msg := m.Error
			if m.ErrorDetail != nil && m.ErrorDetail.Message != "" {
				msg = m.ErrorDetail.Message
			}
			fmt.Fprintln(out, strings.TrimRight(msg, "\n"))
			e.removeSteps(ctx, steps.ids)
			return "", fmt.Errorf("%w: %s", env.ErrBuildFailed, strings.TrimSpace(msg))
		case m.Stream != "":
			// The classic builder colours a step's stderr: logs get text.
			stream := ansiRE.ReplaceAllString(m.Stream, "")
			_, _ = io.WriteString(out, stream)
			steps.feed(stream)
		case m.Status != "":
			fmt.Fprintln(out, m.Status)
		case len(m.Aux) > 0:
			var aux struct{ ID string }
			if json.Unmarshal(m.Aux, &aux) == nil && aux.ID != "" {
				id = aux.ID
			}
		}
	}
	if id == "" { // daemons that send no aux ID: the tag names it
		img, err := e.ImageInspect(ctx, opts.Tag)
		if err != nil {
			return "", fmt.Errorf("find the built image: %w", err)
		}
		id = img.ID
	}
	return id, nil
}

// stepImages collects the images a classic build's steps made, from its
// " ---> <id>" lines, leaving out the FROM step's (the base image).
type stepImages struct {
	line  strings.Builder
	steps int
	ids   []string
}

var ansiRE = regexp.MustCompile("\x1b\\[[0-9;]*[A-Za-z]")

var stepIDRE = regexp.MustCompile(`^ ---> ([0-9a-f]{12,64})$`)

func (s *stepImages) feed(chunk string) {
	for _, c := range chunk {
		if c != '\n' {
			s.line.WriteRune(c)
			continue
		}
		line := strings.TrimRight(s.line.String(), "\r ")
		s.line.Reset()
		if m := stepIDRE.FindStringSubmatch(line); m != nil {
			if s.steps++; s.steps > 1 {
				s.ids = append(s.ids, m[1])
			}
		}
	}
}

// removeSteps removes, newest first, the untagged images a failed build's
// steps left. It never forces: an image another image builds on or a
// container uses stays (the daemon refuses), and so does any tagged one.
func (e *Engine) removeSteps(ctx context.Context, ids []string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	for _, id := range slices.Backward(ids) {
		img, err := e.cli.ImageInspect(ctx, id)
		if err != nil || len(img.RepoTags) > 0 {
			continue
		}
		_, _ = e.cli.ImageRemove(ctx, img.ID, image.RemoveOptions{PruneChildren: false})
	}
}

var _ env.Engine = (*Engine)(nil)
