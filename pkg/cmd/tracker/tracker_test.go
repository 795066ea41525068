package tracker

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/cmd/factory"
	"github.com/ferry-hpc/ferry/pkg/config"
)

func TestCheckPrivate(t *testing.T) {
	tests := []struct {
		addr    string
		wantErr string
	}{
		{addr: "127.0.0.1:6390"},
		{addr: "[::1]:6379"},
		{addr: "10.1.2.3:6379"},
		{addr: "192.168.0.5:6379"},
		{addr: "localhost:6379"},
		{addr: "8.8.8.8:6379", wantErr: "8.8.8.8, a public address"},
		{addr: "redis", wantErr: "want host:port"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			err := checkPrivate(context.Background(), tt.addr)
			if tt.wantErr == "" {
				assert.NoError(t, err)
				return
			}
			assert.ErrorContains(t, err, tt.wantErr)
		})
	}
}

func factoryFor(out, errOut *bytes.Buffer) *factory.Factory {
	return &factory.Factory{
		IO:     &factory.IOStreams{Out: out, ErrOut: errOut},
		Config: func() (*config.Config, error) { return config.Default(), nil },
	}
}

func TestHealthFlag(t *testing.T) {
	var body string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		assert.Equal(t, "/healthz", r.URL.Path)
		if strings.Contains(body, `"ok": false`) {
			w.WriteHeader(503)
		}
		_, _ = w.Write([]byte(body))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))

	var out, errOut bytes.Buffer
	body = `{"ok": true, "reconciled": true, "slurm": {"status": "ok"}, "redis": {"status": "ok"}, "jobs": 3}`
	cmd := NewCmdTracker(factoryFor(&out, &errOut), nil)
	cmd.SetArgs([]string{"--health", "--listen", "127.0.0.1:" + port})
	require.NoError(t, cmd.Execute())
	assert.Equal(t, "ok=true reconciled=true slurm=ok redis=ok jobs=3\n", out.String())

	out.Reset()
	body = `{"ok": false, "reconciled": true, "slurm": {"status": "unreachable", "error": "squeue: Unable to contact slurm controller", "since": "2026-01-02T03:04:05Z"}, "redis": {"status": "ok"}, "jobs": 3}`
	cmd = NewCmdTracker(factoryFor(&out, &errOut), nil)
	cmd.SetArgs([]string{"--health", "--listen", "127.0.0.1:" + port})
	err := cmd.Execute()
	assert.Equal(t, 1, factory.ExitCode(err))
	assert.Equal(t, "ok=false reconciled=true slurm=unreachable redis=ok jobs=3\n", out.String())
	assert.Contains(t, errOut.String(), "slurm: squeue: Unable to contact slurm controller")

	srv.Close()
	cmd = NewCmdTracker(factoryFor(&out, &errOut), nil)
	cmd.SetArgs([]string{"--health", "--listen", "127.0.0.1:" + port})
	assert.ErrorContains(t, cmd.Execute(), "no tracker answers on 127.0.0.1:"+port)
}

func TestRefusesPublicRedis(t *testing.T) {
	var out, errOut bytes.Buffer
	f := factoryFor(&out, &errOut)
	f.Config = func() (*config.Config, error) {
		c := config.Default()
		c.Redis.Addr = "1.1.1.1:6379"
		return c, nil
	}
	cmd := NewCmdTracker(f, nil)
	cmd.SetArgs([]string{"--listen", "127.0.0.1:0", "--hook-socket", ""})
	err := cmd.Execute()
	assert.Equal(t, factory.CodeUsage, factory.ExitCode(err))
	assert.ErrorContains(t, err, "public address")
}
