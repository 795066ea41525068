// Package factory builds what ferry's commands depend on, lazily, so that
// `ferry --help` never reads config, runs sbatch or dials anything. It also
// owns the IO streams and the one mapping from errors to exit codes.
package factory
