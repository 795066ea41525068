package slurm

import "strings"

// policies turn the accounting refusals of sbatch (a limit of the user's
// association or QOS, a missing association) into what a student can act
// on. Slurm prints the code on one line and "Job violates accounting/QOS
// policy" on the next; the code says which limit.
var policies = []struct{ code, msg string }{
	{"QOSMaxSubmitJobPerUserLimit", "you have as many jobs queued and running as the cluster allows one user: wait for some to end, or cancel queued ones (ferry clear-queue)"},
	{"AssocMaxSubmitJobLimit", "you have as many jobs queued and running as the cluster allows one user: wait for some to end, or cancel queued ones (ferry clear-queue)"},
	{"QOSGrpSubmitJobsLimit", "the course has as many jobs queued and running as the cluster allows it: wait a little and submit again"},
	{"AssocGrpSubmitJobsLimit", "the course has as many jobs queued and running as the cluster allows it: wait a little and submit again"},
	{"QOSMaxWallDurationPerJobLimit", "the time limit asked for is longer than the cluster allows: ask for less with --time"},
	{"AssocMaxWallDurationPerJobLimit", "the time limit asked for is longer than the cluster allows: ask for less with --time"},
	{"QOSMaxCpuPerJobLimit", "the job asks for more CPUs than the cluster allows one job: ask for fewer with --cpus"},
	{"QOSMaxNodePerJobLimit", "the job asks for more nodes than the cluster allows one job"},
	{"Invalid account or account/partition combination", "you have no Slurm account on this cluster yet, so it accepts no job from you: ask the course staff to add you (sacctmgr add user)"},
	{"Invalid qos specification", "the cluster has no QOS for you: ask the course staff to set one (sacctmgr modify user ... set qos=...)"},
}

// PolicyMessage reads an accounting refusal in sbatch's stderr as a plain
// sentence; false when stderr holds none.
func PolicyMessage(stderr string) (string, bool) {
	for _, p := range policies {
		if strings.Contains(stderr, p.code) {
			return p.msg + " (Slurm: " + p.code + ")", true
		}
	}
	if strings.Contains(stderr, "Job violates accounting/QOS policy") {
		return "the job breaks a limit of the cluster's accounting (Slurm: Job violates accounting/QOS policy): ask the course staff which", true
	}
	return "", false
}
