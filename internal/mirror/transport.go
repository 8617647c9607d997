package mirror

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// RetryPolicy says how hard Copy tries before it gives an image up.
type RetryPolicy struct {
	// Attempts bounds the tries of one HTTP request, the first included.
	// Requests are retried on 408, 429, 5xx, connection resets, refused
	// connections, timeouts and stalls; never on other 4xx. A PATCH (a blob
	// chunk) is never replayed: the registry may have appended part of it.
	Attempts int
	// Initial is the first backoff; each retry doubles it up to Max, and
	// every wait is jittered (a random point in its upper half) so that
	// workers hit by the same outage do not come back in lockstep.
	Initial, Max time.Duration
	// MaxRetryAfter is the longest Retry-After Copy honours. A longer one
	// fails the request rather than stall the run.
	MaxRetryAfter time.Duration
	// StallTimeout aborts a request that makes no progress (no response
	// headers, no body bytes read or written) for this long; the abort is
	// retried like a timeout.
	StallTimeout time.Duration
	// TransferAttempts bounds the tries of one blob transfer or manifest
	// copy as a whole: a blob stream that breaks after its response started
	// (a reset mid-blob, a stall, a digest mismatch) cannot be retried by
	// the request layer, so the transfer starts over from the HEAD.
	TransferAttempts int
}

// DefaultRetryPolicy waits at most about half a minute per request before
// giving up (0.2+0.4+...+6.4 s plus Retry-After), which rides out a registry
// restart or a burst of 429s without hiding a dead registry for long.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		Attempts:         8,
		Initial:          200 * time.Millisecond,
		Max:              15 * time.Second,
		MaxRetryAfter:    2 * time.Minute,
		StallTimeout:     60 * time.Second,
		TransferAttempts: 4,
	}
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetryPolicy()
	if p.Attempts <= 0 {
		p.Attempts = d.Attempts
	}
	if p.Initial <= 0 {
		p.Initial = d.Initial
	}
	if p.Max <= 0 {
		p.Max = d.Max
	}
	if p.MaxRetryAfter <= 0 {
		p.MaxRetryAfter = d.MaxRetryAfter
	}
	if p.StallTimeout <= 0 {
		p.StallTimeout = d.StallTimeout
	}
	if p.TransferAttempts <= 0 {
		p.TransferAttempts = d.TransferAttempts
	}
	return p
}

// backoff is the jittered wait before retry number n (1-based).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.Initial
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	half := d / 2
	return half + rand.N(half+1)
}

// errStalled is the cause of a request aborted by StallTimeout.
var errStalled = errors.New("no progress within the stall timeout")

// stallError reports a stalled request; it is a net.Error timeout so every
// layer treats it as one.
type stallError struct{ after time.Duration }

func (e *stallError) Error() string {
	return fmt.Sprintf("stalled: no progress for %s", e.after)
}
func (e *stallError) Timeout() bool   { return true }
func (e *stallError) Temporary() bool { return true }

// exhaustedError is a request error after the transport spent its retries.
// It deliberately has no Unwrap and no Temporary: go-containerregistry's own
// retry layer above would otherwise start the whole sequence again.
type exhaustedError struct {
	attempts int
	msg      string
}

func (e *exhaustedError) Error() string {
	return fmt.Sprintf("%s (after %d attempts)", e.msg, e.attempts)
}

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

// retryTransport is the HTTP layer Copy puts under go-containerregistry's
// authentication for one registry: retries with jittered exponential
// backoff honouring Retry-After, stall detection, a per-run cache of the
// /v2/ capability probe, and request accounting.
type retryTransport struct {
	base     http.RoundTripper
	policy   RetryPolicy
	host     string
	log      *slog.Logger
	count    *counters
	progress func(n int64)

	pings sync.Map // scheme://host -> *pingEntry
}

// newTransport builds the transport for host; insecure turns TLS
// verification off, only for registries the caller declared insecure.
func newTransport(host string, insecure bool, conns int, policy RetryPolicy, log *slog.Logger, progress func(int64)) *retryTransport {
	base := http.DefaultTransport.(*http.Transport).Clone()
	// Blobs must arrive byte for byte: never let net/http decompress a
	// Content-Encoding: gzip response behind the digest check's back.
	base.DisableCompression = true
	base.MaxIdleConnsPerHost = conns
	base.MaxIdleConns = 0
	if insecure {
		base.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user declared this registry insecure
	}
	return &retryTransport{
		base:     base,
		policy:   policy,
		host:     host,
		log:      log,
		count:    &counters{},
		progress: progress,
	}
}

// RoundTrip implements http.RoundTripper.
func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if isPing(req) {
		return t.ping(req)
	}
	if resp, ok, err := t.coalesce(req); ok {
		return resp, err
	}
	if rec, _ := req.Context().Value(recorderKey{}).(*recorder); rec != nil && rec.skipHead && isBlobHead(req) {
		return &http.Response{StatusCode: http.StatusNotFound, Status: "404 Not Found", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
			Header: http.Header{}, Body: http.NoBody, Request: req}, nil
	}
	return t.retry(req)
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
func (t *retryTransport) coalesce(req *http.Request) (*http.Response, bool, error) {
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
	resp, err := t.retry(put)
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

// isPing matches go-containerregistry's unauthenticated GET /v2/, which it
// sends every time it sets up a client for a repository.
func isPing(req *http.Request) bool {
	return req.Method == http.MethodGet && req.URL.Path == "/v2/" && req.Header.Get("Authorization") == ""
}

type pingEntry struct {
	mu     sync.Mutex
	done   bool
	status int
	header http.Header
	err    error
}

// ping answers the capability probe from a per-run cache. go-containerregistry
// pings once per repository it talks to; a mirror run touches thousands of
// repositories of the same registry, whose answer (200, or 401 with the
// same challenge) does not change within a run. Caching it is what makes an
// image already present cost exactly one request. Only answers and errors
// that retrying cannot change are cached (a plain-HTTP registry refusing the
// TLS handshake go-containerregistry tries first, for one).
func (t *retryTransport) ping(req *http.Request) (*http.Response, error) {
	key := req.URL.Scheme + "://" + req.URL.Host
	v, _ := t.pings.LoadOrStore(key, &pingEntry{})
	e := v.(*pingEntry)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.done {
		t.count.pings.Add(1)
		resp, err := t.retry(req)
		if err != nil {
			if !retryableErr(err) && req.Context().Err() == nil {
				e.done, e.err = true, err
			}
			return nil, err
		}
		if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
			return resp, nil
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
		e.done, e.status, e.header = true, resp.StatusCode, resp.Header.Clone()
	}
	if e.err != nil {
		return nil, e.err
	}
	return &http.Response{
		Status:     strconv.Itoa(e.status) + " " + http.StatusText(e.status),
		StatusCode: e.status,
		Proto:      "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:  e.header.Clone(),
		Body:    http.NoBody,
		Request: req,
	}, nil
}

// retry sends req, retrying what the policy allows.
func (t *retryTransport) retry(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 && req.Body != nil && req.Body != http.NoBody {
			body, err := req.GetBody()
			if err != nil {
				return nil, err
			}
			r = req.Clone(ctx)
			r.Body = body
		}
		resp, err := t.attempt(r)
		wait, again := t.shouldRetry(req, resp, err, attempt)
		if !again {
			if err != nil && attempt > 1 && retryableErr(err) {
				return nil, &exhaustedError{attempts: attempt, msg: redactText(err.Error())}
			}
			return resp, err
		}
		what := ""
		if err != nil {
			what = redactText(err.Error())
		} else {
			what = resp.Status
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		t.count.retries.Add(1)
		t.log.Debug("retrying registry request", "registry", t.host, "method", req.Method, "path", req.URL.Path, "attempt", attempt, "wait", wait, "reason", what)
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// shouldRetry decides whether to send req again and how long to wait first.
func (t *retryTransport) shouldRetry(req *http.Request, resp *http.Response, err error, attempt int) (time.Duration, bool) {
	if attempt >= t.policy.Attempts || req.Context().Err() != nil || !replayable(req) {
		return 0, false
	}
	if err != nil {
		return t.policy.backoff(attempt), retryableErr(err)
	}
	if !retryableStatus(resp.StatusCode) {
		return 0, false
	}
	wait := t.policy.backoff(attempt)
	if ra, ok := retryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		if ra > t.policy.MaxRetryAfter {
			return 0, false
		}
		wait = max(wait, ra)
	}
	return wait, true
}

// replayable: a request can be sent again if it has no body or can make a
// new one, and is not a PATCH, which appends to an upload session.
func replayable(req *http.Request) bool {
	if req.Method == http.MethodPatch || (req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/blobs/uploads/") && req.Body != nil && req.Body != http.NoBody) {
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func retryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// retryableErr is true for failures a new attempt can fix: dropped, reset
// or refused connections, timeouts and stalls. TLS, certificate and protocol
// errors are not.
func retryableErr(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var se *stallError
	if errors.As(err, &se) {
		return true
	}
	for _, e := range []error{io.EOF, io.ErrUnexpectedEOF, syscall.ECONNRESET, syscall.ECONNREFUSED, syscall.ECONNABORTED, syscall.EPIPE, net.ErrClosed} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	return strings.Contains(err.Error(), "connection reset by peer") || strings.Contains(err.Error(), "broken pipe")
}

// retryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(v string, now time.Time) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0, false
		}
		return time.Duration(s) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// attempt sends one try of req, aborting it when it stalls: the timer is
// armed when the request starts and re-armed by every body read, in either
// direction, so a slow but moving transfer is never cut.
func (t *retryTransport) attempt(req *http.Request) (*http.Response, error) {
	t.count.request(req.Method)
	ctx, cancel := context.WithCancelCause(req.Context())
	stall := t.policy.StallTimeout
	timer := time.AfterFunc(stall, func() { cancel(errStalled) })
	r := req.WithContext(ctx)
	rec, _ := req.Context().Value(recorderKey{}).(*recorder)
	if r.Body != nil && r.Body != http.NoBody {
		r.Body = &meteredBody{rc: r.Body, timer: timer, stall: stall, ctx: ctx, onRead: func(n int) {
			t.count.bytesSent.Add(int64(n))
			if rec != nil {
				rec.sent.Add(int64(n))
			}
			if t.progress != nil {
				t.progress(int64(n))
			}
		}}
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		timer.Stop()
		if errors.Is(context.Cause(ctx), errStalled) && req.Context().Err() == nil {
			err = &stallError{after: stall}
		}
		cancel(nil)
		return nil, err
	}
	timer.Reset(stall)
	if rec != nil {
		record(rec, req, resp.StatusCode)
	}
	resp.Body = &meteredBody{rc: resp.Body, timer: timer, stall: stall, ctx: ctx, cancel: cancel,
		onRead: func(n int) { t.count.bytesReceived.Add(int64(n)) }}
	return resp, nil
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

// meteredBody counts bytes, re-arms the stall timer on progress, and turns
// the stall's cancellation into a stallError.
type meteredBody struct {
	rc     io.ReadCloser
	timer  *time.Timer
	stall  time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc // response bodies: release the attempt
	onRead func(int)
	once   sync.Once
}

func (b *meteredBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.stall)
		b.onRead(n)
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.ctx), errStalled) {
		err = &stallError{after: b.stall}
	}
	return n, err
}

func (b *meteredBody) Close() error {
	err := b.rc.Close()
	if b.cancel != nil {
		b.once.Do(func() {
			b.timer.Stop()
			b.cancel(nil)
		})
	}
	return err
}
