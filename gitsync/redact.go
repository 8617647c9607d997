package gitsync

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
)

// redacted replaces secrets in every message gitsync produces.
const redacted = "***"

// userinfoInText finds the user info of every URL in free text: the
// scheme, then everything up to the last "@" before the host's end. Greedy
// on purpose, so an unencoded "@" inside a password is swallowed too.
var userinfoInText = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)([^/?#\s]*)@`)

// Redact returns s with the user info of every URL in it replaced by
// "***". It is the one redaction every error and log line of gitsync goes
// through, so a URL a user typed with a password or token in it
// (https://user:TOKEN@host/repo, https://TOKEN@host/repo) is never printed.
// A bare SSH user name (ssh://git@host/repo) is kept: it is not a secret,
// and it tells which account was used.
func Redact(s string) string {
	return userinfoInText.ReplaceAllStringFunc(s, func(m string) string {
		sub := userinfoInText.FindStringSubmatch(m)
		scheme, info := strings.ToLower(sub[1]), sub[2]
		if isSSHScheme(strings.TrimSuffix(scheme, "://")) && !strings.Contains(info, ":") {
			return m
		}
		return sub[1] + redacted + "@"
	})
}

func isSSHScheme(s string) bool {
	switch s {
	case "ssh", "git+ssh", "ssh+git":
		return true
	}
	return false
}

// Transport is how a URL reaches its repository.
type Transport string

// The transports gitsync supports.
const (
	// TransportHTTP is smart HTTP, over TLS (https) or not (http).
	TransportHTTP Transport = "http"
	// TransportSSH is ssh://, or the scp-like user@host:path form.
	TransportSSH Transport = "ssh"
	// TransportFile is a repository on a local file system: a path or
	// file://. Tests use it; it needs no credentials.
	TransportFile Transport = "file"
)

// RepoURL is a repository URL taken apart: the part that may be stored and
// printed, and the user info git would accept in it, kept aside.
type RepoURL struct {
	// Clean is the URL without a password, and for HTTP without any user
	// info: what is written to the cache's .git/config, keys the cache
	// directory and appears in messages.
	Clean string
	// Transport says how Clean is reached.
	Transport Transport
	// Host is the host name (and ":port" when one is given); empty for
	// TransportFile.
	Host string
	// User and Password come from the URL's user info (percent-decoded, as
	// git reads them). For SSH, User stays in Clean as well.
	User, Password string
}

// scpLike is git's [user@]host:path form. A path with a slash before the
// first colon is a local path, as git decides.
var scpLike = regexp.MustCompile(`^(?:([^@/:]+)@)?([^@/:]+):(.*)$`)

// ParseRepoURL splits a repository URL the way git accepts it:
// https://[user[:password]@]host/path, http://..., ssh://[user@]host[:port]/path,
// user@host:path, file:///path or a local path. Its errors never contain
// the password.
func ParseRepoURL(raw string) (RepoURL, error) {
	if raw == "" {
		return RepoURL{}, fmt.Errorf("repository URL is empty")
	}
	if strings.ContainsAny(raw, "\n\r\x00") {
		return RepoURL{}, fmt.Errorf("repository URL %q: contains a control character", Redact(raw))
	}
	if !strings.Contains(raw, "://") {
		if m := scpLike.FindStringSubmatch(raw); m != nil && len(m[2]) > 1 {
			return RepoURL{Clean: raw, Transport: TransportSSH, Host: m[2], User: m[1]}, nil
		}
		return RepoURL{Clean: raw, Transport: TransportFile}, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the input: keep only what Redact leaves.
		return RepoURL{}, fmt.Errorf("repository URL %s: not a valid URL", Redact(raw))
	}
	r := RepoURL{Host: u.Host}
	if u.User != nil {
		r.User = u.User.Username()
		r.Password, _ = u.User.Password()
	}
	scheme := strings.ToLower(u.Scheme)
	switch {
	case scheme == "https" || scheme == "http":
		r.Transport = TransportHTTP
		u.User = nil
	case isSSHScheme(scheme):
		r.Transport = TransportSSH
		u.User = nil
		if r.User != "" {
			u.User = url.User(r.User)
		}
	case scheme == "file":
		r.Transport = TransportFile
		r.Host = ""
	default:
		return RepoURL{}, fmt.Errorf("repository URL %s: scheme %q is not supported (use https, http, ssh or file)", Redact(raw), u.Scheme)
	}
	if r.Transport != TransportFile && u.Host == "" {
		return RepoURL{}, fmt.Errorf("repository URL %s: no host", Redact(raw))
	}
	r.Clean = u.String()
	return r, nil
}
