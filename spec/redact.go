package spec

import (
	"regexp"
	"strings"
)

// userinfoRE finds "user[:password]@" at the start of a URL or reference
// inside a message: after an optional scheme, everything up to the last '@'
// before the first '/' (so a password holding '@' is hidden whole). It must
// begin a token (start of text, after a space, a quote, a parenthesis or '='),
// so the '@' of a digest, which follows a path ("repo@sha256:..."), is not
// mistaken for one.
var userinfoRE = regexp.MustCompile(`(^|[\s"'(=])((?:[a-zA-Z][a-zA-Z0-9+.-]*://)?)([^\s/"'\\]+)@([^\s"'\\]*)`)

// hostRE is what follows the '@' of user information: a registry host
// with an optional port.
var hostRE = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9.-]*(:[0-9]+)?`)

// looksLikeHost tells "user:pass@mirror.example.com/..." from
// "name@sha256:..." or a placeholder such as "NAMESPACE@DIGEST": what
// follows the '@' starts with a host that has a dot or a port, or is
// localhost.
func looksLikeHost(s string) bool {
	host := hostRE.FindString(s)
	if host == "" || (len(host) < len(s) && strings.IndexByte("/\"')]},;: \t", s[len(host)]) < 0) {
		return false
	}
	return strings.ContainsAny(host, ".:") || host == "localhost"
}

// Redact replaces the user information of every URL or image reference in
// s with REDACTED. It is applied to every problem Load reports, so a
// password written into a spec is never echoed back by the error that
// rejects it (into a terminal, a CI log or a status condition).
func Redact(s string) string {
	if !strings.Contains(s, "@") {
		return s
	}
	return userinfoRE.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfoRE.FindStringSubmatch(m)
		if !looksLikeHost(sub[4]) {
			return m // name@sha256:..., a digest reference
		}
		return sub[1] + sub[2] + "REDACTED@" + sub[4]
	})
}

// hasUserinfo reports whether a registry, image or repository reference
// carries credentials: "user:pass@host/...", with or without a scheme.
func hasUserinfo(ref string) bool {
	if i := strings.Index(ref, "://"); i >= 0 {
		ref = ref[i+3:]
	}
	host, _, _ := strings.Cut(ref, "/")
	at := strings.LastIndex(host, "@")
	return at >= 0 && looksLikeHost(host[at+1:])
}

// credentialsHint is the message for a reference with credentials in it:
// what to do instead, since the spec is committed to git and shown in plans.
const credentialsHint = "credentials do not belong in a spec, which is committed to git and shown in plans and logs: remove them, and give Ferry a registry auth file instead (-a/--registry-config: a docker config.json or podman auth.json; or REGISTRY_AUTH_FILE)"
