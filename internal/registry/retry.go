package registry

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
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// RetryPolicy says how hard a registry call tries before it gives up. One
// policy serves every registry call Ferry makes: reading catalogs, resolving
// tags, fetching bundles and bases, checking and filling the mirror, pushing
// catalog images.
type RetryPolicy struct {
	// Attempts bounds the tries of one HTTP request, the first included.
	// Requests are retried on 408, 429, 5xx, connection resets, refused
	// connections, timeouts and stalls; never on other 4xx. A PATCH (a blob
	// chunk) is never replayed: the registry may have appended part of it.
	Attempts int
	// Initial is the first backoff; each retry doubles it up to Max, and
	// every wait is jittered (a random point in its upper half) so that
	// clients hit by the same outage do not come back in lockstep.
	Initial, Max time.Duration
	// MaxRetryAfter is the longest Retry-After honoured. A longer one
	// fails the request rather than stall the run.
	MaxRetryAfter time.Duration
	// StallTimeout aborts a request that makes no progress (no response
	// headers, no body bytes read or written) for this long; the abort is
	// retried like a timeout.
	StallTimeout time.Duration
	// TransferAttempts bounds the tries of one transfer as a whole (a blob
	// read to its end, a manifest and its config): a stream that breaks
	// after its response started (a reset mid-body, a stall) cannot be
	// retried by the request layer, so the transfer starts over and reads
	// the content again.
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

// WithDefaults fills every unset field from DefaultRetryPolicy.
func (p RetryPolicy) WithDefaults() RetryPolicy {
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

// Backoff is the jittered wait before retry number n (1-based).
func (p RetryPolicy) Backoff(n int) time.Duration {
	d := p.Initial
	for i := 1; i < n && d < p.Max; i++ {
		d *= 2
	}
	d = min(d, p.Max)
	half := d / 2
	return half + rand.N(half+1)
}

// Transfer runs fn, and runs it again after a backoff while it fails in a
// way retryable says a new attempt can fix, up to TransferAttempts tries.
// fn must start its transfer from the beginning each time. A nil retryable
// is TransferRetryable.
func (p RetryPolicy) Transfer(ctx context.Context, log *slog.Logger, retryable func(error) bool, fn func(context.Context) error) error {
	if retryable == nil {
		retryable = TransferRetryable
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	for attempt := 1; ; attempt++ {
		err := fn(ctx)
		if err == nil || attempt >= p.TransferAttempts || ctx.Err() != nil || !retryable(err) {
			return err
		}
		wait := p.Backoff(attempt)
		log.Debug("retrying transfer", "attempt", attempt, "wait", wait, "reason", Redact(err.Error()))
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// StallError reports a request aborted by the stall timeout. It is a
// net.Error timeout so every layer treats it as one.
type StallError struct{ After time.Duration }

func (e *StallError) Error() string {
	return fmt.Sprintf("stalled: no progress for %s", e.After)
}

// Timeout implements net.Error.
func (e *StallError) Timeout() bool { return true }

// Temporary implements the old net.Error method some callers still ask.
func (e *StallError) Temporary() bool { return true }

// ExhaustedError is a request error after the transport spent its retries.
// It deliberately has no Unwrap and no Temporary: a retry layer above
// (go-containerregistry's, or a transfer retry) must not start the whole
// sequence again.
type ExhaustedError struct {
	Attempts int
	Msg      string
}

func (e *ExhaustedError) Error() string {
	return fmt.Sprintf("%s (after %d attempts)", e.Msg, e.Attempts)
}

// TooLargeError reports content larger than Ferry accepts: a manifest over
// the manifest limit, or a blob whose declared size exceeds a limit. It is
// never retried.
type TooLargeError struct {
	What  string // "manifest https://host/v2/repo/manifests/tag", "config of ..."
	Size  int64  // the size seen or declared, -1 when it is only known to exceed Limit
	Limit int64
}

func (e *TooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("%s: larger than the %d-byte limit", e.What, e.Limit)
	}
	return fmt.Sprintf("%s: %d bytes exceeds the %d-byte limit", e.What, e.Size, e.Limit)
}

// DigestError reports content whose digest is not the one asked for: a
// registry serving other bytes than the manifest pins.
type DigestError struct {
	What      string // "layer 2 (sha256:...) of host/repo@sha256:..."
	Want, Got string
	Size      int64 // bytes read
}

func (e *DigestError) Error() string {
	return fmt.Sprintf("%s: content does not match its digest: want %s, got %s after %d bytes", e.What, e.Want, e.Got, e.Size)
}

// RetryableStatus reports whether a response status is worth another try.
func RetryableStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests,
		http.StatusInternalServerError, http.StatusBadGateway,
		http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// Retryable is true for failures a new request can fix: dropped, reset or
// refused connections, timeouts and stalls. TLS, certificate and protocol
// errors are not.
func Retryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) {
		return false
	}
	var se *StallError
	if errors.As(err, &se) {
		return true
	}
	var ee *ExhaustedError
	var tl *TooLargeError
	if errors.As(err, &ee) || errors.As(err, &tl) {
		return false
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

// TransferRetryable is the default judgement of Transfer: read the content
// again when its stream broke (a reset or stall mid-body, a body cut
// short), which a new attempt can fix. Content that arrived whole with the
// wrong digest is not read again: a registry that lies once lies again, and
// another attempt would only cost the declared size once more. Nor is
// anything retried after the request layer gave up, on cancellation, on
// content over a limit, or on a registry's answer (404, 401, a status the
// transport already retried) except a retryable status to a request the
// transport could not replay (a blob chunk's PATCH).
func TransferRetryable(err error) bool {
	if err == nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	var ee *ExhaustedError
	var tl *TooLargeError
	var de *DigestError
	if errors.As(err, &ee) || errors.As(err, &tl) || errors.As(err, &de) {
		return false
	}
	var te *transport.Error
	if errors.As(err, &te) {
		return RetryableStatus(te.StatusCode) && te.Request != nil && !Replayable(te.Request)
	}
	return Retryable(err)
}

// Replayable reports whether a request can be sent again: it has no body
// or can make a new one, and is not a PATCH, which appends to an upload in
// progress, nor a blob upload's PUT carrying data.
func Replayable(req *http.Request) bool {
	if req.Method == http.MethodPatch || (req.Method == http.MethodPut && strings.Contains(req.URL.Path, "/blobs/uploads/") && req.Body != nil && req.Body != http.NoBody) {
		return false
	}
	return req.Body == nil || req.Body == http.NoBody || req.GetBody != nil
}

// RetryAfter parses a Retry-After header: delay-seconds or an HTTP date.
func RetryAfter(v string, now time.Time) (time.Duration, bool) {
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
