// Package dashboard is ferry's web view of the job store: the jobs list, a
// job's page with its live log, outputs and metric charts, sweeps and
// projects, the nodes, and a course view for admins; and the same data as
// JSON under /api/v1.
//
// It reads only Redis (the tracker's store) and the job dirs, never Slurm,
// so a page costs the same with a thousand jobs or a hundred thousand: the
// lists come a page at a time from the store's sorted sets. One hub
// goroutine per process reads the event stream and fans events out to the
// browsers' server-sent event streams; a log is tailed from a byte offset.
//
// Every route that shows or acts on a job checks that the caller owns it or
// is an admin; cancel is a POST guarded against cross-site requests. It does
// not decide who a caller is: package auth does.
package dashboard
