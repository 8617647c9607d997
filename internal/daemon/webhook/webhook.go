// Package webhook is the daemon's receiver at /hook: a push to the config
// repository (or anything else that knows the shared secret) asks for a
// reconcile now instead of at the next poll. It accepts the three ways
// senders sign a request — GitHub's X-Hub-Signature-256 (an HMAC-SHA256 of
// the body), GitLab's X-Gitlab-Token and a generic Authorization: Bearer
// token — all compared in constant time, and refuses anything else: 401
// without credentials, 403 with wrong ones.
package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// MaxBody bounds what the receiver reads: push payloads are a few tens of
// kilobytes; GitHub caps them at 25 MB, and nothing here needs the body
// beyond its signature.
const MaxBody = 5 << 20

// Results, for counting.
const (
	Accepted     = "accepted"
	Unauthorized = "unauthorized"
	Forbidden    = "forbidden"
	Invalid      = "invalid"
)

// Handler receives webhooks.
type Handler struct {
	// Secret is the shared secret: GitHub's webhook secret, GitLab's
	// secret token, or the bearer token. Empty refuses everything.
	Secret []byte
	// Accept is called for every authenticated request.
	Accept func(r *http.Request)
	// Count, when set, is called once per request with its result.
	Count func(result string)
}

// ReadSecret reads a secret file (a mounted Secret key), without the
// trailing newline editors and `echo` add.
func ReadSecret(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s := strings.TrimRight(string(b), "\r\n")
	if s == "" {
		return nil, fmt.Errorf("%s is empty", path)
	}
	return []byte(s), nil
}

func (h *Handler) count(result string) {
	if h.Count != nil {
		h.Count(result)
	}
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		h.count(Invalid)
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBody))
	if err != nil {
		h.count(Invalid)
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	switch h.verify(r, body) {
	case Unauthorized:
		h.count(Unauthorized)
		w.Header().Set("WWW-Authenticate", `Bearer realm="ferry"`)
		http.Error(w, "credentials required: X-Hub-Signature-256, X-Gitlab-Token or Authorization: Bearer", http.StatusUnauthorized)
		return
	case Forbidden:
		h.count(Forbidden)
		http.Error(w, "bad signature or token", http.StatusForbidden)
		return
	}
	h.count(Accepted)
	if h.Accept != nil {
		h.Accept(r)
	}
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, "reconcile requested\n")
}

// verify says whether the request is signed with the secret: Accepted,
// Unauthorized (no credentials at all) or Forbidden (credentials that do
// not match). Every credential present must match.
func (h *Handler) verify(r *http.Request, body []byte) string {
	seen, ok := false, true
	if sig := r.Header.Get("X-Hub-Signature-256"); sig != "" {
		seen = true
		ok = ok && h.hmacMatches(sig, body)
	}
	if tok := r.Header.Get("X-Gitlab-Token"); tok != "" {
		seen = true
		ok = ok && h.equal(tok)
	}
	if auth := r.Header.Get("Authorization"); auth != "" {
		seen = true
		scheme, tok, _ := strings.Cut(auth, " ")
		ok = ok && strings.EqualFold(scheme, "Bearer") && h.equal(strings.TrimSpace(tok))
	}
	switch {
	case !seen:
		return Unauthorized
	case !ok || len(h.Secret) == 0:
		return Forbidden
	}
	return Accepted
}

// hmacMatches checks GitHub's "sha256=<hex HMAC-SHA256 of the body>".
func (h *Handler) hmacMatches(sig string, body []byte) bool {
	hexSig, found := strings.CutPrefix(sig, "sha256=")
	if !found {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, h.Secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

func (h *Handler) equal(tok string) bool {
	return len(h.Secret) > 0 && subtle.ConstantTimeCompare([]byte(tok), h.Secret) == 1
}

// Sign returns the X-Hub-Signature-256 value GitHub would send for body:
// for tests, and for scripts that trigger Ferry.
func Sign(secret, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}
