package cluster

import (
	"os"
	"regexp"
	"strings"

	"k8s.io/client-go/rest"
)

// redactor removes a config's credentials from error text. client-go's own
// messages do not print tokens, but they print URLs (whose userinfo can hold
// a password) and pass on what servers, proxies and exec plugins say; the
// known secret values are cut out wherever they appear.
type redactor struct {
	secrets []string
}

func newRedactor(cfg *rest.Config) *redactor {
	r := &redactor{}
	add := func(s string) {
		s = strings.TrimSpace(s)
		// Short values would cut ordinary words out of messages; no
		// credential is this short.
		if len(s) >= 6 {
			r.secrets = append(r.secrets, s)
		}
	}
	add(cfg.BearerToken)
	add(cfg.Password)
	if cfg.BearerTokenFile != "" {
		if b, err := os.ReadFile(cfg.BearerTokenFile); err == nil {
			add(string(b))
		}
	}
	for _, line := range strings.Split(string(cfg.KeyData), "\n") {
		if !strings.HasPrefix(line, "-----") {
			add(line)
		}
	}
	if cfg.AuthProvider != nil {
		for _, v := range cfg.AuthProvider.Config {
			add(v)
		}
	}
	if cfg.ExecProvider != nil {
		for _, e := range cfg.ExecProvider.Env {
			add(e.Value)
		}
	}
	return r
}

func (r *redactor) text(s string) string {
	for _, secret := range r.secrets {
		s = strings.ReplaceAll(s, secret, "REDACTED")
	}
	return redactURLs(s)
}

// err returns err with its message redacted; errors.Is and errors.As still
// see the original chain (a *StatusError, a *ConflictError).
func (r *redactor) err(err error) error {
	if err == nil {
		return nil
	}
	msg := r.text(err.Error())
	if msg == err.Error() {
		return err
	}
	return &redactedError{msg: msg, err: err}
}

type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

var (
	urlUserinfo = regexp.MustCompile(`([a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@"']+@`)
	authValue   = regexp.MustCompile(`(?i)\b(bearer|basic)\s+[A-Za-z0-9+/=._~-]{6,}`)
)

// redactURLs drops the userinfo of every URL in s and any spelled-out
// Authorization value.
func redactURLs(s string) string {
	s = urlUserinfo.ReplaceAllString(s, "${1}REDACTED@")
	return authValue.ReplaceAllString(s, "$1 REDACTED")
}
