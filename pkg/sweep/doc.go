// Package sweep expands a sweep spec (sweep.yaml) into the parameter sets of
// its tasks: a grid (the product of lists) or seeded random sampling
// (choices, min/max on a linear or log scale, integers, and lists of
// count_min..count_max sampled values). It also splits a sweep into Slurm
// job arrays no larger than the cluster's MaxArraySize. It submits nothing.
package sweep
