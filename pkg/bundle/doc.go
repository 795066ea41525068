// Package bundle turns a user's project directory into a single
// zstd-compressed tar stream (Pack) and back (Unpack).
//
// It owns: choosing what goes into a bundle (.ferryignore in gitignore syntax,
// .git always left out, special files skipped), the reproducible tar layout
// and its sha256, the size cap checked before anything is written
// (TooBigError), the progress bar while packing, and safe extraction: Unpack
// never writes outside its destination, whatever the archive holds.
//
// It does not own where bundles are stored, how they are named or shipped to
// a worker, or when they are deleted; callers give it an io.Writer or
// io.Reader and a directory.
package bundle
