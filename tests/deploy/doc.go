// Package deploy tests build_cluster.sh end to end: a containerized ferry
// cluster (head, workers, user node, Redis) brought up from no images on the
// host's Docker Engine, jobs from a shell and a notebook on it, faults
// (a worker killed, the head restarted, an update mid-queue), an idempotent
// second bring-up, and config.sh's one-line errors.
//
// It needs root, Docker and docker-compose and takes several minutes, so
// tests/run.sh runs it on its own with FERRY_E2E_DEPLOY=1. Without that it
// skips, except under CI=true, where it fails.
package deploy
