package mirror

import (
	"net/url"
	"regexp"
	"strings"
)

// urlPattern finds URLs in error text: net/http and go-containerregistry
// put request URLs in their messages, and a URL can carry userinfo or a
// signed query string (a blob redirect to object storage, an upload
// session's state).
var urlPattern = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"'<>]+`)

// authPattern finds credentials spelled out in text: an Authorization
// header value or a token field.
var authPattern = regexp.MustCompile(`(?i)\b(basic|bearer)\s+[A-Za-z0-9+/=._~-]{8,}|("?(?:access_token|refresh_token|token|password|identitytoken)"?\s*[:=]\s*"?)[^\s",}&]+`)

// queryAllowlist are the query keys of the registry protocol itself
// (go-containerregistry's list): anything else came from a redirect and may
// be a signature or a token.
var queryAllowlist = map[string]bool{"scope": true, "service": true, "mount": true, "from": true, "digest": true, "n": true, "last": true}

// redactURL drops userinfo and the values of query parameters outside the
// registry protocol.
func redactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		// Unparseable: keep only what precedes a query or userinfo.
		if i := strings.IndexAny(s, "?#"); i >= 0 {
			s = s[:i]
		}
		if i := strings.Index(s, "@"); i >= 0 {
			if j := strings.Index(s, "://"); j >= 0 && j < i {
				s = s[:j+3] + "REDACTED" + s[i:]
			}
		}
		return s
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	if u.RawQuery != "" {
		q := u.Query()
		for k, vs := range q {
			if !queryAllowlist[k] {
				for i := range vs {
					vs[i] = "REDACTED"
				}
			}
		}
		u.RawQuery = q.Encode()
	}
	u.Fragment = ""
	return u.String()
}

// redactText removes credentials from a message: userinfo and foreign query
// values in every URL it contains, and spelled-out Authorization values or
// token fields.
func redactText(s string) string {
	s = urlPattern.ReplaceAllStringFunc(s, func(u string) string {
		// "GET https://host/path?q=v: message": the colon is the message's.
		trimmed := strings.TrimRight(u, ":,.;)")
		return redactURL(trimmed) + u[len(trimmed):]
	})
	return authPattern.ReplaceAllStringFunc(s, func(m string) string {
		sub := authPattern.FindStringSubmatch(m)
		if sub[1] != "" {
			return sub[1] + " REDACTED"
		}
		return sub[2] + "REDACTED"
	})
}

// RedactText removes credentials from any message the way the copy engine
// does for its own: the daemon's logs, status and events use it too.
func RedactText(s string) string { return redactText(s) }
