// Package gitsync clones and watches the config repository and commits the
// rendered output back to it: one commit per reconcile, none when nothing
// changed, re-rendered and retried when a push is rejected.
package gitsync
