// Package docker is the sandbox Engine backed by the Docker Engine API
// (github.com/docker/docker/client, API version negotiated; never the docker
// CLI). Only the agent and the epilog's fallback import it, so the user's
// ferry binary carries no Docker client at all.
package docker

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/client"
	"github.com/docker/docker/errdefs"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/ferry-hpc/ferry/pkg/sandbox"
)

// Engine implements sandbox.Engine. The API version is negotiated, so old
// and new daemons both work.
type Engine struct {
	cli *client.Client

	mu     sync.Mutex
	copies map[string]chan struct{} // container id → closed when output is drained
}

// New connects to the daemon named by DOCKER_HOST, or the default socket.
func New() (*Engine, error) {
	cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, fmt.Errorf("docker client: %w", err)
	}
	return &Engine{cli: cli, copies: map[string]chan struct{}{}}, nil
}

// Ping checks the daemon answers.
func (d *Engine) Ping(ctx context.Context) error {
	_, err := d.cli.Ping(ctx)
	return err
}

// Close releases the client.
func (d *Engine) Close() error { return d.cli.Close() }

func (d *Engine) Start(ctx context.Context, spec sandbox.ContainerSpec, out io.Writer) (sandbox.Container, error) {
	img, err := d.cli.ImageInspect(ctx, spec.Image)
	if err != nil {
		if errdefs.IsNotFound(err) {
			return sandbox.Container{}, fmt.Errorf("image %s is not on this worker: ask an admin to build it", spec.Image)
		}
		return sandbox.Container{}, fmt.Errorf("inspect image %s: %w", spec.Image, err)
	}
	cfg, host := containerConfig(spec)
	created, err := d.cli.ContainerCreate(ctx, cfg, host, nil, nil, spec.Name)
	if err != nil {
		return sandbox.Container{}, fmt.Errorf("create container: %w", err)
	}
	c := sandbox.Container{ID: created.ID, ImageDigest: img.ID}
	att, err := d.cli.ContainerAttach(ctx, created.ID, container.AttachOptions{Stream: true, Stdout: true, Stderr: true})
	if err != nil {
		d.removeQuietly(created.ID)
		return sandbox.Container{}, fmt.Errorf("attach container: %w", err)
	}
	done := make(chan struct{})
	d.mu.Lock()
	d.copies[created.ID] = done
	d.mu.Unlock()
	go func() {
		defer close(done)
		defer att.Close()
		_, _ = stdcopy.StdCopy(out, out, att.Reader)
	}()
	if err := d.cli.ContainerStart(ctx, created.ID, container.StartOptions{}); err != nil {
		att.Close()
		d.removeQuietly(created.ID)
		return sandbox.Container{}, fmt.Errorf("start container: %w", err)
	}
	return c, nil
}

// containerConfig translates a decided spec into the Docker Engine's
// create request, adding only the lockdown every sandbox gets: a read-only
// root, no capabilities but the policy's, no new privileges, an init, a
// private IPC namespace, /tmp as a small tmpfs, swap no larger than the
// memory limit. It grants nothing the spec does not say: no privileged
// mode, no devices (GPUs only through a device request), no host
// namespaces.
func containerConfig(spec sandbox.ContainerSpec) (*container.Config, *container.HostConfig) {
	init := true
	cfg := &container.Config{
		Image:           spec.Image,
		Hostname:        spec.Hostname,
		Cmd:             spec.Cmd,
		Env:             spec.Env,
		User:            spec.User,
		WorkingDir:      spec.WorkingDir,
		Labels:          spec.Labels,
		AttachStdout:    true,
		AttachStderr:    true,
		NetworkDisabled: spec.Network == "none",
		StopSignal:      "SIGTERM",
	}
	tmpfs := "rw,nosuid,nodev,mode=1777"
	if spec.TmpfsSize > 0 {
		tmpfs += ",size=" + strconv.FormatInt(spec.TmpfsSize, 10)
	}
	pids := spec.PidsLimit
	host := &container.HostConfig{
		NetworkMode:    container.NetworkMode(spec.Network),
		ReadonlyRootfs: true,
		Tmpfs:          map[string]string{"/tmp": tmpfs},
		CapDrop:        []string{"ALL"},
		CapAdd:         spec.CapAdd,
		SecurityOpt:    []string{"no-new-privileges"},
		Init:           &init,
		IpcMode:        container.IPCModePrivate,
		Resources: container.Resources{
			NanoCPUs:   spec.NanoCPUs,
			Memory:     spec.MemoryBytes,
			MemorySwap: spec.MemoryBytes, // no swap beyond the allocation
			PidsLimit:  &pids,
		},
	}
	if spec.GPUs > 0 {
		host.Resources.DeviceRequests = []container.DeviceRequest{{
			Driver: "nvidia", Count: spec.GPUs, Capabilities: [][]string{{"gpu"}},
		}}
	}
	for _, m := range spec.Mounts {
		host.Mounts = append(host.Mounts, mount.Mount{
			Type: mount.TypeBind, Source: m.Source, Target: m.Target, ReadOnly: m.ReadOnly,
			BindOptions: &mount.BindOptions{NonRecursive: true},
		})
	}
	return cfg, host
}

func (d *Engine) removeQuietly(id string) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
}

func (d *Engine) Wait(ctx context.Context, c sandbox.Container) (sandbox.Exit, error) {
	waitC, errC := d.cli.ContainerWait(ctx, c.ID, container.WaitConditionNotRunning)
	var code int64
	select {
	case w := <-waitC:
		if w.Error != nil && w.Error.Message != "" {
			return sandbox.Exit{}, fmt.Errorf("wait for container: %s", w.Error.Message)
		}
		code = w.StatusCode
	case err := <-errC:
		return sandbox.Exit{}, fmt.Errorf("wait for container: %w", err)
	}
	d.mu.Lock()
	done := d.copies[c.ID]
	delete(d.copies, c.ID)
	d.mu.Unlock()
	if done != nil {
		select { // the attach stream closes when the container exits
		case <-done:
		case <-time.After(10 * time.Second):
		}
	}
	exit := sandbox.Exit{Code: int(code), ImageDigest: c.ImageDigest}
	info, err := d.cli.ContainerInspect(ctx, c.ID)
	if err != nil {
		return exit, nil
	}
	if info.State != nil {
		exit.OOMKilled = info.State.OOMKilled
		exit.Started, _ = time.Parse(time.RFC3339Nano, info.State.StartedAt)
		exit.Ended, _ = time.Parse(time.RFC3339Nano, info.State.FinishedAt)
	}
	return exit, nil
}

func (d *Engine) Remove(ctx context.Context, id string, grace time.Duration) error {
	secs := int(grace.Round(time.Second) / time.Second)
	if err := d.cli.ContainerStop(ctx, id, container.StopOptions{Timeout: &secs}); err != nil && !errdefs.IsNotFound(err) && !errdefs.IsNotModified(err) {
		// stop failed: force removal below still kills it
		_ = err
	}
	err := d.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
	if err != nil && !errdefs.IsNotFound(err) && !isRemovalInProgress(err) {
		return fmt.Errorf("remove container %.12s: %w", id, err)
	}
	return nil
}

func isRemovalInProgress(err error) bool {
	return errdefs.IsConflict(err)
}

func (d *Engine) List(ctx context.Context, labels map[string]string) ([]sandbox.ContainerInfo, error) {
	args := filters.NewArgs()
	for k, v := range labels {
		if v == "" {
			args.Add("label", k)
		} else {
			args.Add("label", k+"="+v)
		}
	}
	list, err := d.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: args})
	if err != nil {
		return nil, fmt.Errorf("list containers: %w", err)
	}
	out := make([]sandbox.ContainerInfo, 0, len(list))
	for _, c := range list {
		var name string
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, sandbox.ContainerInfo{ID: c.ID, Name: name, Labels: c.Labels, Running: c.State == "running"})
	}
	return out, nil
}

var _ sandbox.Engine = (*Engine)(nil)
