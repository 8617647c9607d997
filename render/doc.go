// Package render turns desired and observed state into bytes: filtered FBC,
// CatalogSource, ImageDigestMirrorSet / ImageTagMirrorSet /
// ImageContentSourcePolicy, mapping.txt, the samples Config and the lock
// file. It is pure — no network, cluster or git — so the same inputs give
// the same bytes, and `ferry render` can run anywhere. The depcheck test
// enforces that it never imports client-go, go-git or a registry client.
package render
