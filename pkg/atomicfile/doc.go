// Package atomicfile writes files so that a reader, or a crash, never sees a
// half-written one: temp file in the same directory, fsync, rename, fsync the
// directory. It owns nothing else.
package atomicfile
