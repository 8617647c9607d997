// Package fbc is Ferry's in-memory file-based catalog: the olm.package,
// olm.channel, olm.bundle and olm.deprecations blobs opm reads, plus any
// other schema kept verbatim. It loads catalogs from an fs.FS, writes them
// deterministically (one directory per package, stable order, same bytes
// every run) and validates them with the rules `opm validate` applies.
//
// The blob shapes follow operator-registry's alpha/declcfg so that what
// Ferry writes is what opm reads; property values and unknown schemas are
// kept as raw JSON so they round-trip unchanged.
package fbc
