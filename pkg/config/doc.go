// Package config owns ferry's settings and the per-project job.yaml.
//
// Cluster and user settings are layered: built-in defaults, then the system
// file (/etc/ferry/config.yaml, or the file named by $FERRY_CONFIG), then the
// user file (~/.ferry/config.yaml), then FERRY_* environment variables. Flags
// are applied by each command after Load, and the command then calls
// Validate. Every file is decoded strictly: an unknown field is an error that
// names the file and the line. Fields that are cluster policy (the image
// allowlist, networks, mounts, the sandbox's limits, where the agent listens)
// are admin-only: the user file may not set them and their environment
// variables are honoured only for root. These checks keep users from
// configuring something that cannot take effect; the agent, which reads its
// own config as root, is what enforces the policy. Reference renders the
// table of every field, its variable, default and meaning from the same table
// the code uses, so documentation cannot drift from it.
//
// A project's job.yaml is read by ReadJobFile/ParseJobFile into a JobFile;
// SplitCommand splits its command line like a shell would, without running
// one.
//
// The package does not build job specs, talk to Slurm or Docker, or decide
// which flag wins over which setting: the commands do.
package config
