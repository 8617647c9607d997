// Package gitsync owns Ferry's side of git: the config repository cloned
// into a cache and kept at the tip of its branch (Repo: Open, Sync, Head),
// the render directory committed back and pushed fast-forward only, with a
// bounded fetch / re-render / retry loop when someone pushed meanwhile
// (Publish), the tell between new desired state and Ferry's own commits
// (ChangedOutside), credentials from URL, flags, environment and mounted
// Argo CD or Flux Secrets (LoadCredentials), redacted in every message
// (Redact), and commit trailers (AppendTrailers).
//
// The git work itself is behind Backend, declared here and implemented with
// go-git in gitsync/gogit, so the rules above are written once. Commit, for
// a local work tree, still calls go-git directly; it applies the same rule
// (SelectChanges).
package gitsync
