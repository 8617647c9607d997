package mirror

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ferry-gitops/ferry/internal/registry"
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

func testPolicy() registry.RetryPolicy {
	p := registry.DefaultRetryPolicy()
	p.Initial, p.Max = time.Millisecond, 5*time.Millisecond
	p.StallTimeout = 300 * time.Millisecond
	return p
}

func startScripted(t *testing.T, steps ...func(http.ResponseWriter, *http.Request)) (*scripted, *engineTransport, string) {
	t.Helper()
	s := &scripted{script: steps}
	srv := httptest.NewServer(s)
	t.Cleanup(srv.Close)
	tr := newTransport(srv.Listener.Addr().String(), false, 4, testPolicy(), slog.New(slog.DiscardHandler), nil)
	return s, tr, srv.URL
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

// TestTransportAccounting: the engine's counters see every attempt,
// retry, ping and byte of the shared retrying transport below it.
func TestTransportAccounting(t *testing.T) {
	s, tr, url := startScripted(t, status(503), status(503), status(200))
	if _, err := do(t, tr, "PUT", url+"/v2/ns/repo/manifests/x", []byte("manifest")); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := do(t, tr, "GET", url+"/v2/", nil); err != nil {
			t.Fatal(err)
		}
	}
	st := tr.count.snapshot("h")
	if len(s.requests()) != 4 || st.Requests["PUT"] != 3 || st.Retries != 2 || st.Writes != 3 || st.Pings != 1 {
		t.Errorf("server saw %d requests; counted %+v", len(s.requests()), st)
	}
	if st.BytesSent != 3*int64(len("manifest")) || st.BytesReceived == 0 {
		t.Errorf("bytes sent %d received %d", st.BytesSent, st.BytesReceived)
	}
}

// TestTransportCoalescesUpload: go-containerregistry's PATCH + PUT of a
// known blob reach the registry as one PUT with the body.
func TestTransportCoalescesUpload(t *testing.T) {
	s, tr, url := startScripted(t, status(201))
	digest := "sha256:" + strings.Repeat("ab", 32)
	ctx := withRecorder(t.Context(), &recorder{digest: digest})
	patch, _ := http.NewRequestWithContext(ctx, "PATCH", url+"/v2/ns/repo/blobs/uploads/uuid?_state=abc", strings.NewReader("blob-bytes"))
	resp, err := tr.RoundTrip(patch)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("PATCH: %v %v", resp, err)
	}
	loc := resp.Header.Get("Location")
	commit, _ := http.NewRequestWithContext(ctx, "PUT", loc+"&digest="+digest, nil)
	resp, err = tr.RoundTrip(commit)
	if err != nil || resp.StatusCode != http.StatusCreated {
		t.Fatalf("commit: %v %v", resp, err)
	}
	got := s.requests()
	if len(got) != 1 || got[0].method != "PUT" || got[0].body != "blob-bytes" || !strings.Contains(got[0].url, "digest=sha256%3A"+strings.Repeat("ab", 32)) || !strings.Contains(got[0].url, "_state=abc") {
		t.Errorf("registry saw %+v, want one PUT ?_state=abc&digest=... with the body", got)
	}
	rec := ctx.Value(recorderKey{}).(*recorder)
	if !rec.committed.Load() || rec.sent.Load() != int64(len("blob-bytes")) {
		t.Errorf("recorder: committed %v, sent %d", rec.committed.Load(), rec.sent.Load())
	}
}
