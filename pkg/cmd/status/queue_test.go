package status

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/ferry-hpc/ferry/pkg/job"
)

func TestQueue(t *testing.T) {
	now := time.Date(2026, 12, 6, 10, 0, 0, 0, time.Local)
	assert.Equal(t, "", Queue(job.Status{State: job.Running, QueuePosition: 3}, now), "only a queued job has a place")
	assert.Equal(t, "number 3 of 12 waiting (2 ahead of it); Slurm expects it to start at 10:05:00 (in 5m0s)",
		Queue(job.Status{State: job.Queued, QueuePosition: 3, QueueLength: 12, EstStart: now.Add(5 * time.Minute)}, now))
	assert.Equal(t, "number 1 of 1 waiting (0 ahead of it); no start estimate from Slurm yet",
		Queue(job.Status{State: job.Queued, QueuePosition: 1, QueueLength: 1}, now))
	assert.Equal(t, "", Queue(job.Status{State: job.Queued}, now), "nothing known: nothing said")
}
