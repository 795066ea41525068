// Package observe answers "what are my jobs doing?" from the two sources a
// user can always read, without Redis: their spool (spec.json, result.json,
// the log) and one squeue call. It also waits for a job to end and follows
// its log. It does not submit or cancel anything.
package observe
