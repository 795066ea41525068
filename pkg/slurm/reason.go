package slurm

import (
	"strings"
	"unicode"
)

// pendingReasons are Slurm 22.05's reasons for a job to wait (squeue's
// Reason column, "JOB REASON CODES" in squeue(1)), and the texts slurmctld
// puts in that column instead of a code, each as one plain sentence. Keys
// are lower case, with spaces for underscores. The QOS and association
// limit families (QOSGrp*, QOSMax*, QOSMin*, AssocGrp*, AssocMax*) that
// are not here are described by limitReason.
var pendingReasons = map[string]string{
	// Scheduling.
	"priority":             "other jobs have higher priority",
	"resources":            "waiting for a free node",
	"waitingforscheduling": "the scheduler has not looked at it yet",
	"scheddefer":           "the scheduler put off starting it (SchedulerParameters=defer)",
	"cleaning":             "it was requeued and Slurm is still cleaning up after its last run",
	"prolog":               "its node is running the Slurm prolog",
	"begintime":            "it asked not to start before a later time (--begin)",
	"deadline":             "it cannot finish before its deadline (--deadline)",
	"licenses":             "waiting for a free license",
	"frontenddown":         "no front end node is available",
	"powernotavail":        "not enough power is available to start it",
	"powerreserved":        "the power it needs is reserved for other jobs",
	"fedjoblock":           "its federation is busy deciding where it runs",
	"systemfailure":        "Slurm, a file system or the network failed",
	"jobarraytasklimit":    "its array already runs as many tasks at once as it may (--array %N)",
	"maxmemperlimit":       "it asks for more memory per CPU or node than the partition allows",

	// Dependencies and holds.
	"dependency":                  "it waits for another job to finish (--dependency)",
	"dependencyneversatisfied":    "it waits for another job that can no longer finish as required: it will never start; cancel it",
	"jobheldadmin":                "held by an administrator",
	"jobhelduser":                 "held by its owner: `scontrol release` lets it start",
	"jobholdmaxrequeue":           "held: it was requeued too many times",
	"launch failed requeued held": "held: Slurm failed to launch it on a node and requeued it; ask an administrator",
	"job requeued in held state":  "held after a requeue: `scontrol release` lets it start",
	"joblaunchfailure":            "Slurm failed to launch it (a file system problem or a bad program)",
	"burstbufferresources":        "waiting for burst buffer space",
	"burstbufferstagein":          "its files are being staged in to the burst buffer",
	"burstbufferoperation":        "a burst buffer operation failed",
	"reservationdeleted":          "its reservation was deleted",
	"reservation":                 "its reservation has not started yet",
	"accountingpolicy":            "the cluster's accounting policy does not allow it to start yet",
	"nonzeroexitcode":             "its last run ended with a non-zero exit code",
	"timelimit":                   "its last run hit its time limit",
	"outofmemory":                 "its last run ran out of memory",
	"inactivelimit":               "it reached the cluster's inactivity limit",
	"raisedsignal":                "its last run was killed by a signal",
	"maxbbperaccount":             "its account uses all the burst buffer it may",
	"partitionconfig":             "its partition's configuration does not allow it to start",
	"heterojobleadernotallowed":   "its heterogeneous job cannot start here",
	"nodes required for job are down, drained or reserved for jobs in higher priority partitions": "the nodes it needs are down, drained or reserved for higher-priority partitions",

	// Partitions and nodes.
	"partitiondown":      "its partition is down",
	"partitioninactive":  "its partition is inactive and starts no jobs",
	"partitiontimelimit": "its time limit is longer than its partition allows: it will not start; resubmit with a shorter time",
	"partitionnodelimit": "it asks for more nodes than its partition allows, or the nodes it needs are down or drained",
	"reqnodenotavail":    "a node it needs is not available (down, drained or reserved)",
	"nodedown":           "a node it needs is down",
	"badconstraints":     "no node has the features it asks for (--constraint): it will not start as it is",
	"constraints":        "no node has the features it asks for (--constraint): it will not start as it is",

	// Accounts and QOS.
	"invalidaccount":           "its Slurm account is not valid: it will not start; ask an administrator",
	"accountnotallowed":        "its Slurm account may not use this partition",
	"invalidqos":               "its QOS is not valid: it will not start; ask an administrator",
	"qosnotallowed":            "its QOS may not be used in this partition",
	"qosusagethreshold":        "its QOS has used up its share (usage threshold)",
	"qosjoblimit":              "its QOS runs as many jobs as it may",
	"qosresourcelimit":         "its QOS uses as many resources as it may",
	"qostimelimit":             "its QOS used up its time",
	"associationjoblimit":      "your Slurm account runs as many jobs as it may",
	"associationresourcelimit": "your Slurm account uses as many resources as it may",
	"associationtimelimit":     "your Slurm account used up its time",

	// The common limits, said exactly; the rest of their families by rule.
	"qosmaxjobsperuserlimit":          "you already run as many jobs as your QOS allows",
	"qosmaxsubmitjobperuserlimit":     "you already have as many jobs queued or running as your QOS allows",
	"qosmaxjobsperaccount":            "your Slurm account already runs as many jobs as its QOS allows",
	"qosmaxsubmitjobperaccount":       "your Slurm account already has as many jobs queued or running as its QOS allows",
	"qosgrpjobslimit":                 "its QOS already runs as many jobs as it may",
	"qosgrpsubmitjobslimit":           "its QOS already has as many jobs queued or running as it may",
	"assocmaxjobslimit":               "your Slurm account already runs as many jobs as it may",
	"assocmaxsubmitjoblimit":          "your Slurm account already has as many jobs queued or running as it may",
	"assocgrpjobslimit":               "your Slurm account group already runs as many jobs as it may",
	"assocgrpsubmitjobslimit":         "your Slurm account group already has as many jobs queued or running as it may",
	"qosmincpunotsatisfied":           "it asks for fewer CPUs than its QOS requires: it will not start as it is",
	"qosmaxwalldurationperjoblimit":   "its time limit is longer than its QOS allows: it will not start; resubmit with a shorter time",
	"assocmaxwalldurationperjoblimit": "its time limit is longer than your Slurm account allows: it will not start; resubmit with a shorter time",
}

// PendingReason says in one plain sentence why Slurm keeps a job waiting,
// given the reason squeue shows for it (Slurm 22.05's codes: "Priority",
// "Resources", "QOSMaxJobsPerUserLimit", ..., or a text slurmctld set such
// as "launch failed requeued held"). The sentence starts in lower case and
// has no final stop, to follow "waiting: ". An empty code (or "None") is
// "", a code Slurm added since is "Slurm says: <code>".
func PendingReason(code string) string {
	code = strings.TrimSpace(code)
	if code == "" || code == "None" {
		return ""
	}
	// "ReqNodeNotAvail, UnavailableNodes:w[1-2]": the code, then details.
	head, detail, _ := strings.Cut(code, ",")
	key := strings.ToLower(strings.ReplaceAll(strings.TrimSpace(head), "_", " "))
	if s, ok := pendingReasons[strings.ToLower(strings.ReplaceAll(code, "_", " "))]; ok {
		return s
	}
	if s, ok := pendingReasons[key]; ok {
		if nodes, ok := strings.CutPrefix(strings.TrimSpace(detail), "UnavailableNodes:"); ok && nodes != "" {
			s += " (unavailable: " + nodes + ")"
		}
		return s
	}
	if s := limitReason(strings.TrimSpace(head)); s != "" {
		return s
	}
	return "Slurm says: " + code
}

// limitFamilies are the prefixes of Slurm's QOS and association limit
// codes, longest first, and who owns the limit.
var limitFamilies = []struct {
	prefix, kind string
}{
	{"QOSGrp", "grp"}, {"QOSMax", "max"}, {"QOSMin", "min"},
	{"AssocGrp", "assocgrp"}, {"AssocMax", "assocmax"},
}

// limitReason describes a QOS or association limit code by its parts:
// QOSGrpGRESRunMinutes is the QOS's whole limit ("Grp") on the GPU
// minutes ("GRESRunMinutes") of running jobs. "" when code is none.
func limitReason(code string) string {
	for _, f := range limitFamilies {
		rest, ok := cutPrefixFold(code, f.prefix)
		if !ok || rest == "" {
			continue
		}
		rest = trimSuffixFold(trimSuffixFold(rest, "Limit"), "NotSatisfied")
		scope := ""
		for _, s := range []string{"PerUser", "PerJob", "PerAccount", "PerNode"} {
			if r, ok := cutSuffixFold(rest, s); ok {
				rest, scope = r, strings.ToLower(s[3:])
				break
			}
		}
		res := resourceName(rest)
		if res == "" {
			return ""
		}
		switch f.kind {
		case "grp":
			return "the jobs of its QOS together use all the " + res + " the QOS allows"
		case "min":
			return "it asks for less " + res + " than its QOS requires: it will not start as it is"
		case "assocgrp":
			return "the jobs of your Slurm account together use all the " + res + " it allows"
		case "assocmax":
			if scope == "job" || scope == "node" {
				return "it asks for more " + res + " per " + scope + " than your Slurm account allows: it will not start as it is"
			}
			return "your Slurm account uses all the " + res + " it allows"
		default: // QOSMax
			switch scope {
			case "user":
				return "your jobs use all the " + res + " your QOS allows per user"
			case "account":
				return "your Slurm account's jobs use all the " + res + " the QOS allows per account"
			case "job", "node":
				return "it asks for more " + res + " per " + scope + " than its QOS allows: it will not start as it is"
			}
			return "its QOS's limit on " + res + " is reached"
		}
	}
	return ""
}

// resources are the resource parts of limit codes.
var resources = map[string]string{
	"cpu": "CPUs", "cpus": "CPUs", "mem": "memory", "memory": "memory", "node": "nodes", "nodes": "nodes",
	"jobs": "job slots", "job": "job slots", "submitjobs": "queued-job slots", "submitjob": "queued-job slots",
	"wall": "run time", "wallduration": "run time", "energy": "energy", "gres": "GPUs and other generic resources",
	"license": "licenses", "lic": "licenses", "bb": "burst buffer", "billing": "billing units", "unknown": "resources",
	"vmem": "virtual memory", "pages": "pages", "fs": "file system", "ic": "interconnect",
}

// resourceName reads a limit code's resource part: "Cpu", "CPUMinutes",
// "GRESRunMinutes", ... "" when it is not one.
func resourceName(s string) string {
	low := strings.ToLower(s)
	suffix := ""
	switch {
	case strings.HasSuffix(low, "runminutes"):
		low, suffix = strings.TrimSuffix(low, "runminutes"), "-minutes of running jobs"
	case strings.HasSuffix(low, "minutes"):
		low, suffix = strings.TrimSuffix(low, "minutes"), "-minutes"
	case strings.HasSuffix(low, "mins"):
		low, suffix = strings.TrimSuffix(low, "mins"), "-minutes"
	}
	name, ok := resources[low]
	if !ok {
		if low == "" || strings.IndexFunc(low, func(r rune) bool { return !unicode.IsLetter(r) }) >= 0 {
			return ""
		}
		name = low
	}
	if suffix != "" {
		// "CPU-minutes", "memory-minutes": the unit, not the plural.
		name = strings.TrimSuffix(strings.TrimSuffix(name, "s"), " slot")
		if name == "GPUs and other generic resource" {
			name = "GPU"
		}
		return name + suffix
	}
	return name
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

func cutSuffixFold(s, suffix string) (string, bool) {
	if len(s) > len(suffix) && strings.EqualFold(s[len(s)-len(suffix):], suffix) {
		return s[:len(s)-len(suffix)], true
	}
	return s, false
}

func trimSuffixFold(s, suffix string) string {
	r, _ := cutSuffixFold(s, suffix)
	return r
}
