package slurm

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// PendingReason is what a user reads next to a queued job: one plain
// sentence per Slurm 22.05 reason, the limit families by rule, and
// Slurm's own word for a code it does not know.
func TestPendingReason(t *testing.T) {
	tests := []struct {
		code, want string
	}{
		{"Priority", "other jobs have higher priority"},
		{"Resources", "waiting for a free node"},
		{"Dependency", "it waits for another job to finish (--dependency)"},
		{"DependencyNeverSatisfied", "it waits for another job that can no longer finish as required: it will never start; cancel it"},
		{"BeginTime", "it asked not to start before a later time (--begin)"},
		{"JobHeldUser", "held by its owner: `scontrol release` lets it start"},
		{"JobHeldAdmin", "held by an administrator"},
		{"launch failed requeued held", "held: Slurm failed to launch it on a node and requeued it; ask an administrator"},
		{"launch_failed_requeued_held", "held: Slurm failed to launch it on a node and requeued it; ask an administrator"},
		{"QOSMaxJobsPerUserLimit", "you already run as many jobs as your QOS allows"},
		{"QOSMaxSubmitJobPerUserLimit", "you already have as many jobs queued or running as your QOS allows"},
		{"AssocMaxJobsLimit", "your Slurm account already runs as many jobs as it may"},
		{"AssocGrpCpuLimit", "the jobs of your Slurm account together use all the CPUs it allows"},
		{"AssocGrpMemLimit", "the jobs of your Slurm account together use all the memory it allows"},
		{"AssocGrpCPURunMinutesLimit", "the jobs of your Slurm account together use all the CPU-minutes of running jobs it allows"},
		{"AssocMaxCpuPerJobLimit", "it asks for more CPUs per job than your Slurm account allows: it will not start as it is"},
		{"AssocMaxWallDurationPerJobLimit", "its time limit is longer than your Slurm account allows: it will not start; resubmit with a shorter time"},
		{"ReqNodeNotAvail", "a node it needs is not available (down, drained or reserved)"},
		{"ReqNodeNotAvail, UnavailableNodes:w[1-2]", "a node it needs is not available (down, drained or reserved) (unavailable: w[1-2])"},
		{"PartitionDown", "its partition is down"},
		{"PartitionInactive", "its partition is inactive and starts no jobs"},
		{"PartitionTimeLimit", "its time limit is longer than its partition allows: it will not start; resubmit with a shorter time"},
		{"PartitionNodeLimit", "it asks for more nodes than its partition allows, or the nodes it needs are down or drained"},
		{"NodeDown", "a node it needs is down"},
		{"BadConstraints", "no node has the features it asks for (--constraint): it will not start as it is"},
		{"Reservation", "its reservation has not started yet"},
		{"InvalidQOS", "its QOS is not valid: it will not start; ask an administrator"},
		{"InvalidAccount", "its Slurm account is not valid: it will not start; ask an administrator"},
		{"Licenses", "waiting for a free license"},
		{"JobArrayTaskLimit", "its array already runs as many tasks at once as it may (--array %N)"},
		{"WaitingForScheduling", "the scheduler has not looked at it yet"},
		{"Nodes required for job are DOWN, DRAINED or reserved for jobs in higher priority partitions",
			"the nodes it needs are down, drained or reserved for higher-priority partitions"},
		// The QOS families, by rule.
		{"QOSGrpCpuLimit", "the jobs of its QOS together use all the CPUs the QOS allows"},
		{"QOSGrpNodeLimit", "the jobs of its QOS together use all the nodes the QOS allows"},
		{"QOSGrpGRES", "the jobs of its QOS together use all the GPUs and other generic resources the QOS allows"},
		{"QOSGrpGRESRunMinutes", "the jobs of its QOS together use all the GPU-minutes of running jobs the QOS allows"},
		{"QOSGrpCPUMinutesLimit", "the jobs of its QOS together use all the CPU-minutes the QOS allows"},
		{"QOSGrpJobsLimit", "its QOS already runs as many jobs as it may"},
		{"QOSMaxCpuPerUserLimit", "your jobs use all the CPUs your QOS allows per user"},
		{"QOSMaxMemoryPerUser", "your jobs use all the memory your QOS allows per user"},
		{"QOSMaxNodePerJobLimit", "it asks for more nodes per job than its QOS allows: it will not start as it is"},
		{"QOSMaxGRESPerNode", "it asks for more GPUs and other generic resources per node than its QOS allows: it will not start as it is"},
		{"QOSMaxCpuPerAccount", "your Slurm account's jobs use all the CPUs the QOS allows per account"},
		{"QOSMaxWallDurationPerJobLimit", "its time limit is longer than its QOS allows: it will not start; resubmit with a shorter time"},
		{"QOSMinGRES", "it asks for less GPUs and other generic resources than its QOS requires: it will not start as it is"},
		{"QOSMinCpuNotSatisfied", "it asks for fewer CPUs than its QOS requires: it will not start as it is"},
		// Unknown codes and none.
		{"QOSGrp", "Slurm says: QOSGrp"},
		{"QOSGrp42", "Slurm says: QOSGrp42"},
		{"BrandNewReason", "Slurm says: BrandNewReason"},
		{"", ""},
		{"None", ""},
	}
	for _, tt := range tests {
		t.Run(tt.code, func(t *testing.T) {
			assert.Equal(t, tt.want, PendingReason(tt.code))
		})
	}
}
