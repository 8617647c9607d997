package testenv

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is one way a registry misbehaves, for the requests Match selects.
// Faults make a lying or failing registry out of a real one: MemRegistry
// (Inject) or any registry behind StartFaultProxy.
type Fault struct {
	// Name says what the fault is, in the log.
	Name string
	// Match selects the requests it applies to; nil matches every request.
	Match func(*http.Request) bool
	// Times is how many matching requests get it; 0 is every one.
	Times int
	// Serve answers the request; next is the registry itself.
	Serve func(w http.ResponseWriter, r *http.Request, next http.Handler)
}

// Faults applies faults to requests, the first matching fault with times
// left winning, and logs every request it faulted.
type Faults struct {
	mu     sync.Mutex
	faults []Fault
	used   []int
	log    []Faulted
}

// Faulted is one request a fault answered.
type Faulted struct {
	At     time.Time
	Fault  string
	Method string
	Path   string
}

// NewFaults returns the given faults, ready to serve.
func NewFaults(faults ...Fault) *Faults {
	return &Faults{faults: faults, used: make([]int, len(faults))}
}

// Set replaces the faults (and their counts of uses); the log stays.
func (f *Faults) Set(faults ...Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults, f.used = faults, make([]int, len(faults))
}

// Log returns the requests faulted so far.
func (f *Faults) Log() []Faulted {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]Faulted(nil), f.log...)
}

// Count counts the faulted requests of one fault.
func (f *Faults) Count(name string) int {
	n := 0
	for _, e := range f.Log() {
		if e.Fault == name {
			n++
		}
	}
	return n
}

func (f *Faults) pick(r *http.Request) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	for i := range f.faults {
		ft := &f.faults[i]
		if ft.Match != nil && !ft.Match(r) {
			continue
		}
		if ft.Times > 0 && f.used[i] >= ft.Times {
			continue
		}
		f.used[i]++
		f.log = append(f.log, Faulted{At: time.Now(), Fault: ft.Name, Method: r.Method, Path: r.URL.Path})
		return ft
	}
	return nil
}

// Intercept is a MemRegistry interceptor (see MemRegistry.Intercept).
func (f *Faults) Intercept(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
	ft := f.pick(r)
	if ft == nil {
		return false
	}
	ft.Serve(w, r, next)
	return true
}

// Handler serves next with the faults in front.
func (f *Faults) Handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !f.Intercept(w, r, next) {
			next.ServeHTTP(w, r)
		}
	})
}

// Inject puts faults in front of the registry, replacing any interceptor.
func (m *MemRegistry) Inject(f *Faults) { m.Intercept(f.Intercept) }

// StartFaultProxy starts a reverse proxy on 127.0.0.1 in front of a
// registry (host:port, plain HTTP) that applies faults, for end-to-end
// tests against a real registry. It returns the proxy's host:port.
func StartFaultProxy(t testing.TB, target string, f *Faults) string {
	t.Helper()
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	rp.ErrorLog = nil
	srv := httptest.NewServer(f.Handler(rp))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// Matchers.

// BlobGET matches reads of one blob (digest "" matches every blob).
func BlobGET(digest string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		_, d, ok := strings.Cut(r.URL.Path, "/blobs/")
		return ok && r.Method == http.MethodGet && !strings.HasPrefix(d, "uploads/") && (digest == "" || d == digest)
	}
}

// ManifestGET matches reads of manifests whose reference (tag or digest)
// is ref ("" matches every manifest).
func ManifestGET(ref string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		_, m, ok := strings.Cut(r.URL.Path, "/manifests/")
		return ok && r.Method == http.MethodGet && (ref == "" || m == ref)
	}
}

// Method matches requests by method ("" matches any) and a path fragment.
func Method(method, pathContains string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return (method == "" || r.Method == method) && strings.Contains(r.URL.Path, pathContains)
	}
}

// Faults.

// Status answers with code, an error body in the registry API's form,
// and the given header pairs.
func Status(code int, header ...string) func(http.ResponseWriter, *http.Request, http.Handler) {
	apiCode := map[int]string{
		http.StatusUnauthorized:    "UNAUTHORIZED",
		http.StatusForbidden:       "DENIED",
		http.StatusNotFound:        "MANIFEST_UNKNOWN",
		http.StatusTooManyRequests: "TOOMANYREQUESTS",
	}[code]
	if apiCode == "" {
		apiCode = "UNAVAILABLE"
	}
	return func(w http.ResponseWriter, r *http.Request, _ http.Handler) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"errors":[{"code":%q,"message":"injected %d"}]}`, apiCode, code)
	}
}

// TooManyRequests answers 429 with Retry-After in seconds.
func TooManyRequests(seconds int) func(http.ResponseWriter, *http.Request, http.Handler) {
	return Status(http.StatusTooManyRequests, "Retry-After", strconv.Itoa(seconds))
}

// Reset drops the connection before answering.
func Reset(w http.ResponseWriter, r *http.Request, _ http.Handler) { resetConn(w) }

// maxStall bounds a stall, in case the client never gives up: the test
// then fails on its own terms rather than hanging.
const maxStall = 2 * time.Minute

func stall(r *http.Request) {
	t := time.NewTimer(maxStall)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-t.C:
	}
}

// Stall never answers; the client must give up.
func Stall(w http.ResponseWriter, r *http.Request, _ http.Handler) {
	stall(r)
	resetConn(w)
}

// ResetAfter serves the registry's answer (headers and Content-Length
// included) but drops the connection after n bytes of its body.
func ResetAfter(n int) func(http.ResponseWriter, *http.Request, http.Handler) {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		rec := record(next, r)
		copyHeader(w, rec)
		w.WriteHeader(rec.Code)
		body := rec.Body.Bytes()
		_, _ = w.Write(body[:min(n, len(body))])
		w.(http.Flusher).Flush()
		resetConn(w)
	}
}

// StallAfter serves the registry's answer but stops after n bytes of its
// body, until the client gives up.
func StallAfter(n int) func(http.ResponseWriter, *http.Request, http.Handler) {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		rec := record(next, r)
		copyHeader(w, rec)
		w.WriteHeader(rec.Code)
		body := rec.Body.Bytes()
		_, _ = w.Write(body[:min(n, len(body))])
		w.(http.Flusher).Flush()
		stall(r)
		resetConn(w)
	}
}

// Rewrite serves the registry's answer with its body passed through fn;
// Content-Length follows the new body. Rewrite(flipByte) is a registry
// serving other bytes of the same size.
func Rewrite(fn func([]byte) []byte) func(http.ResponseWriter, *http.Request, http.Handler) {
	return func(w http.ResponseWriter, r *http.Request, next http.Handler) {
		rec := record(next, r)
		body := fn(bytes.Clone(rec.Body.Bytes()))
		copyHeader(w, rec)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(rec.Code)
		_, _ = w.Write(body)
	}
}

// FlipLastByte changes the last byte of a body, keeping its size.
func FlipLastByte(b []byte) []byte {
	if len(b) > 0 {
		b[len(b)-1] ^= 0xff
	}
	return b
}

// Endless answers 200 with the registry's headers but no Content-Length,
// and zeros instead of the content, without end (until the client hangs
// up, or two minutes).
func Endless(w http.ResponseWriter, r *http.Request, next http.Handler) {
	endless(w, r, next, false)
}

// EndlessAfterBody answers like the registry, but without Content-Length
// and with zeros after the real body, without end.
func EndlessAfterBody(w http.ResponseWriter, r *http.Request, next http.Handler) {
	endless(w, r, next, true)
}

func endless(w http.ResponseWriter, r *http.Request, next http.Handler, body bool) {
	rec := record(next, r)
	copyHeader(w, rec)
	w.Header().Del("Content-Length")
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	if body {
		_, _ = w.Write(rec.Body.Bytes())
	}
	zeros := make([]byte, 256<<10)
	deadline := time.Now().Add(maxStall)
	for r.Context().Err() == nil && time.Now().Before(deadline) {
		if _, err := w.Write(zeros); err != nil {
			return
		}
	}
}

// Pass lets the registry answer; a fault that passes only marks the time a
// request came, for checking what the client waited.
func Pass(w http.ResponseWriter, r *http.Request, next http.Handler) { next.ServeHTTP(w, r) }

// record runs the registry's handler into a recorder.
func record(next http.Handler, r *http.Request) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, r)
	return rec
}

func copyHeader(w http.ResponseWriter, rec *httptest.ResponseRecorder) {
	for k, vs := range rec.Header() {
		w.Header()[k] = vs
	}
}

// resetConn drops the connection with a TCP RST.
func resetConn(w http.ResponseWriter) {
	conn, buf, err := w.(http.Hijacker).Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = buf.Flush()
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	conn.Close()
}

// String lists the faults for test logs.
func (f *Faults) String() string {
	var b strings.Builder
	for _, e := range f.Log() {
		fmt.Fprintf(&b, "%s %s %s: %s\n", e.At.Format("15:04:05.000"), e.Method, e.Path, e.Fault)
	}
	return b.String()
}
