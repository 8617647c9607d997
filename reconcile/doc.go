// Package reconcile observes the registries and the cluster, computes the
// plan (a value that can be printed, saved and applied) and applies exactly
// that plan in a safe order: images before the catalogs that need them,
// mirror sets before CatalogSources, samples architecture changes through
// Removed. Implementations that touch the outside world live in
// subpackages behind interfaces declared here.
package reconcile
