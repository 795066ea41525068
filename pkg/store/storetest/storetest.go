// Package storetest starts a throwaway redis-server for tests of the job
// store and of its users.
package storetest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/ferry-hpc/ferry/pkg/store"
)

// Server is a redis-server started for one test.
type Server struct {
	Addr     string
	Password string
	cmd      *exec.Cmd
}

// Start runs redis-server on a free loopback port, saving nothing (no RDB,
// no append-only file), with a password, and stops it when the test ends. Without
// redis-server the test fails under CI=true and is skipped otherwise.
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("redis-server is not installed (apt-get install redis-server): CI=true needs it")
		}
		t.Skip("redis-server is not installed (apt-get install redis-server)")
	}
	dir := t.TempDir()
	pass := "test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	// The password goes in a config file, not on the command line.
	conf := filepath.Join(dir, "redis.conf")
	if err := os.WriteFile(conf, []byte("requirepass "+pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(bin, conf, "--port", strconv.Itoa(port), "--bind", "127.0.0.1",
			"--save", "", "--appendonly", "no", "--dir", dir, "--daemonize", "no")
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = cmd.Stdout
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan error, 1)
		go func() {
			sc := bufio.NewScanner(out)
			var log []string
			for sc.Scan() {
				line := sc.Text()
				log = append(log, line)
				if strings.Contains(line, "Ready to accept connections") {
					ready <- nil
					for sc.Scan() {
					}
					return
				}
			}
			ready <- fmt.Errorf("redis-server exited: %s", strings.Join(log, "\n"))
		}()
		select {
		case err = <-ready:
		case <-time.After(10 * time.Second):
			err = fmt.Errorf("redis-server did not start within 10s")
		}
		if err != nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			lastErr = err
			continue
		}
		s := &Server{Addr: "127.0.0.1:" + strconv.Itoa(port), Password: pass, cmd: cmd}
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
		return s
	}
	t.Fatalf("start redis-server: %v", lastErr)
	return nil
}

// Open returns a store on the server, closed when the test ends.
func (s *Server) Open(t testing.TB, o store.Options) *store.Redis {
	t.Helper()
	o.Addr, o.Password = s.Addr, s.Password
	r := store.Open(o)
	t.Cleanup(func() { r.Close() })
	return r
}

// Do runs one raw command (FLUSHALL, HGETALL ...) as a client would.
func (s *Server) Do(t testing.TB, args ...any) any {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, Password: s.Password, Protocol: 2, DisableIdentity: true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled}})
	defer c.Close()
	v, err := c.Do(context.Background(), args...).Result()
	if err != nil && err != redis.Nil {
		t.Fatalf("redis %v: %v", args, err)
	}
	return v
}

// Kill stops the server abruptly (its data is gone: it saves nothing).
func (s *Server) Kill() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
