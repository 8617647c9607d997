// Package mirror is Ferry's copy engine: it copies a list of images from
// source registries into a mirror registry, by digest, copying only what
// the mirror lacks.
//
// What it promises (see docs/mirroring.md for the why):
//
//   - An image already in the mirror costs one HEAD of its manifest and
//     nothing more, so a rerun with nothing to do is a round of HEADs.
//   - Manifests are copied byte for byte, so every digest is preserved;
//     indexes (manifest lists) after their children.
//   - Each blob is checked with a HEAD, then mounted from another repository
//     of the mirror that received it earlier in the run, and uploaded only
//     when neither works; a blob is uploaded at most once per run however
//     many images share it, concurrent uploads included.
//   - Blobs stream from source to mirror; memory does not grow with image
//     or run size.
//   - Concurrency is bounded per registry; requests are retried with
//     jittered exponential backoff on 429, 5xx, resets and timeouts,
//     honouring Retry-After, and stalled transfers are aborted and retried.
//   - A failed image does not stop the run. Copy returns a Report of every
//     image and an *IncompleteError naming each failure, so callers move
//     forward only what depends on complete images; the next run resumes.
//   - Credentials never appear in errors, the report or logs.
//
// Registry access (credentials, insecure registries) comes from
// internal/registry's Client through the small Remotes interface.
package mirror
