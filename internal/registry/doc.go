// Package registry is how Ferry reaches registries: credentials from
// docker and podman auth files, registries the user declared insecure, and
// one retry policy for every registry call.
//
// The policy lives in Transport, the HTTP layer under go-containerregistry:
// requests are retried on 408, 429, 5xx, resets, refused connections and
// timeouts with jittered exponential backoff, Retry-After is honoured up to
// a cap, a request that makes no progress for StallTimeout is cut and
// retried, and manifest bodies are bounded. Client.Remote hands a
// registry's Transport to every call (reading catalogs, resolving tags,
// fetching bundles and bases, checking the mirror, pushing catalog images);
// the copy engine (internal/mirror) builds its own Transport with the same
// code and adds its accounting on top. Streams that break after their
// response started are retried one level up, by reading the content again:
// RetryPolicy.Transfer and Client.Transfer.
package registry
