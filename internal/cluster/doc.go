// Package cluster is the client-go implementation of reconcile.Cluster: it
// reads, plans against and server-side applies the objects Ferry renders
// (mirror sets, CatalogSources, ClusterCatalogs, the samples Config,
// OperatorHub) in a real cluster.
//
// Access is found the way kubectl finds it (New): --kubeconfig, else the
// colon-separated $KUBECONFIG list, else ~/.kube/config, with --context
// choosing among contexts; else the pod's service account when running in a
// cluster. With none of them New returns an error wrapping ErrNoConfig, which
// the caller turns into "cluster step skipped".
//
// Objects are unstructured, not typed clients, for three reasons:
// github.com/openshift/api is only available here as v3.9.0+incompatible, far
// older than the ImageDigestMirrorSet / ImageTagMirrorSet / OperatorHub
// schemas a 4.x cluster serves; OLM v1's ClusterCatalog and ClusterExtension
// have no Go types in operator-framework/api at all; and the API server
// validates every object against the real CRDs anyway, so typed structs would
// add a second, older opinion of the schema without catching anything more.
// Ferry reads a handful of fields and writes what render produced, byte for
// byte.
//
// Request economy is a design goal, proven by the tests from the API
// server's audit log:
//
//   - List is one LIST per kind, all namespaces (more only when the server
//     pages a large answer). Kinds Ferry knows are mapped to resources by a
//     static table, so no discovery request is made for them; a kind the
//     cluster does not serve is told by the LIST's 404.
//   - Diff answers Unchanged with no request when the live object already
//     holds every field of the desired one and the fields Ferry owns in its
//     managedFields are exactly the desired object's: applying would then
//     neither change a value nor give up a field. Otherwise a server-side
//     dry-run apply decides, so defaulting, validation, conflicts and field
//     removal are the API server's verdict, not a local imitation.
//   - Apply is one server-side apply PATCH per object, field manager "ferry".
//
// Every request goes through one retry policy (RetryPolicy): 429 honouring
// Retry-After, 5xx, dropped connections and timeouts are retried with
// jittered exponential backoff; an apply that loses an optimistic-concurrency
// race (a 409 without field conflicts) is sent again; an apply conflict never
// is. Errors never carry the bearer token, password or client key of the
// kubeconfig, nor URL userinfo.
package cluster
