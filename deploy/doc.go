// Package deploy holds Ferry's Kubernetes manifests (a kustomize base and
// the standalone and sidecar overlays) and the Grafana dashboard; its Go
// code is only the test that builds the overlays and applies them to a
// real API server.
package deploy
