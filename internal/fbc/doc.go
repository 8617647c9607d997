// Package fbc is Ferry's in-memory file-based catalog: the olm.package,
// olm.channel, olm.bundle and olm.deprecations blobs opm reads, plus any
// other schema kept verbatim. It loads catalogs from an fs.FS (LoadFS),
// writes them deterministically (WriteFS, WriteDir, WriteYAML, WriteJSON:
// one directory per package, stable order, same bytes every run) and
// validates them with the rules `opm validate` applies (Validate, Check).
//
// The blob shapes follow operator-registry's alpha/declcfg so that what
// Ferry writes is what opm reads; property values and unknown schemas are
// kept as raw JSON so they round-trip unchanged.
//
// Loading and writing reproduce operator-registry v1.73.0 exactly: a
// catalog loads into the values opm's declcfg.LoadFS produces, and the
// writers emit the bytes opm's WriteYAML and WriteJSON emit. Both are fast
// paths — a parser for block-style YAML, a yaml.v2-compatible emitter —
// that hand anything unusual to the reference implementations opm itself
// uses (sigs.k8s.io/yaml, encoding/json), and that tests compare with those
// references on real catalogs and under fuzzing. docs/fbc.md has the
// details and the benchmark against opm.
package fbc
