// Package e2e holds Ferry's end-to-end tests: they run against real servers
// started by internal/testenv (registry, kube-apiserver, git, opm, skopeo).
// The smoke tests here prove each component is the real thing and enforces
// what it should; feature tests build on the same environment.
package e2e
