// Package testenv starts the real servers Ferry's end-to-end tests run
// against, on 127.0.0.1, one throw-away instance per call:
//
//   - StartRegistry: Debian's distribution registry (docker-registry 2.8),
//     optionally behind htpasswd basic auth.
//   - StartKube: etcd plus kube-apiserver built from source, with every CRD in
//     testdata/crds installed; SharedKube hands one instance to a whole test
//     binary because it costs seconds to start. Its audit log (AuditMark,
//     AuditEvents, As) tells what the server received, per user;
//     SamplesConfigMap plays the Cluster Samples Operator's part.
//   - StartGitServer: git http-backend behind net/http/cgi with basic auth
//     (optionally TLS or a bearer token), a request log and hooks;
//     GitServer.StartSSH serves the same repositories over SSH.
//   - Tool, OPM, RunOPM, Skopeo, RunSkopeo: the external validators.
//
// Binaries come from hack/tools.sh, which builds or installs them once and
// caches them (see docs/testing.md); this package never downloads anything
// itself. Unit tests should prefer in-process fakes; this package exists so
// that at least one layer of tests talks to the same software a cluster runs.
//
// Every server is stopped by t.Cleanup and additionally started with
// Pdeathsig=SIGKILL, so a test binary killed by a timeout does not leave
// servers holding ports. On failure, the tail of each server's log is printed
// with the test output.
package testenv
