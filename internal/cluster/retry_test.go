package cluster

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	utilnet "k8s.io/apimachinery/pkg/util/net"
	"k8s.io/client-go/rest"

	"github.com/ferry-gitops/ferry/reconcile"
)

// scripted is an HTTP server answering each request with the next step of
// its script, then 200 with an empty list forever; it records the arrival
// of every attempt.
type scripted struct {
	t     *testing.T
	mu    sync.Mutex
	steps []string
	times []time.Time
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	n := len(s.times)
	s.times = append(s.times, time.Now())
	step := "ok"
	if n < len(s.steps) {
		step = s.steps[n]
	}
	s.mu.Unlock()
	_, _ = io.Copy(io.Discard, r.Body)
	switch step {
	case "ok":
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"apiVersion":"v1","kind":"ConfigMapList","metadata":{},"items":[]}`)
	case "429":
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
	case "429-long":
		w.Header().Set("Retry-After", "3600")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
	case "429-now":
		w.Header().Set("Retry-After", "0")
		http.Error(w, "too many requests", http.StatusTooManyRequests)
	case "500", "502", "503", "504":
		code := map[string]int{"500": 500, "502": 502, "503": 503, "504": 504}[step]
		http.Error(w, http.StatusText(code), code)
	case "reset":
		conn, _, err := w.(http.Hijacker).Hijack()
		if err != nil {
			s.t.Error(err)
			return
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			_ = tc.SetLinger(0) // a RST, not a FIN
		}
		conn.Close()
	case "stall":
		select {
		case <-r.Context().Done():
		case <-time.After(30 * time.Second):
		}
	default:
		s.t.Errorf("unknown step %q", step)
	}
}

func (s *scripted) attempts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.times)
}

// TestRetryTransport drives the transport alone against scripted faults.
func TestRetryTransport(t *testing.T) {
	policy := RetryPolicy{Attempts: 4, Initial: time.Millisecond, Max: 5 * time.Millisecond, MaxRetryAfter: 10 * time.Second, Timeout: 200 * time.Millisecond}
	apply := func(url string) *http.Request {
		body := []byte(`{"kind":"ConfigMap"}`)
		req, _ := http.NewRequest(http.MethodPatch, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/apply-patch+yaml")
		return req
	}
	for _, tc := range []struct {
		name         string
		steps        []string
		req          func(url string) *http.Request
		wantStatus   int // 0: an error
		wantAttempts int
		// minWait is the least time between the first and second
		// attempts: Retry-After's lower bound, a guarantee not a timing.
		minWait time.Duration
	}{
		{name: "429 honours Retry-After", steps: []string{"429"}, wantStatus: 200, wantAttempts: 2, minWait: time.Second},
		{name: "503 then 500", steps: []string{"503", "500"}, wantStatus: 200, wantAttempts: 3},
		{name: "reset on a GET", steps: []string{"reset"}, wantStatus: 200, wantAttempts: 2},
		{name: "reset on an apply", steps: []string{"reset", "502"}, req: apply, wantStatus: 200, wantAttempts: 3},
		{name: "stall", steps: []string{"stall"}, wantStatus: 200, wantAttempts: 2},
		{name: "gives up after the attempts", steps: []string{"503", "503", "503", "503", "503"}, wantStatus: 503, wantAttempts: 4},
		{name: "gives up on a reset", steps: []string{"reset", "reset", "reset", "reset"}, wantAttempts: 4},
		{name: "Retry-After beyond the limit", steps: []string{"429-long"}, wantStatus: 429, wantAttempts: 1},
		{name: "merge patch is not replayed", steps: []string{"503"}, req: func(url string) *http.Request {
			req, _ := http.NewRequest(http.MethodPatch, url, bytes.NewReader([]byte(`{}`)))
			req.Header.Set("Content-Type", "application/merge-patch+json")
			return req
		}, wantStatus: 503, wantAttempts: 1},
		{name: "an answer is not retried", steps: []string{"ok"}, wantStatus: 200, wantAttempts: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &scripted{t: t, steps: tc.steps}
			srv := httptest.NewServer(s)
			defer srv.Close()
			count := &counters{}
			rt := &retryTransport{next: http.DefaultTransport.(*http.Transport).Clone(), policy: policy, count: count, redact: &redactor{}}
			req := func(url string) *http.Request {
				r, _ := http.NewRequest(http.MethodGet, url, nil)
				return r
			}
			if tc.req != nil {
				req = tc.req
			}
			resp, err := rt.RoundTrip(req(srv.URL + "/api/v1/configmaps").WithContext(t.Context()))
			if tc.wantStatus == 0 {
				if err == nil {
					t.Fatalf("got %s; want an error", resp.Status)
				}
				// client-go's own test for errors it retries by itself.
				if utilnet.IsConnectionReset(err) || utilnet.IsProbableEOF(err) || utilnet.IsHTTP2ConnectionLost(err) {
					t.Errorf("client-go would retry the final error %q all over again", err)
				}
			} else {
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.wantStatus {
					t.Errorf("status %d; want %d", resp.StatusCode, tc.wantStatus)
				}
				if resp.StatusCode >= 400 && resp.Header.Get("Retry-After") != "" {
					t.Error("a response the transport gave up on still carries Retry-After: client-go would retry it again")
				}
			}
			if got := s.attempts(); got != tc.wantAttempts {
				t.Errorf("%d attempts reached the server; want %d", got, tc.wantAttempts)
			}
			if st := count.snapshot(); st.Total() != tc.wantAttempts || st.Retries != tc.wantAttempts-1 {
				t.Errorf("stats %+v; want %d attempts, %d retries", st, tc.wantAttempts, tc.wantAttempts-1)
			}
			if tc.minWait > 0 && s.times[1].Sub(s.times[0]) < tc.minWait {
				t.Errorf("retried after %s; Retry-After asked for %s", s.times[1].Sub(s.times[0]), tc.minWait)
			}
		})
	}
}

// TestClientGoAddsNoRetries: through a whole Client, a server that always
// answers 429 with Retry-After sees exactly the policy's attempts. Without
// the transport's care, client-go's own layer would multiply them by 11.
func TestClientGoAddsNoRetries(t *testing.T) {
	steps := make([]string, 100)
	for i := range steps {
		steps[i] = "429-now"
	}
	s := &scripted{t: t, steps: steps}
	srv := httptest.NewServer(s)
	defer srv.Close()
	c, err := New(Options{Config: &rest.Config{Host: srv.URL}, Retry: RetryPolicy{Attempts: 3, Initial: time.Millisecond, Max: time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.List(t.Context(), reconcile.GVKConfigMap); err == nil {
		t.Fatal("List succeeded against a server that only answers 429")
	}
	if got := s.attempts(); got != 3 {
		t.Errorf("%d requests reached the server; want 3", got)
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"1":                             time.Second,
		" 120 ":                         2 * time.Minute,
		"Fri, 02 Jan 2026 03:04:15 GMT": 10 * time.Second,
		"Fri, 02 Jan 2026 03:04:00 GMT": 0,
	} {
		got, ok := retryAfter(v, now)
		if !ok || got != want {
			t.Errorf("retryAfter(%q) = %s, %v; want %s", v, got, ok, want)
		}
	}
	for _, v := range []string{"", "-1", "soon"} {
		if _, ok := retryAfter(v, now); ok {
			t.Errorf("retryAfter(%q) accepted", v)
		}
	}
}

func TestBackoffBounds(t *testing.T) {
	p := RetryPolicy{Initial: 100 * time.Millisecond, Max: time.Second}
	for n, max := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 9: time.Second} {
		for range 50 {
			if d := p.backoff(n); d < max/2 || d > max {
				t.Fatalf("backoff(%d) = %s; want within [%s, %s]", n, d, max/2, max)
			}
		}
	}
}
