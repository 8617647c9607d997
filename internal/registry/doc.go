// Package registry configures Ferry's access to container registries the
// way podman, skopeo and oc users expect: credentials from a docker
// config.json or podman auth.json (-a/--registry-config, REGISTRY_AUTH_FILE,
// then the default locations), TLS verified unless a registry is declared
// insecure, and retries with backoff on the errors registries throw under
// load. It never logs or returns a credential.
package registry
