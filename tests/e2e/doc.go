// Package e2e runs ferry end to end against the real services: the local
// Slurm that tests/cluster.sh brings up (slurmctld, two slurmd, munge), the
// real Docker Engine through ferry's agents, and the test users
// ferry-alice and ferry-bob. tests/run.sh sets FERRY_E2E=1 and FERRY_BIN.
//
// Without FERRY_E2E the tests skip, except under CI=true, where a missing
// service is a failure, never a silent skip.
package e2e
