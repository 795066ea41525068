package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/api/types/network"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/env"
)

// hostPort is raw's host:port, the port from the scheme when it has none.
func hostPort(t *testing.T, raw string) string {
	t.Helper()
	u, err := url.Parse(raw)
	require.NoError(t, err)
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return net.JoinHostPort(u.Hostname(), port)
}

// assertNoEgressLeft: no proxy container or build network is left behind.
func assertNoEgressLeft(t *testing.T, eng *Engine) {
	t.Helper()
	ctx := context.Background()
	f := filters.NewArgs(filters.Arg("label", env.LabelEgress))
	cs, err := eng.cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	require.NoError(t, err)
	assert.Empty(t, cs, "proxy containers left behind")
	ns, err := eng.cli.NetworkList(ctx, network.ListOptions{Filters: f})
	require.NoError(t, err)
	assert.Empty(t, ns, "build networks left behind")
}

// egressProbe runs in a build step on the confined network. It prints one
// line per probe; the test reads them from the build's output.
const egressProbe = `import socket, sys, urllib.request, urllib.error
proxy, mirror, other, direct_ip, host_ip, host_port = sys.argv[1:7]
def fetch(url, via_proxy):
    handler = urllib.request.ProxyHandler({"http": proxy, "https": proxy} if via_proxy else {})
    try:
        with urllib.request.build_opener(handler).open(url, timeout=20) as r:
            return "status %d" % r.status
    except urllib.error.HTTPError as e:
        return "status %d" % e.code
    except Exception as e:
        return "error %s" % type(e).__name__
print("PROBE mirror via proxy:", fetch(mirror, True), flush=True)
print("PROBE other via proxy:", fetch(other, True), flush=True)
print("PROBE mirror direct:", fetch(mirror, False), flush=True)
try:
    socket.create_connection((direct_ip, 80), timeout=5).close()
    print("PROBE mirror's address direct: connected", flush=True)
except OSError as e:
    print("PROBE mirror's address direct: error", type(e).__name__, flush=True)
try:
    socket.create_connection((host_ip, int(host_port)), timeout=5).close()
    print("PROBE the host: connected", flush=True)
except OSError as e:
    print("PROBE the host: error", type(e).__name__, flush=True)
`

// TestRealEgress: a build step on a confined network reaches the mirror
// through ferry's proxy (the binary of this test, copied into a container
// as it copies ferryd), is refused another host through it, and reaches
// nothing without it, not even the mirror's own address; the proxy
// reports what it refused, and its container and network go afterwards.
func TestRealEgress(t *testing.T) {
	eng := requireE2E(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	mirror := os.Getenv("FERRY_DEBIAN_MIRROR")
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	mu, err := url.Parse(mirror)
	require.NoError(t, err)
	ips, err := net.DefaultResolver.LookupHost(ctx, mu.Hostname())
	require.NoError(t, err, "the test resolves the mirror on the host")
	base, err := eng.ImageInspect(ctx, e2eBase)
	require.NoError(t, err)
	key := fmt.Sprintf("%064x", time.Now().UnixNano())

	t0 := time.Now()
	eg, err := eng.OpenEgress(ctx, base.ID, key, []string{hostPort(t, mirror)})
	opened := time.Since(t0)
	require.NoError(t, err)
	closed := false
	defer func() {
		if !closed {
			eg.Close(ctx)
		}
	}()
	assert.True(t, strings.HasPrefix(eg.Network, "ferry-egress-"+env.Short(key)+"-"), eg.Network)
	nw, err := eng.cli.NetworkInspect(ctx, eg.Network, network.InspectOptions{})
	require.NoError(t, err)
	assert.True(t, nw.Internal, "the build network has no route out")

	// Another host the machine reaches (the Go module proxy), over https.
	other := "https://proxy.golang.org/"
	// A service on the host, listening on every address, and the host's
	// address on the build network.
	hostLn, err := net.Listen("tcp", "0.0.0.0:0")
	require.NoError(t, err)
	defer hostLn.Close()
	go func() {
		for {
			c, err := hostLn.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	require.NotEmpty(t, nw.IPAM.Config)
	gateway := nw.IPAM.Config[0].Gateway
	assert.True(t, strings.HasPrefix(nw.Options["com.docker.network.bridge.name"], BridgePrefix), "the bridge's name: %v", nw.Options)
	dockerfile := fmt.Sprintf("FROM %s\nCOPY probe.py /probe.py\nRUN [\"python3\", \"/probe.py\", %q, %q, %q, %q, %q, \"%d\"]\n",
		base.ID, eg.Proxy, mirror+"/dists/bookworm/Release", other, ips[0], gateway, hostLn.Addr().(*net.TCPAddr).Port)
	var tarball bytes.Buffer
	tw := tar.NewWriter(&tarball)
	for name, content := range map[string]string{"Dockerfile": dockerfile, "probe.py": egressProbe} {
		require.NoError(t, tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: time.Unix(0, 0)}))
		_, err := tw.Write([]byte(content))
		require.NoError(t, err)
	}
	require.NoError(t, tw.Close())
	tag := "ferry-test/egress-probe:" + env.Short(key)
	var out bytes.Buffer
	_, err = eng.ImageBuild(ctx, &tarball, env.BuildOptions{Tag: tag, Network: eg.Network}, &out)
	require.NoError(t, err, out.String())
	defer func() { _ = eng.ImageRemove(context.Background(), tag) }()
	probes := map[string]string{}
	for _, l := range strings.Split(out.String(), "\n") {
		if rest, ok := strings.CutPrefix(l, "PROBE "); ok {
			k, v, _ := strings.Cut(rest, ": ")
			probes[k] = v
		}
	}
	assert.Equal(t, "status 200", probes["mirror via proxy"], out.String())
	assert.Contains(t, []string{"error URLError", "error OSError"}, probes["other via proxy"], "CONNECT to another host is refused\n%s", out.String())
	assert.True(t, strings.HasPrefix(probes["mirror direct"], "error "), "without the proxy the mirror's name leads nowhere: %s", probes["mirror direct"])
	assert.True(t, strings.HasPrefix(probes["mirror's address direct"], "error "), "nor does its address: %s", probes["mirror's address direct"])
	// Docker leaves the host's own addresses answering a build step; the
	// host rule on the bridges' names (BridgePrefix) closes that.
	guarded := exec.Command("iptables", "-C", "INPUT", "-i", BridgePrefix+"+", "-j", "DROP").Run() == nil
	if os.Getenv("CI") == "true" {
		require.True(t, guarded, "CI=true: the harness (tests/cluster.sh) puts the rule iptables -I INPUT -i %s+ -j DROP in place", BridgePrefix)
	}
	if guarded {
		assert.True(t, strings.HasPrefix(probes["the host"], "error "), "the host rule keeps build steps off the host: %s", probes["the host"])
	} else {
		assert.Equal(t, "connected", probes["the host"], "without the host rule, the host answers (what the rule is for)")
	}
	t.Logf("probes (host rule in place: %v): %v", guarded, probes)

	t1 := time.Now()
	denied := eg.Close(ctx)
	closeTime := time.Since(t1)
	closed = true
	assert.Equal(t, []string{"proxy.golang.org:443"}, denied)
	assertNoEgressLeft(t, eng)
	fmt.Printf("BENCH env egress: open (internal network + proxy container, ready) %.0f ms; close (logs, remove) %.0f ms\n",
		float64(opened.Milliseconds()), float64(closeTime.Milliseconds()))
}
