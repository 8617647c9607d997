package registry

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// scripted is a server that answers the nth request with script[n] (the
// last entry repeats) and records what it received.
type scripted struct {
	mu     sync.Mutex
	script []func(w http.ResponseWriter, r *http.Request)
	got    []received
}

type received struct {
	at     time.Time
	method string
	url    string
	body   string
}

func (s *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	n := len(s.got)
	s.got = append(s.got, received{time.Now(), r.Method, r.URL.String(), string(body)})
	step := s.script[min(n, len(s.script)-1)]
	s.mu.Unlock()
	step(w, r)
}

func (s *scripted) requests() []received {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]received(nil), s.got...)
}

func status(code int, header ...string) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		for i := 0; i+1 < len(header); i += 2 {
			w.Header().Set(header[i], header[i+1])
		}
		w.WriteHeader(code)
		_, _ = w.Write([]byte("body"))
	}
}

func resetConn(w http.ResponseWriter, r *http.Request) {
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

func stallFor(d time.Duration) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-time.After(d):
		}
		w.WriteHeader(http.StatusOK)
	}
}

func testPolicy() RetryPolicy {
	p := DefaultRetryPolicy()
	p.Initial, p.Max = time.Millisecond, 5*time.Millisecond
	p.StallTimeout = 300 * time.Millisecond
	return p
}

// counted is a Transport with its retries counted through Hooks.
type counted struct {
	*Transport
	retries atomic.Int64
}

func startScripted(t *testing.T, steps ...func(http.ResponseWriter, *http.Request)) (*scripted, *counted, string) {
	t.Helper()
	s := &scripted{script: steps}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	c := &counted{}
	c.Transport = NewTransport(TransportOptions{Host: srv.Listener.Addr().String(), Conns: 4, Policy: testPolicy(),
		Hooks: Hooks{Retry: func(*http.Request) { c.retries.Add(1) }}})
	return s, c, srv.URL
}

func do(t *testing.T, tr http.RoundTripper, method, url string, body []byte) (*http.Response, error) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := tr.RoundTrip(req)
	if err == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
	}
	return resp, err
}

func TestTransportRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		method   string
		body     []byte
		steps    []func(http.ResponseWriter, *http.Request)
		attempts int // requests the server should see
		status   int // final status, 0 for an error
	}{
		{"503 then ok", "GET", nil, []func(http.ResponseWriter, *http.Request){status(503), status(503), status(200)}, 3, 200},
		{"500 502 504 408", "HEAD", nil, []func(http.ResponseWriter, *http.Request){status(500), status(502), status(504), status(408), status(200)}, 5, 200},
		{"reset then ok", "GET", nil, []func(http.ResponseWriter, *http.Request){resetConn, status(200)}, 2, 200},
		{"stall then ok", "GET", nil, []func(http.ResponseWriter, *http.Request){stallFor(10 * time.Second), status(200)}, 2, 200},
		{"404 is an answer", "GET", nil, []func(http.ResponseWriter, *http.Request){status(404)}, 1, 404},
		{"401 is an answer", "GET", nil, []func(http.ResponseWriter, *http.Request){status(401)}, 1, 401},
		{"gives up after Attempts", "GET", nil, []func(http.ResponseWriter, *http.Request){status(503)}, 8, 503},
		{"PATCH never replayed", "PATCH", []byte("chunk"), []func(http.ResponseWriter, *http.Request){status(503), status(202)}, 1, 503},
		{"manifest PUT replayed", "PUT", []byte(`{"manifest":1}`), []func(http.ResponseWriter, *http.Request){status(500), status(201)}, 2, 201},
		{"Retry-After too long", "GET", nil, []func(http.ResponseWriter, *http.Request){status(429, "Retry-After", "3600"), status(200)}, 1, 429},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, tr, url := startScripted(t, tc.steps...)
			resp, err := do(t, tr, tc.method, url+"/v2/ns/repo/manifests/x", tc.body)
			got := s.requests()
			if len(got) != tc.attempts {
				t.Errorf("server saw %d requests, want %d", len(got), tc.attempts)
			}
			switch {
			case tc.status == 0 && err == nil:
				t.Errorf("status %d, want an error", resp.StatusCode)
			case tc.status != 0 && err != nil:
				t.Fatalf("error %v, want %d", err, tc.status)
			case tc.status != 0 && resp.StatusCode != tc.status:
				t.Errorf("status %d, want %d", resp.StatusCode, tc.status)
			}
			for _, r := range got {
				if r.body != string(tc.body) {
					t.Errorf("attempt body %q, want %q (replays must send the whole body)", r.body, tc.body)
				}
			}
			if tr.retries.Load() != int64(tc.attempts-1) {
				t.Errorf("%d retries counted, want %d", tr.retries.Load(), tc.attempts-1)
			}
		})
	}
}

func TestTransportHonoursRetryAfter(t *testing.T) {
	for _, seconds := range []bool{true, false} {
		ra := "1"
		if !seconds {
			// An HTTP date has one-second resolution: two seconds ahead is
			// at least one.
			ra = time.Now().Add(2 * time.Second).UTC().Format(http.TimeFormat)
		}
		s, tr, url := startScripted(t, status(429, "Retry-After", ra), status(200))
		if _, err := do(t, tr, "GET", url+"/v2/ns/repo/blobs/sha256:00", nil); err != nil {
			t.Fatal(err)
		}
		got := s.requests()
		if len(got) != 2 {
			t.Fatalf("%d requests, want 2", len(got))
		}
		if gap := got[1].at.Sub(got[0].at); gap < time.Second {
			t.Errorf("Retry-After %q: came back after %s", ra, gap)
		}
	}
}

func TestTransportGivesUpWithoutLooking(t *testing.T) {
	// A port nobody listens on: refused every time.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	tr := NewTransport(TransportOptions{Host: addr, Conns: 1, Policy: testPolicy()})
	_, err = do(t, tr, "GET", "http://"+addr+"/v2/ns/repo/manifests/x", nil)
	var ee *ExhaustedError
	if !errors.As(err, &ee) || ee.Attempts != testPolicy().Attempts {
		t.Fatalf("error %v, want an exhaustedError after %d attempts", err, testPolicy().Attempts)
	}
	// go-containerregistry's retry layer must not start over.
	if Retryable(err) || errors.Is(err, io.EOF) {
		t.Errorf("exhausted error still looks retryable: %v", err)
	}
	if TransferRetryable(err) {
		t.Error("the transfer layer would retry what the request layer gave up on")
	}
}

func TestTransportCancelStopsWaiting(t *testing.T) {
	_, tr, url := startScripted(t, status(429, "Retry-After", "60"))
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/v2/ns/repo/manifests/x", nil)
	start := time.Now()
	_, err := tr.RoundTrip(req)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want the context's", err)
	}
	if time.Since(start) > 10*time.Second {
		t.Error("kept waiting for Retry-After after the context ended")
	}
}

func TestTransportStallMidBody(t *testing.T) {
	_, tr, url := startScripted(t, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "100")
		w.WriteHeader(200)
		_, _ = w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	})
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/v2/ns/repo/blobs/sha256:00", nil)
	resp, err := tr.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, err = io.ReadAll(resp.Body)
	var se *StallError
	if !errors.As(err, &se) || !Retryable(err) {
		t.Fatalf("reading a stalled body: %v, want a retryable stallError", err)
	}
}

func TestTransportCachesPing(t *testing.T) {
	s, tr, url := startScripted(t, status(401, "WWW-Authenticate", `Basic realm="r"`))
	for range 3 {
		resp, err := do(t, tr, "GET", url+"/v2/", nil)
		if err != nil || resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") != `Basic realm="r"` {
			t.Fatalf("ping: %v %v", resp, err)
		}
	}
	if n := len(s.requests()); n != 1 {
		t.Errorf("server saw %d pings, want 1", n)
	}
	// Authenticated requests to /v2/ are not pings.
	req, _ := http.NewRequestWithContext(t.Context(), "GET", url+"/v2/", nil)
	req.Header.Set("Authorization", "Basic eDp5")
	if _, err := tr.RoundTrip(req); err != nil {
		t.Fatal(err)
	}
	if n := len(s.requests()); n != 2 {
		t.Errorf("server saw %d requests, want 2", n)
	}
}

func TestRetryAfterParse(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"3", 3 * time.Second, true},
		{" 0 ", 0, true},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second, true},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0, true},
		{"", 0, false},
		{"-1", 0, false},
		{"soon", 0, false},
	} {
		got, ok := RetryAfter(tc.in, now)
		if got != tc.want || ok != tc.ok {
			t.Errorf("RetryAfter(%q) = %s, %v; want %s, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBackoffJitteredAndCapped(t *testing.T) {
	p := RetryPolicy{Initial: 100 * time.Millisecond, Max: time.Second}
	distinct := map[time.Duration]bool{}
	for n := 1; n <= 12; n++ {
		want := min(p.Initial<<(n-1), p.Max)
		for range 20 {
			d := p.Backoff(n)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", n, d, want/2, want)
			}
			distinct[d] = true
		}
	}
	if len(distinct) < 20 {
		t.Errorf("only %d distinct waits: no jitter?", len(distinct))
	}
}
