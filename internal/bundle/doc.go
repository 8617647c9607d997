// Package bundle turns registry+v1 operator bundles (manifests/ with a
// ClusterServiceVersion, CRDs and other objects, metadata/annotations.yaml)
// into file-based catalog olm.bundle blobs, exactly as `opm render` of a
// bundle image does in operator-registry v1.73.0, and adds them to a
// catalog's upgrade graph.
//
// Render reads a bundle from an fs.FS (an unpacked bundle image or a bundle
// directory) and returns the blob plus its Placement: package, channels,
// default channel, and the CSV's replaces, skips and skipRange. Add inserts
// the blob into an fbc.DeclarativeConfig, creating the package and channels
// it needs and refusing, with every reason at once, what `opm validate`
// would reject: a repeated name or version, or an entry that leaves a
// channel with two heads, a cycle or a stranded bundle. MigrateCSVMetadata
// is opm's bundle-object-to-csv-metadata migration for a whole catalog.
//
// The package reads files only; pulling and unpacking bundle images is the
// caller's business.
package bundle
