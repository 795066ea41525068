package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/docker/pkg/stdcopy"

	"github.com/ferry-hpc/ferry/pkg/env"
	"github.com/ferry-hpc/ferry/pkg/env/egress"
)

// BridgePrefix starts the host-side interface name of every build network's
// bridge ("fegress" and 8 hex digits), so that one host firewall rule,
//
//	iptables -I INPUT -i fegress+ -j DROP
//
// keeps build steps off the host's own services: Docker's internal networks
// stop forwarding, but the host's addresses still answer them.
// build_cluster.sh and the test harness put that rule in place.
const BridgePrefix = "fegress"

const (
	// egressReady bounds the proxy's start.
	egressReady = 20 * time.Second
	// staleEgress: a proxy or network older than this is left over from
	// a build whose process died (builds time out well before), and the
	// next OpenEgress removes it.
	staleEgress = 3 * time.Hour
)

// OpenEgress implements env.Gate: a new internal network (no route out)
// for the build, and on it and on Docker's default bridge a container from
// image running this program as the egress proxy (egress.Main), as nobody,
// with no capabilities. The build reaches the proxy by its address on the
// internal network.
func (e *Engine) OpenEgress(ctx context.Context, image, key string, allow []string) (*env.Egress, error) {
	e.pruneEgress(ctx)
	exe, err := os.Executable()
	if err != nil {
		return nil, fmt.Errorf("find ferry's own binary for the proxy: %w", err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		return nil, fmt.Errorf("read ferry's own binary for the proxy: %w", err)
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	name := "ferry-egress-" + env.Short(key) + "-" + hex.EncodeToString(rnd[:])
	labels := map[string]string{env.LabelEgress: key}

	nw, err := e.cli.NetworkCreate(ctx, name, network.CreateOptions{Driver: "bridge", Internal: true, Labels: labels,
		Options: map[string]string{"com.docker.network.bridge.name": BridgePrefix + hex.EncodeToString(rnd[:])}})
	if err != nil {
		return nil, fmt.Errorf("create the build network: %w", err)
	}
	var id string
	closeAll := func(ctx context.Context) []string {
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		var denied []string
		if id != "" {
			if out, _, err := e.logs(ctx, id); err == nil {
				denied = egress.Denied(out)
			}
			_ = e.cli.ContainerRemove(ctx, id, container.RemoveOptions{Force: true})
		}
		_ = e.cli.NetworkRemove(ctx, nw.ID)
		return denied
	}
	fail := func(err error) (*env.Egress, error) {
		closeAll(ctx)
		return nil, err
	}

	pids := int64(256)
	created, err := e.cli.ContainerCreate(ctx, &container.Config{
		Image:      image,
		Entrypoint: []string{egress.Path},
		Cmd:        []string{},
		Env:        []string{egress.EnvAllow + "=" + strings.Join(allow, ",")},
		User:       "65534:65534",
		WorkingDir: "/",
		Labels:     labels,
	}, &container.HostConfig{
		NetworkMode: "bridge", // the proxy's own way out
		CapDrop:     []string{"ALL"},
		SecurityOpt: []string{"no-new-privileges"},
		Resources:   container.Resources{Memory: 256 << 20, PidsLimit: &pids},
		LogConfig:   container.LogConfig{Type: "json-file"}, // read back for what it refused
	}, nil, nil, name)
	if err != nil {
		return fail(fmt.Errorf("create the proxy from %s: %w", image, err))
	}
	id = created.ID
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	_ = tw.WriteHeader(&tar.Header{Name: strings.TrimPrefix(egress.Path, "/"), Mode: 0o755, Size: int64(len(bin)), ModTime: time.Now()})
	_, _ = tw.Write(bin)
	_ = tw.Close()
	if err := e.cli.CopyToContainer(ctx, id, "/", &tarball, container.CopyToContainerOptions{}); err != nil {
		return fail(fmt.Errorf("copy the proxy into its container: %w", err))
	}
	if err := e.cli.NetworkConnect(ctx, nw.ID, id, nil); err != nil {
		return fail(fmt.Errorf("join the proxy to the build network: %w", err))
	}
	if err := e.cli.ContainerStart(ctx, id, container.StartOptions{}); err != nil {
		return fail(fmt.Errorf("start the proxy: %w", err))
	}
	ip, err := e.waitEgress(ctx, id, name)
	if err != nil {
		return fail(err)
	}
	return &env.Egress{
		Network: name,
		Proxy:   fmt.Sprintf("http://%s:%d", ip, egress.Port),
		Close:   closeAll,
	}, nil
}

// waitEgress waits for the proxy's ready line and returns its address on
// the build network.
func (e *Engine) waitEgress(ctx context.Context, id, netName string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, egressReady)
	defer cancel()
	for {
		out, errOut, err := e.logs(ctx, id)
		if err == nil && strings.Contains(out, egress.ReadyLine) {
			info, err := e.cli.ContainerInspect(ctx, id)
			if err != nil {
				return "", fmt.Errorf("inspect the proxy: %w", err)
			}
			if info.NetworkSettings != nil {
				if ep := info.NetworkSettings.Networks[netName]; ep != nil && ep.IPAddress != "" {
					return ep.IPAddress, nil
				}
			}
			return "", fmt.Errorf("the proxy has no address on %s", netName)
		}
		info, ierr := e.cli.ContainerInspect(ctx, id)
		if ierr == nil && info.State != nil && !info.State.Running && info.State.Status == "exited" {
			msg := strings.TrimSpace(errOut + out)
			if msg == "" {
				msg = info.State.Error
			}
			return "", fmt.Errorf("the proxy exited with code %d: %s", info.State.ExitCode, oneLine(msg))
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("the proxy did not start within %s", egressReady)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logs returns a container's stdout and stderr so far.
func (e *Engine) logs(ctx context.Context, id string) (string, string, error) {
	rc, err := e.cli.ContainerLogs(ctx, id, container.LogsOptions{ShowStdout: true, ShowStderr: true})
	if err != nil {
		return "", "", err
	}
	defer rc.Close()
	var out, errOut bytes.Buffer
	_, err = stdcopy.StdCopy(&out, &errOut, io.LimitReader(rc, 1<<20))
	return out.String(), errOut.String(), err
}

// pruneEgress removes proxies and networks that builds whose process died
// left behind.
func (e *Engine) pruneEgress(ctx context.Context) {
	f := filters.NewArgs(filters.Arg("label", env.LabelEgress))
	old := time.Now().Add(-staleEgress)
	if cs, err := e.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f}); err == nil {
		for _, c := range cs {
			if time.Unix(c.Created, 0).Before(old) {
				_ = e.cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true})
			}
		}
	}
	if ns, err := e.cli.NetworkList(ctx, network.ListOptions{Filters: f}); err == nil {
		for _, n := range ns {
			if n.Created.Before(old) {
				_ = e.cli.NetworkRemove(ctx, n.ID)
			}
		}
	}
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

var _ env.Gate = (*Engine)(nil)
