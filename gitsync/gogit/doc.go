// Package gogit is gitsync's Backend on go-git: clone into the cache, list
// refs, fetch shallow, commit the render directory and push without force,
// over HTTPS (basic auth, bearer token, extra CA, client certificate), SSH
// (private key, host key checked against known_hosts, never skipped) and
// the local file system. It holds credentials in memory only: the clone's
// .git/config names the remote by its clean URL.
package gogit
