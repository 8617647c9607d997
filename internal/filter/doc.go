// Package filter selects the part of a file-based catalog that a Catalog
// spec asks for: whole packages, channel heads, version ranges along the
// upgrade graph, every bundle of a channel, and optionally what the kept
// bundles depend on.
//
// It owns the selection rules and nothing else: it reads an
// *fbc.DeclarativeConfig that someone else loaded and returns a new one plus
// a Report; it does no I/O. Its one promise beyond the selection itself is
// that the result is a catalog `opm validate` accepts: one head per channel,
// no stranded bundles, every bundle in a channel, the default channel kept.
// Where a selection cannot keep that promise, Filter says so (an *Error
// listing every problem, or a Warning naming what it dropped) instead of
// writing a catalog OLM would refuse.
//
// docs/filtering.md describes the rules, why they are what they are, and
// where they differ from oc-mirror's.
package filter
