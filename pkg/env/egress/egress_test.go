package egress

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// syncBuffer is a log the proxy's handlers write from several goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
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

// start serves a proxy allowing allow and returns a client that uses it.
func start(t *testing.T, allow ...string) (*http.Client, *syncBuffer) {
	t.Helper()
	log := &syncBuffer{}
	p, err := New(allow, log)
	require.NoError(t, err)
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	pu, _ := url.Parse(srv.URL)
	tr := &http.Transport{Proxy: http.ProxyURL(pu), TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}, log
}

func hostOf(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	require.NoError(t, err)
	return u.Host
}

func TestForwardsOnlyToAllowedHTTP(t *testing.T) {
	var gotHeader http.Header
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader = r.Header.Clone()
		w.Header().Set("X-Upstream", "yes")
		if r.URL.Path == "/moved" {
			http.Redirect(w, r, "http://elsewhere.invalid/x", http.StatusFound)
			return
		}
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	}))
	defer up.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a refused host was reached: %s", r.URL)
	}))
	defer other.Close()

	c, log := start(t, hostOf(t, up.URL))

	req, _ := http.NewRequest("GET", up.URL+"/debian/dists/bookworm/InRelease", nil)
	req.Header.Set("Proxy-Authorization", "Basic c2VjcmV0")
	req.Header.Set("Accept-Encoding", "gzip")
	resp, err := c.Do(req)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, 200, resp.StatusCode)
	assert.Equal(t, "hello /debian/dists/bookworm/InRelease", string(body))
	assert.Equal(t, "yes", resp.Header.Get("X-Upstream"))
	assert.Empty(t, gotHeader.Get("Proxy-Authorization"), "hop-by-hop headers stay with the proxy")
	assert.Equal(t, "gzip", gotHeader.Get("Accept-Encoding"), "the client's encoding passes through")

	// A redirect is handed back, never followed by the proxy.
	resp, err = c.Get(up.URL + "/moved")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusFound, resp.StatusCode)

	// Another port on the same host is another source.
	resp, err = c.Get(other.URL + "/x")
	require.NoError(t, err)
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Contains(t, string(body), "is not one of this cluster's package sources")
	assert.Equal(t, []string{hostOf(t, other.URL)}, Denied(log.String()))
}

func TestTunnelsOnlyToAllowedHTTPS(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, "over tls")
	}))
	defer up.Close()
	other := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a refused host was reached: %s", r.URL)
	}))
	defer other.Close()

	// The allowlist's case does not matter.
	c, log := start(t, strings.ToUpper(hostOf(t, up.URL)))
	resp, err := c.Get(up.URL + "/simple/")
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	assert.Equal(t, "over tls", string(body))

	_, err = c.Get(other.URL + "/simple/")
	require.Error(t, err, "CONNECT to a host off the list is refused")
	assert.Contains(t, err.Error(), "Forbidden")
	assert.Equal(t, []string{hostOf(t, other.URL)}, Denied(log.String()))
}

// A client that sends its first bytes right behind the CONNECT (before the
// proxy answered) loses none of them.
func TestTunnelKeepsBytesSentEarly(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		line, _ := bufio.NewReader(c).ReadString('\n')
		_, _ = io.WriteString(c, "echo "+line)
	}()
	log := &syncBuffer{}
	p, err := New([]string{ln.Addr().String()}, log)
	require.NoError(t, err)
	srv := httptest.NewServer(p)
	defer srv.Close()

	conn, err := net.Dial("tcp", hostOf(t, srv.URL))
	require.NoError(t, err)
	defer conn.Close()
	fmt.Fprintf(conn, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\nping\n", ln.Addr(), ln.Addr())
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, &http.Request{Method: "CONNECT"})
	require.NoError(t, err)
	assert.Equal(t, 200, resp.StatusCode)
	got, err := br.ReadString('\n')
	require.NoError(t, err)
	assert.Equal(t, "echo ping\n", got)
}

func TestRefusesWhatIsNotAProxyRequest(t *testing.T) {
	log := &syncBuffer{}
	p, err := New([]string{"deb.debian.org:80"}, log)
	require.NoError(t, err)
	srv := httptest.NewServer(p)
	defer srv.Close()
	// An origin-form request (a client talking to the proxy as a server).
	resp, err := http.Get(srv.URL + "/etc/passwd")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode)
	assert.Len(t, Denied(log.String()), 1)
}

func TestNewAndNormalize(t *testing.T) {
	_, err := New(nil, io.Discard)
	assert.ErrorContains(t, err, "nothing allowed")
	_, err = New([]string{"deb.debian.org"}, io.Discard)
	assert.ErrorContains(t, err, `allow "deb.debian.org": not host:port`)
	p, err := New([]string{"Deb.Debian.Org:80", " pypi.example:443 ", "[::1]:8080", ""}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, []string{"[::1]:8080", "deb.debian.org:80", "pypi.example:443"}, p.Allowed())

	for in, want := range map[string]string{"deb.debian.org": "deb.debian.org:80", "DEB.debian.org:8080": "deb.debian.org:8080", "[::1]": "[::1]:80"} {
		got, err := normalize(in, "80")
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
}

func TestDenied(t *testing.T) {
	out := "ferry egress proxy ready\n" + DeniedPrefix + "pypi.org:443\r\n" + DeniedPrefix + "pypi.org:443\nnoise\n" + DeniedPrefix + "evil.example:80\n"
	assert.Equal(t, []string{"pypi.org:443", "evil.example:80"}, Denied(out))
	assert.Empty(t, Denied("ferry egress proxy ready\n"))
}
