package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// AgentClient is the Launcher that `ferry sandbox run` uses: it asks the
// worker's agent for the container over the agent's unix socket.
type AgentClient struct {
	Socket string
	// StopGrace bounds how long a stop may take before the client gives up
	// waiting for the exit frame.
	StopGrace time.Duration
}

// ErrAgentGone is returned when the agent's stream ended without an exit:
// the agent died or restarted while the job ran.
var ErrAgentGone = errors.New("the ferry agent went away while the job ran")

func (c *AgentClient) http() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.Socket)
		},
		DisableKeepAlives: true,
	}}
}

func (c *AgentClient) post(ctx context.Context, path string, body any) (*http.Response, error) {
	b, err := json.Marshal(body)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://agent"+path, bytes.NewReader(b))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http().Do(req)
	if err != nil {
		return nil, fmt.Errorf("reach the ferry agent at %s: %w", c.Socket, err)
	}
	return resp, nil
}

func errorBody(resp *http.Response) string {
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		return e.Error
	}
	return fmt.Sprintf("agent answered %s", resp.Status)
}

// Launch implements Launcher.
func (c *AgentClient) Launch(ctx context.Context, req Request, out io.Writer) (Exit, error) {
	// The stream is read to its end even after ctx is cancelled: a stop
	// ends it with an exit frame once the container is gone.
	streamCtx, cancelStream := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelStream()
	resp, err := c.post(streamCtx, pathRun, req)
	if err != nil {
		return Exit{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusForbidden {
		var e struct {
			Error  string `json:"error"`
			Ending bool   `json:"ending"`
		}
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		if json.Unmarshal(b, &e) != nil || e.Error == "" {
			e.Error = fmt.Sprintf("agent answered %s", resp.Status)
		}
		return Exit{}, &Refusal{Reason: strings.TrimPrefix(e.Error, "refused: "), Ending: e.Ending}
	}
	if resp.StatusCode != http.StatusOK {
		return Exit{}, fmt.Errorf("ferry agent: %s", errorBody(resp))
	}
	go func() {
		select {
		case <-ctx.Done():
		case <-streamCtx.Done():
			return
		}
		grace := c.StopGrace
		if grace <= 0 {
			grace = 5 * time.Second
		}
		sctx, cancel := context.WithTimeout(context.Background(), grace+20*time.Second)
		defer cancel()
		if r, err := c.post(sctx, pathStop, JobRef{SlurmJobID: req.SlurmJobID}); err == nil {
			r.Body.Close()
		}
		// If the agent never answers with an exit, stop waiting: dropping
		// the connection makes the agent remove the container.
		select {
		case <-streamCtx.Done():
		case <-time.After(grace + 25*time.Second):
			cancelStream()
		}
	}()
	dec := json.NewDecoder(resp.Body)
	for {
		var f Frame
		if err := dec.Decode(&f); err != nil {
			if ctx.Err() != nil {
				return Exit{Stopped: true, Code: 143, Ended: time.Now()}, nil
			}
			return Exit{}, fmt.Errorf("%w (%v)", ErrAgentGone, err)
		}
		switch f.Type {
		case "out":
			if _, err := out.Write(f.Data); err != nil {
				return Exit{}, fmt.Errorf("write log: %w", err)
			}
		case "started":
		case "exit":
			if f.Exit == nil {
				return Exit{}, errors.New("ferry agent sent an empty exit")
			}
			return *f.Exit, nil
		case "error":
			return Exit{}, fmt.Errorf("ferry agent: %s", f.Error)
		}
	}
}

// Health asks the agent for its health report.
func (c *AgentClient) Health(ctx context.Context) (Health, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://agent"+pathHealth, nil)
	if err != nil {
		return Health{}, err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return Health{}, fmt.Errorf("reach the ferry agent at %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	var h Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return Health{}, fmt.Errorf("agent health: %w", err)
	}
	return h, nil
}

// Cleanup asks the agent to remove a Slurm job's containers and, when
// req names the ferry job, its scratch dirs (root only).
func (c *AgentClient) Cleanup(ctx context.Context, req CleanupRequest) (CleanupResult, error) {
	resp, err := c.post(ctx, pathCleanup, req)
	if err != nil {
		return CleanupResult{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return CleanupResult{}, fmt.Errorf("ferry agent: %s", errorBody(resp))
	}
	var r CleanupResult
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return CleanupResult{}, err
	}
	return r, nil
}

var _ Launcher = (*AgentClient)(nil)
