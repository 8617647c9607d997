package mirror

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/ferry-gitops/ferry/internal/registry"
)

// counters are one registry's request accounting.
type counters struct {
	requests      sync.Map // method -> *atomic.Int64
	writes        atomic.Int64
	retries       atomic.Int64
	pings         atomic.Int64
	bytesSent     atomic.Int64
	bytesReceived atomic.Int64
}

func (c *counters) request(method string) {
	v, ok := c.requests.Load(method)
	if !ok {
		v, _ = c.requests.LoadOrStore(method, new(atomic.Int64))
	}
	v.(*atomic.Int64).Add(1)
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		c.writes.Add(1)
	}
}

func (c *counters) snapshot(host string) RegistryStats {
	s := RegistryStats{
		Host:          host,
		Requests:      map[string]int64{},
		Writes:        c.writes.Load(),
		Retries:       c.retries.Load(),
		Pings:         c.pings.Load(),
		BytesSent:     c.bytesSent.Load(),
		BytesReceived: c.bytesReceived.Load(),
	}
	c.requests.Range(func(k, v any) bool {
		s.Requests[k.(string)] = v.(*atomic.Int64).Load()
		return true
	})
	return s
}

// recorder collects what the requests of one blob transfer did, so the
// engine can tell a blob that was present from one it mounted or uploaded
// even though go-containerregistry's Upload only returns an error.
type recorder struct {
	// digest is the blob being transferred; it lets the transport turn
	// go-containerregistry's PATCH + PUT into one PUT (see coalesce).
	digest string
	// skipHead answers go-containerregistry's existence check of the blob
	// (HEAD) with a 404 without sending it; the mount request that follows
	// answers the same question (see copyBlob).
	skipHead bool

	present   atomic.Bool  // HEAD of the blob answered 200
	mounted   atomic.Bool  // POST ?mount= answered 201
	committed atomic.Bool  // PUT ?digest= answered 201
	sent      atomic.Int64 // request body bytes written
}

type recorderKey struct{}

func withRecorder(ctx context.Context, r *recorder) context.Context {
	return context.WithValue(ctx, recorderKey{}, r)
}

// engineTransport is what Copy puts under go-containerregistry's
// authentication for one registry: the shared retrying transport of
// internal/registry (backoff, Retry-After, stall cut-off, the /v2/ probe
// cache, the manifest bound), and on top of it what only the copy engine
// needs: request accounting, the blob-transfer recorder, the skipped blob
// HEAD and the coalesced upload.
type engineTransport struct {
	next  *registry.Transport
	count *counters
}

// newTransport builds the transport for host; insecure turns TLS
// verification off, only for registries the caller declared insecure.
func newTransport(host string, insecure bool, conns int, policy registry.RetryPolicy, log *slog.Logger, progress func(int64)) *engineTransport {
	count := &counters{}
	hooks := registry.Hooks{
		Attempt: func(req *http.Request) {
			count.request(req.Method)
			if req.Method == http.MethodGet && req.URL.Path == "/v2/" && req.Header.Get("Authorization") == "" {
				count.pings.Add(1)
			}
		},
		Retry: func(*http.Request) { count.retries.Add(1) },
		Response: func(req *http.Request, status int) {
			if rec, _ := req.Context().Value(recorderKey{}).(*recorder); rec != nil {
				record(rec, req, status)
			}
		},
		Sent: func(req *http.Request, n int) {
			count.bytesSent.Add(int64(n))
			if rec, _ := req.Context().Value(recorderKey{}).(*recorder); rec != nil {
				rec.sent.Add(int64(n))
			}
			if progress != nil {
				progress(int64(n))
			}
		},
		Received: func(_ *http.Request, n int) { count.bytesReceived.Add(int64(n)) },
	}
	return &engineTransport{
		next: registry.NewTransport(registry.TransportOptions{
			Host: host, Insecure: insecure, Conns: conns, Policy: policy, Log: log, Hooks: hooks,
		}),
		count: count,
	}
}

// RoundTrip implements http.RoundTripper.
func (t *engineTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if resp, ok, err := t.coalesce(req); ok {
		return resp, err
	}
	if rec, _ := req.Context().Value(recorderKey{}).(*recorder); rec != nil && rec.skipHead && isBlobHead(req) {
		return &http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	}
	return t.next.RoundTrip(req)
}

// isBlobHead reports whether req asks whether a blob exists.
func isBlobHead(req *http.Request) bool {
	p := req.URL.Path
	return req.Method == http.MethodHead && strings.Contains(p, "/blobs/") && !strings.Contains(p, "/blobs/uploads/")
}

// committedParam marks the upload location handed back to
// go-containerregistry after coalesce sent the blob and committed it.
const committedParam = "ferry-committed"

// coalesce uploads a blob in one request instead of two.
// go-containerregistry always streams a blob as PATCH <session> with the
// body, then PUT <session>?digest=... to commit it; the distribution spec
// equally allows PUT <session>?digest=... with the body (a monolithic
// upload, which every registry supports), and on a registry each request
// is a round of disk writes. So the PATCH of a blob whose digest is known
// is sent as that PUT; go-containerregistry is told the chunk was accepted
// at a marked location, and its commit PUT to the marked location is
// answered here without being sent. The body still streams from the source.
func (t *engineTransport) coalesce(req *http.Request) (*http.Response, bool, error) {
	rec, _ := req.Context().Value(recorderKey{}).(*recorder)
	switch {
	case req.Method == http.MethodPut && req.URL.Query().Get(committedParam) != "":
		return &http.Response{
			Status: "201 Created", StatusCode: http.StatusCreated,
			Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Body: http.NoBody, Request: req,
		}, true, nil
	case req.Method != http.MethodPatch || rec == nil || rec.digest == "" || req.ContentLength <= 0 || !strings.Contains(req.URL.Path, "/blobs/uploads/"):
		return nil, false, nil
	}
	put := req.Clone(req.Context())
	put.Method = http.MethodPut
	q := put.URL.Query()
	q.Set("digest", rec.digest)
	put.URL.RawQuery = q.Encode()
	put.GetBody = nil // a session that took part of a body cannot take it again
	resp, err := t.next.RoundTrip(put)
	if err != nil || resp.StatusCode != http.StatusCreated {
		return resp, true, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	loc := *req.URL
	lq := loc.Query()
	lq.Set(committedParam, "1")
	loc.RawQuery = lq.Encode()
	return &http.Response{
		Status: "202 Accepted", StatusCode: http.StatusAccepted,
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  http.Header{"Location": {loc.String()}},
		Body:    http.NoBody,
		Request: req,
	}, true, nil
}

// record notes what a blob-transfer request achieved, by the registry API
// route it took (distribution spec: HEAD blobs, POST uploads ?mount=, PUT
// uploads ?digest=).
func record(rec *recorder, req *http.Request, status int) {
	p := req.URL.Path
	switch {
	case isBlobHead(req):
		if status == http.StatusOK {
			rec.present.Store(true)
		}
	case req.Method == http.MethodPost && strings.HasSuffix(p, "/blobs/uploads/") && req.URL.Query().Get("mount") != "":
		if status == http.StatusCreated {
			rec.mounted.Store(true)
		}
	case req.Method == http.MethodPut && strings.Contains(p, "/blobs/uploads/"):
		if status == http.StatusCreated {
			rec.committed.Store(true)
		}
	}
}
