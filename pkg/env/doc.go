// Package env owns a project's environment: the pip requirements and Debian
// packages a job needs on top of its sandbox image, and the node-local image
// `ferry/env:<key>` that holds them.
//
// A Spec is parsed and validated from what the user wrote (requirements.txt,
// job.yaml's apt: list): package names and versions only, never options,
// URLs or paths, so every package comes from the admin's package Sources.
// Key hashes the base image's ID, the normalised Spec and the Sources
// (including a wheelhouse's content) into the environment's name.
//
// The Builder is the root side: it builds the image from an allowlisted base
// with a generated build context (never a user's Dockerfile), one build per
// key per node however many jobs ask at once (an in-process flight plus a
// flock under the state dir), caches a failed build for a short while, and
// records each environment's last use so that Evict can remove old ones by
// age and total size. List and Remove serve the admin's commands.
//
// It does not decide which base images are allowed or run containers
// (package sandbox), read job.yaml or config files (packages job and
// config), or talk to Docker itself: the Engine seam does, and package
// env/docker implements it on the Docker Engine API.
package env
