package registry

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// DefaultMaxManifestBytes is the largest manifest Ferry reads: the size
// the distribution specification asks registries to accept at least, far
// above any real image or index manifest. A registry answering a manifest
// request with more is refused before the body is held in memory.
const DefaultMaxManifestBytes = 4 << 20

// TransportOptions configure NewTransport.
type TransportOptions struct {
	// Host names the registry in logs.
	Host string
	// Insecure turns TLS verification off; only for registries the user
	// declared insecure.
	Insecure bool
	// Conns is how many idle connections are kept for the host (0: the
	// net/http default).
	Conns int
	// Policy says how requests are retried; unset fields take defaults.
	Policy RetryPolicy
	// MaxManifestBytes bounds a manifest response body (0: the default).
	MaxManifestBytes int64
	// Log receives retries; nil is silent.
	Log *slog.Logger
	// Hooks observe each attempt, for accounting.
	Hooks Hooks
}

// Hooks let a caller account for what the transport does; every field may
// be nil. They are called from many goroutines at once.
type Hooks struct {
	// Attempt is called before every attempt of a request is sent.
	Attempt func(req *http.Request)
	// Retry is called when a request is about to be sent again.
	Retry func(req *http.Request)
	// Response is called with the status of every attempt answered.
	Response func(req *http.Request, status int)
	// Sent and Received count body bytes as they move.
	Sent, Received func(req *http.Request, n int)
}

// Transport is the HTTP layer under go-containerregistry for one registry:
// retries with jittered exponential backoff honouring Retry-After, a stall
// cut-off, a bound on manifest bodies, and a per-run cache of the /v2/
// capability probe. Client.Remote hands it out for every registry call,
// and the copy engine builds its own on it.
type Transport struct {
	base             http.RoundTripper
	policy           RetryPolicy
	host             string
	maxManifestBytes int64
	log              *slog.Logger
	hooks            Hooks

	pings sync.Map // scheme://host -> *pingEntry
}

var _ http.RoundTripper = (*Transport)(nil)

// NewTransport builds the transport for one registry.
func NewTransport(o TransportOptions) *Transport {
	base := http.DefaultTransport.(*http.Transport).Clone()
	// Blobs must arrive byte for byte: never let net/http decompress a
	// Content-Encoding: gzip response behind the digest check's back.
	base.DisableCompression = true
	if o.Conns > 0 {
		base.MaxIdleConnsPerHost = o.Conns
		base.MaxIdleConns = 0
	}
	if o.Insecure {
		base.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user declared this registry insecure
	}
	return newTransport(base, o)
}

func newTransport(base http.RoundTripper, o TransportOptions) *Transport {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.MaxManifestBytes <= 0 {
		o.MaxManifestBytes = DefaultMaxManifestBytes
	}
	return &Transport{
		base:             base,
		policy:           o.Policy.WithDefaults(),
		host:             o.Host,
		maxManifestBytes: o.MaxManifestBytes,
		log:              o.Log,
		hooks:            o.Hooks,
	}
}

// Policy is the retry policy the transport follows.
func (t *Transport) Policy() RetryPolicy { return t.policy }

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if isPing(req) {
		return t.ping(req)
	}
	return t.retry(req)
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
// pings once per repository it talks to; a run touches thousands of
// repositories of the same registry, whose answer (200, or 401 with the
// same challenge) does not change within a run. Caching it is what makes an
// image already present cost exactly one request. Only answers and errors
// that retrying cannot change are cached (a plain-HTTP registry refusing the
// TLS handshake go-containerregistry tries first, for one).
func (t *Transport) ping(req *http.Request) (*http.Response, error) {
	key := req.URL.Scheme + "://" + req.URL.Host
	v, _ := t.pings.LoadOrStore(key, &pingEntry{})
	e := v.(*pingEntry)
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.done {
		resp, err := t.retry(req)
		if err != nil {
			if !Retryable(err) && req.Context().Err() == nil {
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
func (t *Transport) retry(req *http.Request) (*http.Response, error) {
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
			if err != nil && attempt > 1 && Retryable(err) {
				return nil, &ExhaustedError{Attempts: attempt, Msg: Redact(err.Error())}
			}
			return resp, err
		}
		what := ""
		if err != nil {
			what = Redact(err.Error())
		} else {
			what = resp.Status
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		if t.hooks.Retry != nil {
			t.hooks.Retry(req)
		}
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
func (t *Transport) shouldRetry(req *http.Request, resp *http.Response, err error, attempt int) (time.Duration, bool) {
	if attempt >= t.policy.Attempts || req.Context().Err() != nil || !Replayable(req) {
		return 0, false
	}
	if err != nil {
		return t.policy.Backoff(attempt), Retryable(err)
	}
	if !RetryableStatus(resp.StatusCode) {
		return 0, false
	}
	wait := t.policy.Backoff(attempt)
	if ra, ok := RetryAfter(resp.Header.Get("Retry-After"), time.Now()); ok {
		if ra > t.policy.MaxRetryAfter {
			return 0, false
		}
		wait = max(wait, ra)
	}
	return wait, true
}

// errStalled is the cause of a request aborted by the stall timeout.
var errStalled = errors.New("no progress within the stall timeout")

// attempt sends one try of req, aborting it when it stalls: the timer is
// armed when the request starts and re-armed by every body read, in either
// direction, so a slow but moving transfer is never cut.
func (t *Transport) attempt(req *http.Request) (*http.Response, error) {
	if t.hooks.Attempt != nil {
		t.hooks.Attempt(req)
	}
	ctx, cancel := context.WithCancelCause(req.Context())
	stall := t.policy.StallTimeout
	timer := time.AfterFunc(stall, func() { cancel(errStalled) })
	r := req.WithContext(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		sent := t.hooks.Sent
		r.Body = &meteredBody{rc: r.Body, timer: timer, stall: stall, ctx: ctx, onRead: func(n int) {
			if sent != nil {
				sent(req, n)
			}
		}}
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		timer.Stop()
		if errors.Is(context.Cause(ctx), errStalled) && req.Context().Err() == nil {
			err = &StallError{After: stall}
		}
		cancel(nil)
		return nil, err
	}
	timer.Reset(stall)
	if t.hooks.Response != nil {
		t.hooks.Response(req, resp.StatusCode)
	}
	received := t.hooks.Received
	body := &meteredBody{rc: resp.Body, timer: timer, stall: stall, ctx: ctx, cancel: cancel,
		onRead: func(n int) {
			if received != nil {
				received(req, n)
			}
		}}
	resp.Body = body
	if req.Method == http.MethodGet && resp.StatusCode == http.StatusOK && isManifest(req) {
		what := "manifest " + Redact(req.URL.String())
		if resp.ContentLength > t.maxManifestBytes {
			body.Close()
			return nil, &TooLargeError{What: what, Size: resp.ContentLength, Limit: t.maxManifestBytes}
		}
		body.limit, body.what = t.maxManifestBytes, what
	}
	return resp, nil
}

// isManifest reports whether req reads a manifest (by tag or digest).
func isManifest(req *http.Request) bool {
	_, rest, ok := strings.Cut(req.URL.Path, "/manifests/")
	return ok && rest != "" && !strings.Contains(rest, "/")
}

// meteredBody counts bytes, re-arms the stall timer on progress, turns the
// stall's cancellation into a StallError, and, when limit is set, refuses
// a body longer than limit.
type meteredBody struct {
	rc     io.ReadCloser
	timer  *time.Timer
	stall  time.Duration
	ctx    context.Context
	cancel context.CancelCauseFunc // response bodies: release the attempt
	onRead func(int)
	once   sync.Once

	limit int64 // 0: none
	what  string
	read  int64
}

func (b *meteredBody) Read(p []byte) (int, error) {
	if b.limit > 0 && int64(len(p)) > b.limit-b.read+1 {
		p = p[:b.limit-b.read+1]
	}
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.stall)
		b.onRead(n)
		b.read += int64(n)
		if b.limit > 0 && b.read > b.limit {
			return 0, &TooLargeError{What: b.what, Size: -1, Limit: b.limit}
		}
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.ctx), errStalled) {
		err = &StallError{After: b.stall}
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
