package world

import (
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// sourceRef is an image reference as a catalog spells it, split the way a
// container runtime resolves it. Catalogs use every shape: by digest, by tag,
// by tag and digest together, with a registry port, or Docker Hub shorthand.
type sourceRef struct {
	Host   string // registry host, "docker.io" for shorthand references
	Path   string // repository path below the host
	Tag    string // "" when the reference has none
	Digest string // "algo:hex", "" when the reference has none
}

// dockerHub is how Docker Hub is spelled in rewritten paths, whichever of
// its aliases the catalog used.
const dockerHub = "docker.io"

// parseSourceRef splits ref with the Docker rules: the first path component
// is a registry host only if it contains "." or ":" or is "localhost".
// It is deliberately more lenient than name.ParseReference, which rejects
// tag-and-digest references that real catalogs contain.
func parseSourceRef(ref string) (sourceRef, error) {
	s := strings.TrimSpace(ref)
	if s == "" {
		return sourceRef{}, fmt.Errorf("empty image reference")
	}
	var r sourceRef
	if at := strings.LastIndex(s, "@"); at >= 0 {
		r.Digest = s[at+1:]
		s = s[:at]
		algo, hex, ok := strings.Cut(r.Digest, ":")
		if !ok || algo == "" || hex == "" {
			return sourceRef{}, fmt.Errorf("image reference %q: malformed digest %q", ref, r.Digest)
		}
	}
	if colon := strings.LastIndex(s, ":"); colon > strings.LastIndex(s, "/") {
		r.Tag = s[colon+1:]
		s = s[:colon]
	}
	first, rest, hasSlash := strings.Cut(s, "/")
	if hasSlash && (strings.ContainsAny(first, ".:") || first == "localhost") {
		r.Host, r.Path = strings.ToLower(first), rest
	} else {
		r.Host, r.Path = dockerHub, s
	}
	if r.Host == "index.docker.io" || r.Host == "registry-1.docker.io" {
		r.Host = dockerHub
	}
	if r.Host == dockerHub && !strings.Contains(r.Path, "/") {
		r.Path = "library/" + r.Path
	}
	if r.Path == "" || s == "" {
		return sourceRef{}, fmt.Errorf("image reference %q: no repository", ref)
	}
	if r.Tag == "" && r.Digest == "" {
		r.Tag = name.DefaultTag
	}
	return r, nil
}

// key is the canonical spelling of r. Two catalog strings naming the same
// image ("nginx:1" and "docker.io/library/nginx:1") share a key and
// therefore one synthetic image.
func (r sourceRef) key() string {
	s := r.Host + "/" + r.Path
	if r.Tag != "" {
		s += ":" + r.Tag
	}
	if r.Digest != "" {
		s += "@" + r.Digest
	}
	return s
}

// targetRepo is where the synthetic image for r is pushed:
// <registry>/<prefix>/<host>/<path>. A registry port cannot appear in a
// repository path component, so "host:5000" becomes "host-5000"; dots are
// legal and stay.
func targetRepo(registry, prefix string, r sourceRef) string {
	parts := []string{registry}
	if p := strings.Trim(prefix, "/"); p != "" {
		parts = append(parts, p)
	}
	parts = append(parts, strings.ReplaceAll(r.Host, ":", "-"), r.Path)
	return strings.Join(parts, "/")
}

// rewrittenRef is the reference the rewritten catalog carries for r once its
// synthetic image has digest dgst: the shape of the original is kept, so a
// digest reference stays a digest reference and a tag reference a tag
// reference (the one shape a disconnected mirror cannot pin).
func rewrittenRef(repo string, r sourceRef, dgst string) string {
	switch {
	case r.Digest != "" && r.Tag != "":
		return repo + ":" + r.Tag + "@" + dgst
	case r.Digest != "":
		return repo + "@" + dgst
	default:
		return repo + ":" + r.Tag
	}
}
