package mirror

import (
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fault is one misbehaviour of the proxy.
type fault string

const (
	faultNone       fault = ""
	fault500        fault = "500"
	fault503        fault = "503"
	fault429        fault = "429+Retry-After"
	faultReset      fault = "reset before response"
	faultResetBody  fault = "reset mid-body"
	faultStall      fault = "stall before response"
	faultStallBody  fault = "stall mid-body"
	retryAfterValue       = 1 // seconds
)

// faultScripts are what the proxy does to the 1st, 2nd, ... request for a
// path; past the end of its script a path is served normally, so every
// request succeeds within a few attempts and a run that retries correctly
// always completes. Which script a path gets is a hash of the path, so the
// faults are the same on every run.
var faultScripts = [][]fault{
	{},
	{fault500},
	{fault429},
	{fault503, faultResetBody},
	{faultStall},
	{faultResetBody},
	{faultStallBody},
	{faultReset, fault429},
	{},
	{},
}

// faultProxy is an httputil.ReverseProxy on 127.0.0.1 in front of a
// registry that injects faults by script.
type faultProxy struct {
	Host string

	target *url.URL
	rp     *httputil.ReverseProxy
	// maxStall bounds a stall, in case the client never gives up; the
	// test then fails on time rather than hanging.
	maxStall time.Duration
	// only restricts faults to requests whose path contains it ("" = all).
	only string

	mu         sync.Mutex
	enabled    bool
	attempts   map[string]int
	injected   map[fault]int
	last429    map[string]time.Time
	retried429 int
	violations []string
}

func startFaultProxy(t testing.TB, targetHost string) *faultProxy {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: targetHost}
	p := &faultProxy{
		target:   target,
		rp:       httputil.NewSingleHostReverseProxy(target),
		maxStall: 30 * time.Second,
		enabled:  true,
		attempts: map[string]int{},
		injected: map[fault]int{},
		last429:  map[string]time.Time{},
	}
	p.rp.ErrorLog = nil
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	p.Host = strings.TrimPrefix(srv.URL, "http://")
	return p
}

func (p *faultProxy) setEnabled(on bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.enabled = on
}

// choose picks the fault for r and checks Retry-After was honoured.
func (p *faultProxy) choose(r *http.Request) fault {
	key := r.Method + " " + r.URL.Path
	p.mu.Lock()
	defer p.mu.Unlock()
	if at, ok := p.last429[key]; ok {
		delete(p.last429, key)
		p.retried429++
		if since := time.Since(at); since < retryAfterValue*time.Second {
			p.violations = append(p.violations, fmt.Sprintf("%s came back %s after a 429 with Retry-After: %d", key, since, retryAfterValue))
		}
	}
	if !p.enabled || (p.only != "" && !strings.Contains(r.URL.Path, p.only)) {
		return faultNone
	}
	n := p.attempts[key]
	p.attempts[key] = n + 1
	h := fnv.New32a()
	h.Write([]byte(key))
	script := faultScripts[h.Sum32()%uint32(len(faultScripts))]
	if n >= len(script) {
		return faultNone
	}
	f := script[n]
	if r.Method == http.MethodHead && (f == faultResetBody || f == faultStallBody) {
		f = faultReset // nothing to cut in a HEAD
	}
	p.injected[f]++
	if f == fault429 {
		p.last429[key] = time.Now()
	}
	return f
}

func (p *faultProxy) report() (injected map[fault]int, retried429 int, violations []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := map[fault]int{}
	for k, v := range p.injected {
		out[k] = v
	}
	return out, p.retried429, append([]string(nil), p.violations...)
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch f := p.choose(r); f {
	case faultNone:
		p.rp.ServeHTTP(w, r)
	case fault500, fault503:
		code := http.StatusInternalServerError
		if f == fault503 {
			code = http.StatusServiceUnavailable
		}
		http.Error(w, `{"errors":[{"code":"UNAVAILABLE","message":"injected"}]}`, code)
	case fault429:
		w.Header().Set("Retry-After", fmt.Sprint(retryAfterValue))
		http.Error(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"injected"}]}`, http.StatusTooManyRequests)
	case faultReset:
		reset(w)
	case faultStall:
		p.stall(r)
		reset(w)
	case faultResetBody, faultStallBody:
		p.cutBody(w, r, f == faultStallBody)
	}
}

// stall waits until the client gives up (or maxStall).
func (p *faultProxy) stall(r *http.Request) {
	t := time.NewTimer(p.maxStall)
	defer t.Stop()
	select {
	case <-r.Context().Done():
	case <-t.C:
	}
}

// cutBody forwards the response headers and half the body, then resets
// the connection (optionally after stalling).
func (p *faultProxy) cutBody(w http.ResponseWriter, r *http.Request, stall bool) {
	out := r.Clone(r.Context())
	out.RequestURI = ""
	out.URL.Scheme, out.URL.Host, out.Host = p.target.Scheme, p.target.Host, p.target.Host
	resp, err := http.DefaultTransport.RoundTrip(out)
	if err != nil {
		reset(w)
		return
	}
	defer resp.Body.Close()
	for k, vs := range resp.Header {
		w.Header()[k] = vs
	}
	w.WriteHeader(resp.StatusCode)
	if resp.ContentLength > 1 {
		_, _ = io.CopyN(w, resp.Body, resp.ContentLength/2)
	}
	w.(http.Flusher).Flush()
	if stall {
		p.stall(r)
	}
	reset(w)
}

// reset drops the connection with a TCP RST.
func reset(w http.ResponseWriter) {
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

// startRedirectProxy proxies to a registry but answers the requests match
// selects with a redirect to location, as registries backed by object
// storage do for blobs.
func startRedirectProxy(t testing.TB, targetHost string, match func(*http.Request) bool, location string) string {
	t.Helper()
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: targetHost})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if match(r) {
			http.Redirect(w, r, location, http.StatusTemporaryRedirect)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// startUploadLocationProxy proxies to a registry but rewrites the Location
// of every new upload session to location.
func startUploadLocationProxy(t testing.TB, targetHost, location string) string {
	t.Helper()
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: targetHost})
	rp.ModifyResponse = func(resp *http.Response) error {
		if resp.Request.Method == http.MethodPost && resp.StatusCode == http.StatusAccepted {
			resp.Header.Set("Location", location)
		}
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}
