package testenv

import (
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
)

// MemRegistry is go-containerregistry's in-memory registry on 127.0.0.1,
// for unit tests, with what that registry lacks for Ferry's copy engine and
// a request log:
//
//   - Cross-repository mounts the way distribution does them: a blob mounts
//     from a repository that received it (upload or mount). The copy engine
//     asks with a mount, not a HEAD, whether a repository holds a blob.
//   - Log records every request as "METHOD path?query" as the server saw
//     it, independently of the client's own accounting.
//   - Intercept, when set, sees each request first and may answer it
//     itself (a fault) by returning true.
type MemRegistry struct {
	Host string
	Log  *RequestLog

	mu        sync.Mutex
	blobs     map[string]map[string]bool // repository -> digests it holds
	intercept func(w http.ResponseWriter, r *http.Request, next http.Handler) bool
}

// StartMemRegistry starts an in-memory registry for the test's duration.
func StartMemRegistry(t testing.TB) *MemRegistry {
	t.Helper()
	m := &MemRegistry{Log: &RequestLog{}, blobs: map[string]map[string]bool{}}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	var next http.Handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, _, isBlob := strings.Cut(strings.TrimPrefix(r.URL.Path, "/v2/"), "/blobs/uploads/")
		q := r.URL.Query()
		if isBlob && r.Method == http.MethodPost && q.Get("mount") != "" && m.holds(q.Get("from"), q.Get("mount")) {
			m.add(repo, q.Get("mount"))
			w.Header().Set("Location", "/v2/"+repo+"/blobs/"+q.Get("mount"))
			w.Header().Set("Docker-Content-Digest", q.Get("mount"))
			w.WriteHeader(http.StatusCreated)
			return
		}
		sw := &statusWriter{ResponseWriter: w}
		h.ServeHTTP(sw, r)
		if isBlob && r.Method == http.MethodPut && sw.status == http.StatusCreated {
			m.add(repo, q.Get("digest"))
		}
	})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m.Log.Add(r.Method + " " + r.URL.Path + "?" + r.URL.RawQuery)
		m.mu.Lock()
		ic := m.intercept
		m.mu.Unlock()
		if ic != nil && ic(w, r, next) {
			return
		}
		next.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	m.Host = strings.TrimPrefix(srv.URL, "http://")
	return m
}

// Intercept installs fn in front of the registry: it is called for every
// request with the registry's own handler as next, and answers the request
// itself when it returns true. nil removes it.
func (m *MemRegistry) Intercept(fn func(w http.ResponseWriter, r *http.Request, next http.Handler) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.intercept = fn
}

// HoldsBlob says whether repository path (without the host) received the
// blob by an upload or a mount.
func (m *MemRegistry) HoldsBlob(repo, digest string) bool { return m.holds(repo, digest) }

func (m *MemRegistry) holds(repo, digest string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.blobs[repo][digest]
}

func (m *MemRegistry) add(repo, digest string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blobs[repo] == nil {
		m.blobs[repo] = map[string]bool{}
	}
	m.blobs[repo][digest] = true
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// RequestLog is the requests a test server received, as
// "METHOD path?query" lines in arrival order.
type RequestLog struct {
	mu    sync.Mutex
	lines []string
}

// Add records one request line.
func (l *RequestLog) Add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, s)
}

// Reset forgets every request so far.
func (l *RequestLog) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = nil
}

// Lines returns a copy of the lines so far.
func (l *RequestLog) Lines() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Methods counts the requests by method.
func (l *RequestLog) Methods() map[string]int {
	out := map[string]int{}
	for _, s := range l.Lines() {
		m, _, _ := strings.Cut(s, " ")
		out[m]++
	}
	return out
}

// Count counts the requests whose line contains every part.
func (l *RequestLog) Count(parts ...string) int {
	n := 0
	for _, s := range l.Lines() {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(s, p)
		}
		if ok {
			n++
		}
	}
	return n
}
