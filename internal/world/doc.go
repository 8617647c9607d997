// Package world builds a realistic source registry from a real file-based
// catalog, so end-to-end tests, `make demo` and benchmarks exercise Ferry
// against thousands of images without reaching the internet.
//
// Build gives every bundle image and related image the catalog names a small
// synthetic image (deterministic from a seed, byte for byte), pushes it under
// <registry>/<prefix>/<original host>/<original path>, rewrites the catalog's
// references to the pushed digests or tags, and pushes the rewritten catalog
// as an FBC catalog image; BuildSQLiteIndex does the same but serves the
// catalog as a SQLite index image in the schema operator-registry v1.73.0
// reads. Images share a pool of base layers, as real operator images share
// UBI layers, so cross-image blob deduplication matters; some are multi-arch
// indexes; bundle images are genuine registry+v1 bundles opm can render.
//
// Determinism: the same seed, catalog, registry address and prefix give the
// same registry content byte for byte. Related images do not depend on the
// address at all; bundle images and the catalog do, because they embed the
// rewritten references.
//
// The package exists for tests and tooling: it is deliberately free of
// Ferry's own packages, so anything may use it without import cycles.
package world
