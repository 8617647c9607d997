// Package safefs is a read-only view of a directory that a hostile or
// careless config repository cannot use to escape, hang or exhaust Ferry.
//
// A config repository is input anyone with push access controls. Read
// through os.DirFS, a spec file that is a symbolic link to /dev/zero fills
// memory, a FIFO named catalog.yaml blocks forever, and a link to
// /etc/shadow is read as if it were part of the repository. Through this
// view:
//
//   - only regular files are read: a named pipe, device or socket is
//     refused before it is opened, and files are opened non-blocking so one
//     swapped in afterwards cannot block either;
//   - a file larger than the view's limit is refused, and reading stops at
//     the limit even if the file grows;
//   - symbolic links are either refused outright (the render directory,
//     which holds only Ferry's own output) or followed only while they stay
//     inside the root (the spec directory, where a link to a shared file is
//     legitimate); an escape is refused by the kernel-backed os.Root, not by
//     string comparison.
//
// Every refusal is an *fs.PathError naming the path relative to the root and
// wrapping one of the sentinel errors, so callers print "where" and "why"
// and branch with errors.Is.
//
// Spec loading (through the CLI, since package spec imports nothing of
// Ferry's), the previous render that diff and reconcile compare with, and
// local catalog sources all read through this package, so the rules live in
// one place.
package safefs
