// Package daemon is `ferry run`: the loop that keeps a config repository's
// desired state converged. It decides when to reconcile (a poll that costs
// one revision lookup, a webhook, a file watch, a periodic full reconcile
// for upstream catalogs and mirror drift), never runs two reconciles at
// once, backs off after failures, and reports what it did as metrics,
// health probes and a status an administrator can read without logs.
//
// It knows nothing of git, registries or the cluster: it drives a Source
// (where desired state comes from) and a Runner (one whole reconcile),
// both small interfaces declared here. localdir is the Source for a plain
// directory; the pipeline Runner is the reconcile `ferry reconcile` runs.
package daemon
