// Package mirror owns what Ferry copies to the Mirror registry and the files
// that describe it, without touching a registry itself:
//
//   - the image set (Build): every built catalog image, every bundle image
//     and related image of the kept bundles and the Mirror's
//     additionalImages, minus blockedImages, each pinned by digest — tags
//     are resolved by the caller (Unresolved lists them) and both the tag
//     and the digest are kept;
//   - destination naming: the Mirror registry[/namespace] plus the source
//     repository path, flattened to maxPathComponents, digest-only sources
//     tagged with oc's hash of the source reference, and every collision
//     (two sources, one destination) reported before anything is copied;
//   - the outputs (Files): mirror/mapping.txt for `oc image mirror -f`,
//     ImageDigestMirrorSet / ImageTagMirrorSet / ImageContentSourcePolicy
//     split under the last-applied-annotation limit, and ferry.lock.yaml,
//     every resolved digest. Same inputs, same bytes.
//
// It is pure, like the rest of render: no network, cluster or git, so the
// copy engine, `ferry diff` and tests share one definition of the set.
// docs/mirror-outputs.md describes the formats.
package mirror
