package cluster

import (
	"errors"
	"fmt"
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

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"

	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/reconcile"
)

// faultProxy is a reverse proxy in front of the real API server that
// misbehaves by script: the Nth request for a key ("METHOD /path", plus "
// dry-run") gets the Nth fault, and every request past its script is
// passed through. Faults are what a cluster's front end does under load or
// in a restart: 429 with Retry-After (priority and fairness), 5xx, a
// connection reset before any answer, an answer that never comes, and the
// optimistic-concurrency 409 of a write that lost a race.
type faultProxy struct {
	t       *testing.T
	rp      *httputil.ReverseProxy
	scripts map[string][]string

	mu       sync.Mutex
	attempts map[string]int
	injected int
	last429  map[string]time.Time
	early    []string // retries that came before Retry-After allowed
}

func (p *faultProxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	key := r.Method + " " + r.URL.Path
	if r.URL.Query().Get("dryRun") != "" {
		key += " dry-run"
	}
	p.mu.Lock()
	n := p.attempts[key]
	p.attempts[key]++
	fault := ""
	if script := p.scripts[key]; n < len(script) {
		fault = script[n]
		p.injected++
	}
	if at, ok := p.last429[key]; ok && time.Since(at) < time.Second {
		p.early = append(p.early, key)
	}
	delete(p.last429, key)
	if fault == "429" {
		p.last429[key] = time.Now()
	}
	p.mu.Unlock()

	switch fault {
	case "":
		p.rp.ServeHTTP(w, r)
	case "429":
		w.Header().Set("Retry-After", "1")
		http.Error(w, "Too many requests, please try again later.", http.StatusTooManyRequests)
	case "500", "503":
		code := map[string]int{"500": 500, "503": 503}[fault]
		http.Error(w, http.StatusText(code), code)
	case "409":
		_, _ = io.Copy(io.Discard, r.Body)
		name := r.URL.Path[strings.LastIndex(r.URL.Path, "/")+1:]
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusConflict)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Operation cannot be fulfilled on catalogsources.operators.coreos.com \"%s\": the object has been modified; please apply your changes to the latest version and try again","reason":"Conflict","details":{"name":"%s","group":"operators.coreos.com","kind":"catalogsources"},"code":409}`, name, name)
	case "reset":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			p.t.Error(err)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		conn.Close()
	case "stall":
		// The server notices a client hanging up only once it has read
		// the request body.
		_, _ = io.Copy(io.Discard, r.Body)
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	default:
		p.t.Errorf("unknown fault %q", fault)
	}
}

// TestRetriesAgainstFaults runs every operation through the fault proxy:
// each succeeds after its faults, every fault is one counted retry, the
// retry after a 429 waits for Retry-After, and the API server (its audit
// log) sees each write once. An apply conflict passes through the same
// proxy and is sent once.
func TestRetriesAgainstFaults(t *testing.T) {
	skipE2E(t)
	t.Parallel()
	kube := testenv.SharedKube(t)
	ns := kube.NewNamespace(t)
	user := "ferry-test:" + t.Name()

	upstream, err := url.Parse(kube.Host)
	if err != nil {
		t.Fatal(err)
	}
	// The proxy speaks TLS to the API server and forwards the client's
	// own Authorization and impersonation headers.
	tlsOnly, err := rest.TransportFor(&rest.Config{TLSClientConfig: kube.RESTConfig().TLSClientConfig})
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(upstream)
	rp.Transport = tlsOnly
	cs := "/apis/operators.coreos.com/v1alpha1/namespaces/" + ns + "/catalogsources/"
	p := &faultProxy{t: t, rp: rp, attempts: map[string]int{}, last429: map[string]time.Time{}, scripts: map[string][]string{
		"PATCH " + cs + "a":         {"503", "reset"},
		"PATCH " + cs + "b dry-run": {"stall"},
		"PATCH " + cs + "b":         {"409"},
		"GET /apis/operators.coreos.com/v1alpha1/catalogsources": {"429"},
		"GET " + cs + "a":    {"reset"},
		"DELETE " + cs + "a": {"500"},
	}}
	// Go's http.Transport itself resends an idempotent request whose
	// reused connection broke before any answer, out of sight of every
	// layer above it. With keep-alives off no connection is reused, every
	// reset reaches the retry policy, and the count below is exact.
	srv := httptest.NewUnstartedServer(p)
	srv.Config.SetKeepAlivesEnabled(false)
	srv.Start()
	defer srv.Close()

	cfg := kube.As(user)
	cfg.Host = srv.URL
	cfg.TLSClientConfig = rest.TLSClientConfig{}
	c, err := New(Options{Config: cfg, Retry: RetryPolicy{Attempts: 5, Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, Timeout: 500 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}

	mark := kube.AuditMark(t)
	a := catalogSource(ns, "a", "mirror.example.com/a@"+digest("a"))
	b := catalogSource(ns, "b", "mirror.example.com/b@"+digest("b"))
	if _, err := c.Apply(t.Context(), a, false); err != nil {
		t.Fatalf("Apply a: %v", err)
	}
	if action, err := c.Diff(t.Context(), b, nil, false); err != nil || action != reconcile.Create {
		t.Fatalf("Diff b = %q, %v", action, err)
	}
	if _, err := c.Apply(t.Context(), b, false); err != nil {
		t.Fatalf("Apply b: %v", err)
	}
	if _, err := c.List(t.Context(), reconcile.GVKCatalogSource); err != nil {
		t.Fatalf("List: %v", err)
	}
	got, err := c.Get(t.Context(), reconcile.GVKCatalogSource, ns, "a")
	if err != nil {
		t.Fatalf("Get a: %v", err)
	}
	if err := c.Delete(t.Context(), got); err != nil {
		t.Fatalf("Delete a: %v", err)
	}

	// A hand edit, made directly (not through the proxy), then an apply
	// that conflicts with it.
	edit := []byte(`{"spec":{"image":"registry.example.com/b:latest"}}`)
	if _, err := kube.Dynamic().Resource(csGVR).Namespace(ns).Patch(t.Context(), "b", types.MergePatchType, edit, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	b2 := b.DeepCopy()
	_ = unstructured.SetNestedField(b2.Object, "mirror.example.com/b@"+digest("b2"), "spec", "image")
	p.mu.Lock()
	before := p.attempts["PATCH "+cs+"b"]
	p.mu.Unlock()
	var ce *reconcile.ConflictError
	if _, err := c.Apply(t.Context(), b2, false); !errors.As(err, &ce) {
		t.Fatalf("Apply after the hand edit = %v; want a conflict", err)
	}

	p.mu.Lock()
	defer p.mu.Unlock()
	if n := p.attempts["PATCH "+cs+"b"] - before; n != 1 {
		t.Errorf("the conflicting apply was sent %d times; want once", n)
	}
	if s := c.Stats(); s.Retries != p.injected || p.injected != 7 {
		t.Errorf("client counted %d retries; the proxy injected %d faults (want 7)", s.Retries, p.injected)
	}
	if len(p.early) > 0 {
		t.Errorf("retried before Retry-After allowed: %v", p.early)
	}
	events := kube.AuditEvents(t, mark).By(user)
	want := []string{
		"patch catalogsources " + ns + "/a 201",
		"patch catalogsources " + ns + "/b 201 dry-run",
		"patch catalogsources " + ns + "/b 201",
		"list catalogsources 200",
		"get catalogsources " + ns + "/a 200",
		"delete catalogsources " + ns + "/a 200",
		"patch catalogsources " + ns + "/b 409",
	}
	if diff := cmp.Diff(want, events.Strings()); diff != "" {
		t.Errorf("what the API server received (-want +got):\n%s", diff)
	}
}
