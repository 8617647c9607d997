package cluster

import (
	"context"
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
	"syscall"
	"time"
)

// RetryPolicy says how hard a request is tried before its error is
// returned. It is the cluster's counterpart of the registry copy engine's
// policy: jittered exponential backoff, Retry-After honoured.
type RetryPolicy struct {
	// Attempts bounds the tries of one request, the first included.
	Attempts int
	// Initial is the first backoff; each retry doubles it up to Max. Every
	// wait is a random point in the upper half of its value, so clients
	// hit by the same outage do not come back in lockstep.
	Initial, Max time.Duration
	// MaxRetryAfter is the longest Retry-After honoured; a server asking
	// for longer gets its error returned instead of stalling the run.
	MaxRetryAfter time.Duration
	// Timeout aborts an attempt that gets no response headers, or no body
	// bytes, for this long; the abort is retried like any timeout.
	Timeout time.Duration
}

// DefaultRetryPolicy gives a request about 15 s of retries (0.25+0.5+1+2+4+8
// s, jittered, plus what Retry-After asks): enough to ride out an API server
// restart or a burst of priority-and-fairness 429s, short enough that a dead
// cluster is reported while the operator still watches.
func DefaultRetryPolicy() RetryPolicy {
	return RetryPolicy{
		Attempts:      7,
		Initial:       250 * time.Millisecond,
		Max:           8 * time.Second,
		MaxRetryAfter: time.Minute,
		Timeout:       30 * time.Second,
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
	if p.Timeout <= 0 {
		p.Timeout = d.Timeout
	}
	return p
}

// backoff is the jittered wait before retry n (1-based).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.Initial
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	half := d / 2
	return half + rand.N(half+1)
}

// Stats counts the HTTP requests a Client sent, every attempt included, as
// the API server received them: what "one LIST per kind" and "a no-op
// writes nothing" are measured in.
type Stats struct {
	// Requests counts attempts by HTTP method (GET, PATCH, DELETE, ...).
	Requests map[string]int
	// Writes counts attempts that could change the cluster: PATCH, PUT,
	// POST and DELETE that are not dry-runs.
	Writes int
	// DryRuns counts dry-run attempts (server-side dry-run applies).
	DryRuns int
	// Retries counts attempts after the first, at either layer (a request
	// retried by the transport, an apply sent again after a 409).
	Retries int
}

// Total is the number of attempts of any method.
func (s Stats) Total() int {
	n := 0
	for _, v := range s.Requests {
		n += v
	}
	return n
}

type counters struct {
	mu sync.Mutex
	s  Stats
}

func (c *counters) request(req *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.s.Requests == nil {
		c.s.Requests = map[string]int{}
	}
	c.s.Requests[req.Method]++
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
	default:
		if req.URL.Query().Get("dryRun") != "" {
			c.s.DryRuns++
		} else {
			c.s.Writes++
		}
	}
}

func (c *counters) retry() {
	c.mu.Lock()
	c.s.Retries++
	c.mu.Unlock()
}

func (c *counters) snapshot() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := c.s
	s.Requests = map[string]int{}
	for k, v := range c.s.Requests {
		s.Requests[k] = v
	}
	return s
}

// retryTransport sits under client-go's authentication layer and owns
// every retry decision. client-go would retry a 429 or 5xx carrying
// Retry-After, and a GET whose connection dropped, on its own and out of
// sight; the transport strips Retry-After from the answers it gives up on
// and hides the cause of connection errors it gave up on, so client-go's
// layer never starts a second sequence and Stats sees every attempt.
type retryTransport struct {
	next   http.RoundTripper
	policy RetryPolicy
	count  *counters
	log    *slog.Logger
	redact *redactor
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
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
		t.count.request(r)
		resp, err := t.attempt(r)
		wait, again := t.shouldRetry(req, resp, err, attempt)
		if !again {
			if err != nil {
				if ctx.Err() == nil && retryableErr(err) {
					return nil, &gaveUpError{attempts: attempt, msg: neutral.Replace(err.Error())}
				}
				return nil, err
			}
			if retryableStatus(resp.StatusCode) {
				resp.Header.Del("Retry-After")
			}
			return resp, nil
		}
		reason := ""
		if err != nil {
			reason = t.redact.text(err.Error())
		} else {
			reason = resp.Status
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
		}
		t.count.retry()
		if t.log != nil {
			t.log.Debug("retrying cluster request", "method", req.Method, "path", req.URL.Path, "attempt", attempt, "wait", wait, "reason", reason)
		}
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case <-timer.C:
		}
	}
}

// shouldRetry decides whether to send req again and after how long.
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

// replayable: reads, deletes and server-side applies give the same result
// when sent twice (an apply states the whole intent; a delete of a gone
// object is a 404 the caller accepts). Other writes are not retried here.
func replayable(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodDelete:
	case http.MethodPatch:
		if !strings.HasPrefix(req.Header.Get("Content-Type"), "application/apply-patch") {
			return false
		}
	default:
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

func retryableStatus(code int) bool {
	return code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500
}

// retryableErr is true for failures another attempt can fix: dropped,
// reset or refused connections and timeouts. TLS and certificate errors
// are not.
func retryableErr(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var te *timeoutError
	if errors.As(err, &te) {
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
	msg := err.Error()
	return strings.Contains(msg, "connection reset by peer") || strings.Contains(msg, "broken pipe") ||
		strings.Contains(msg, "http2: client connection lost") || strings.Contains(msg, "GOAWAY")
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

// gaveUpError is a connection error after the transport spent its
// attempts. It has no Unwrap and its message is reworded (neutral), so
// client-go, which recognises a reset by its errno and by phrases, does not
// start retrying a GET all over again.
type gaveUpError struct {
	attempts int
	msg      string
}

func (e *gaveUpError) Error() string {
	return fmt.Sprintf("%s (after %d attempts)", e.msg, e.attempts)
}

// neutral rewords the phrases by which apimachinery's util/net tells a
// connection error client-go retries on its own.
var neutral = strings.NewReplacer(
	"connection reset by peer", "connection reset",
	"use of closed network connection", "closed network connection",
	"http2: server sent GOAWAY and closed the connection", "http2 server went away",
	"http2: client connection lost", "http2 connection lost",
	"http: can't write HTTP request on broken connection", "broken connection",
)

// timeoutError is an attempt aborted by RetryPolicy.Timeout.
type timeoutError struct{ after time.Duration }

func (e *timeoutError) Error() string {
	return fmt.Sprintf("no response within %s", e.after)
}
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

var errAttemptTimeout = errors.New("attempt timed out")

// attempt sends one try of req, aborting it when the server goes silent:
// the timer runs until the response headers arrive and is re-armed by every
// body read, so a large LIST that keeps arriving is never cut.
func (t *retryTransport) attempt(req *http.Request) (*http.Response, error) {
	ctx, cancel := context.WithCancelCause(req.Context())
	timer := time.AfterFunc(t.policy.Timeout, func() { cancel(errAttemptTimeout) })
	resp, err := t.next.RoundTrip(req.WithContext(ctx))
	if err != nil {
		timer.Stop()
		if errors.Is(context.Cause(ctx), errAttemptTimeout) {
			err = &timeoutError{after: t.policy.Timeout}
		}
		cancel(nil)
		return nil, err
	}
	timer.Reset(t.policy.Timeout)
	resp.Body = &watchedBody{rc: resp.Body, timer: timer, timeout: t.policy.Timeout, ctx: ctx, cancel: cancel}
	return resp, nil
}

type watchedBody struct {
	rc      io.ReadCloser
	timer   *time.Timer
	timeout time.Duration
	ctx     context.Context
	cancel  context.CancelCauseFunc
}

func (b *watchedBody) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.timer.Reset(b.timeout)
	}
	if err != nil && err != io.EOF && errors.Is(context.Cause(b.ctx), errAttemptTimeout) {
		err = &timeoutError{after: b.timeout}
	}
	return n, err
}

func (b *watchedBody) Close() error {
	b.timer.Stop()
	err := b.rc.Close()
	b.cancel(nil)
	return err
}
