// Package pipeline is the one reconcile both `ferry reconcile` and
// `ferry run` execute: load the spec, build the registry client and the
// Reconciler, plan, apply (with the blob-location cache kept between runs)
// and commit. The CLI prints around it and the daemon records metrics and
// status around it; neither has a reconcile of its own, so they can never
// disagree about what a reconcile does.
package pipeline
