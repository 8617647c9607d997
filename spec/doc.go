// Package spec owns Ferry's desired state: the Catalog, Mirror and Samples
// kinds, the oc-mirror ImageSetConfiguration files mapped onto them, and the
// loading, defaulting and validation of a directory of such documents.
//
// Loading is strict on purpose: a spec repository is the only input a
// reconcile trusts, so an unknown field, a malformed digest or two Catalogs
// writing one image must stop everything before any side effect. Every
// problem is reported at once, each naming file, line, object and field, so
// a reviewer fixes a pull request in one pass.
//
// The package imports nothing else of Ferry's and does no I/O beyond the
// fs.FS it is handed.
package spec
