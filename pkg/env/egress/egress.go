// Package egress is an environment build's only way out: an HTTP proxy that
// forwards to the admin's package sources (host:port pairs) and refuses
// everything else. The build runs on a Docker network with no route out
// (internal), so a RUN step that ignores the proxy reaches nothing, and one
// that uses it reaches only the allowed sources.
//
// The proxy is ferry's own binary: package env/docker copies the running
// executable into a small container from the build's base image, joined to
// the default bridge (its way out) and to the build's internal network, and
// runs it with the allowlist in EnvAllow. Main, called first thing by every
// program that may be copied so (ferryd, the tests that build), notices
// that and serves instead of starting the program.
//
// Plain HTTP (apt's http:// mirrors, an http:// pip index) is forwarded
// request by request with absolute URIs, never following redirects; HTTPS
// (an https:// index or mirror) is a CONNECT tunnel to an allowed host:port.
// Every refusal is one line on the proxy's stdout starting with
// DeniedPrefix, so the builder can name what a failed build tried to reach.
package egress

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

const (
	// Path is where the proxy binary sits in its container; Main serves
	// only when the program runs under this name.
	Path = "/ferry-egress"
	// EnvAllow carries the allowlist: host:port pairs, comma-separated.
	EnvAllow = "FERRY_EGRESS_ALLOW"
	// Port is the proxy's port on the build network.
	Port = 3128
	// ReadyLine is printed once the proxy listens.
	ReadyLine = "ferry egress proxy ready"
	// DeniedPrefix starts each refusal line: "<prefix><host:port>".
	DeniedPrefix = "ferry egress: denied "
)

// Main serves the proxy and exits when the program was started as the
// egress proxy (argv[0] is Path and EnvAllow is set); otherwise it returns
// at once. Call it first in main and in TestMain.
func Main() {
	allow, ok := os.LookupEnv(EnvAllow)
	if !ok || os.Args[0] != Path {
		return
	}
	p, err := New(strings.Split(allow, ","), os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry egress:", err)
		os.Exit(2)
	}
	ln, err := net.Listen("tcp", fmt.Sprintf(":%d", Port))
	if err != nil {
		fmt.Fprintln(os.Stderr, "ferry egress:", err)
		os.Exit(1)
	}
	fmt.Fprintln(os.Stdout, ReadyLine)
	srv := &http.Server{Handler: p, ReadHeaderTimeout: time.Minute}
	err = srv.Serve(ln)
	fmt.Fprintln(os.Stderr, "ferry egress:", err)
	os.Exit(1)
}

// Proxy forwards to allowed host:port pairs only. It is an http.Handler.
type Proxy struct {
	allow     map[string]bool
	dialer    *net.Dialer
	transport *http.Transport

	mu  sync.Mutex
	log io.Writer
}

// New returns a proxy for allow ("host:port", the host as a name or IP;
// case does not matter), logging refusals to log.
func New(allow []string, log io.Writer) (*Proxy, error) {
	p := &Proxy{allow: map[string]bool{}, log: log, dialer: &net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}}
	for _, a := range allow {
		a = strings.TrimSpace(a)
		if a == "" {
			continue
		}
		hp, err := normalize(a, "")
		if err != nil {
			return nil, fmt.Errorf("allow %q: %w", a, err)
		}
		p.allow[hp] = true
	}
	if len(p.allow) == 0 {
		return nil, errors.New("nothing allowed: a proxy that refuses everything is not needed")
	}
	p.transport = &http.Transport{
		Proxy:                 nil, // never the proxy's own environment
		DialContext:           p.dialer.DialContext,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute,
		DisableCompression:    true, // pass bodies through as they are
	}
	return p, nil
}

// Allowed reports the allowlist, sorted.
func (p *Proxy) Allowed() []string {
	var out []string
	for hp := range p.allow {
		out = append(out, hp)
	}
	slices.Sort(out)
	return out
}

// normalize returns host:port in lower case, with defPort when hostport
// has none ("" = a port is required).
func normalize(hostport, defPort string) (string, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		if defPort == "" {
			return "", errors.New("not host:port")
		}
		host, port = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]"), defPort
	}
	if host == "" || port == "" {
		return "", fmt.Errorf("not host:port")
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodConnect {
		p.tunnel(w, r)
		return
	}
	if r.URL.Scheme != "http" || r.URL.Host == "" {
		p.deny(w, r.Method+" "+r.RequestURI, "only http:// URLs and CONNECT go through this proxy")
		return
	}
	hp, err := normalize(r.URL.Host, "80")
	if err != nil || !p.allow[hp] {
		p.deny(w, r.URL.Host, "")
		return
	}
	p.forward(w, r)
}

// hopHeaders are a connection's own headers, never forwarded (RFC 9110 7.6.1).
var hopHeaders = []string{"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate",
	"Proxy-Authorization", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

func removeHop(h http.Header) {
	for _, f := range h.Values("Connection") {
		for _, name := range strings.Split(f, ",") {
			h.Del(strings.TrimSpace(name))
		}
	}
	for _, name := range hopHeaders {
		h.Del(name)
	}
}

func (p *Proxy) forward(w http.ResponseWriter, r *http.Request) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	removeHop(out.Header)
	resp, err := p.transport.RoundTrip(out)
	if err != nil {
		http.Error(w, "ferry egress: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	removeHop(resp.Header)
	for k, vs := range resp.Header {
		for _, v := range vs {
			w.Header().Add(k, v)
		}
	}
	w.WriteHeader(resp.StatusCode)
	_, _ = io.Copy(w, resp.Body)
}

func (p *Proxy) tunnel(w http.ResponseWriter, r *http.Request) {
	hp, err := normalize(r.Host, "")
	if err != nil || !p.allow[hp] {
		p.deny(w, r.Host, "")
		return
	}
	up, err := p.dialer.DialContext(r.Context(), "tcp", hp)
	if err != nil {
		http.Error(w, "ferry egress: "+err.Error(), http.StatusBadGateway)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		up.Close()
		http.Error(w, "ferry egress: cannot tunnel on this connection", http.StatusInternalServerError)
		return
	}
	conn, buf, err := hj.Hijack()
	if err != nil {
		up.Close()
		return
	}
	if _, err := io.WriteString(conn, "HTTP/1.1 200 Connection Established\r\n\r\n"); err != nil {
		conn.Close()
		up.Close()
		return
	}
	go func() {
		// What the client sent after its CONNECT, still in the server's
		// buffer, goes first.
		_, _ = io.Copy(up, io.MultiReader(io.LimitReader(buf.Reader, int64(buf.Reader.Buffered())), conn))
		if tc, ok := up.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}()
	_, _ = io.Copy(conn, up)
	conn.Close()
	up.Close()
}

func (p *Proxy) deny(w http.ResponseWriter, target, why string) {
	p.mu.Lock()
	fmt.Fprintf(p.log, "%s%s\n", DeniedPrefix, target)
	p.mu.Unlock()
	if why == "" {
		why = target + " is not one of this cluster's package sources (environments.debian_mirror, environments.pip_index_url)"
	}
	http.Error(w, "ferry egress: "+why, http.StatusForbidden)
}

// Denied returns the distinct targets the refusal lines in out name, in
// the order first seen.
func Denied(out string) []string {
	var seen []string
	for _, line := range strings.Split(out, "\n") {
		t, ok := strings.CutPrefix(strings.TrimRight(line, "\r"), DeniedPrefix)
		if ok && t != "" && !slices.Contains(seen, t) {
			seen = append(seen, t)
		}
	}
	return seen
}
