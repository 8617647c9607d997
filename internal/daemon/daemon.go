package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-gitops/ferry/internal/registry"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Trigger is why a reconcile was asked for.
type Trigger string

const (
	// TriggerStart: the daemon (or this replica's leadership) started.
	TriggerStart Trigger = "start"
	// TriggerPoll: the poll interval passed.
	TriggerPoll Trigger = "poll"
	// TriggerWebhook: an authenticated webhook arrived.
	TriggerWebhook Trigger = "webhook"
	// TriggerWatch: a watched file changed.
	TriggerWatch Trigger = "watch"
	// TriggerCatalog: the catalog interval passed; upstream catalogs and
	// the mirror are checked even though the source did not change.
	TriggerCatalog Trigger = "catalog"
	// TriggerRetry: the backoff after a failure ran out.
	TriggerRetry Trigger = "retry"
)

// full reports whether the trigger reconciles even when the source's tip
// is unchanged: upstream catalogs move and mirrors drift without any git
// change, and a failed reconcile is retried as it was.
func (t Trigger) full() bool {
	return t == TriggerStart || t == TriggerCatalog || t == TriggerRetry
}

// Options configure a Daemon.
type Options struct {
	// Interval is how often the source's tip is looked up; 0 never (a
	// webhook or a watch must then say when). Jitter stretches each wait
	// by a random fraction below it.
	Interval time.Duration
	Jitter   float64
	// CatalogInterval is how often a full reconcile runs with no source
	// change, to pick up moved catalog tags and repair mirror drift; 0
	// never.
	CatalogInterval time.Duration
	// Backoff spaces retries after failures.
	Backoff Backoff
	// PublishRetries bounds how many times a rejected push is re-planned
	// on the new tip and pushed again.
	PublishRetries int
	// Elector, when set, runs the loop only while this replica holds the
	// leader lease.
	Elector Elector
	// Sinks receive the status after every change.
	Sinks []StatusSink
	// Metrics are updated as the daemon works; nil makes a private set.
	Metrics *Metrics
	// Log receives one line per reconcile and per state change.
	Log *slog.Logger
	// SourceName describes the source in the status (no credentials).
	SourceName string
	// Identity names this replica (pod name) in the status.
	Identity string
	// OnCycle, when set, is called after every cycle of the loop (an
	// idle poll included) with what it did; tests and the demo watch it.
	OnCycle func(Cycle)
}

// Cycle is one pass of the loop.
type Cycle struct {
	Triggers []Trigger
	// Revision is the tip looked up, "" if the lookup failed.
	Revision string
	// Reconciled is set when a reconcile ran; Err is its error.
	Reconciled bool
	Result     *Result
	Err        error
}

// Elector is leader election: two replicas never reconcile at once.
type Elector interface {
	// Campaign blocks until ctx ends or leadership is lost (an error). It
	// calls lead, at most once, when this replica becomes the leader,
	// with a context that ends when it stops leading, and returns only
	// after lead has returned.
	Campaign(ctx context.Context, lead func(ctx context.Context)) error
}

// Daemon is the reconcile loop.
type Daemon struct {
	source Source
	runner Runner
	opts   Options
	log    *slog.Logger
	m      *Metrics

	wake    chan struct{}
	mu      sync.Mutex
	pending map[Trigger]bool
	status  Status

	succeeded atomic.Bool // a reconcile succeeded once
	standby   atomic.Bool // not the leader
	leading   atomic.Bool // status may be recorded

	// Loop state, touched by the loop goroutine only.
	lastAttempted string // tip of the last attempt (after our own push: our commit)
	stalledRev    string
	failures      int
	retry         *time.Timer
}

// New returns a daemon reconciling what source holds with runner.
func New(source Source, runner Runner, opts Options) *Daemon {
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics()
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Backoff.Initial <= 0 {
		opts.Backoff = DefaultBackoff()
	}
	d := &Daemon{
		source: source, runner: runner, opts: opts, log: opts.Log, m: opts.Metrics,
		wake:    make(chan struct{}, 1),
		pending: map[Trigger]bool{},
	}
	d.status = Status{Source: opts.SourceName, Identity: opts.Identity}
	now := time.Now()
	d.status.set(ConditionReady, metav1.ConditionUnknown, ReasonStarting, "no reconcile has run yet", now)
	d.status.set(ConditionReconciling, metav1.ConditionFalse, ReasonStarting, "", now)
	d.status.set(ConditionStalled, metav1.ConditionFalse, ReasonStarting, "", now)
	return d
}

// Metrics returns the daemon's metrics.
func (d *Daemon) Metrics() *Metrics { return d.m }

// Request asks for a reconcile check. Requests coalesce: any number made
// while a reconcile runs (a burst of webhooks) lead to one more cycle
// after it. It never blocks.
func (d *Daemon) Request(t Trigger) {
	d.m.triggers.WithLabelValues(string(t)).Inc()
	d.mu.Lock()
	d.pending[t] = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

func (d *Daemon) take() []Trigger {
	d.mu.Lock()
	defer d.mu.Unlock()
	var ts []Trigger
	for t := range d.pending {
		ts = append(ts, t)
	}
	clear(d.pending)
	slices.Sort(ts)
	return ts
}

// Ready is /readyz: true once a reconcile has succeeded, and while
// standing by as a non-leader (a standby is ready to take over).
func (d *Daemon) Ready() bool { return d.standby.Load() || d.succeeded.Load() }

// Status returns a copy of the current status.
func (d *Daemon) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.status
	st.Conditions = slices.Clone(st.Conditions)
	st.Catalogs = slices.Clone(st.Catalogs)
	return st
}

// Run runs the loop until ctx ends: directly, or, with an Elector, only
// while this replica leads. It returns nil on cancellation and an error
// when leadership was lost (the process should exit and start afresh, as
// controllers do).
func (d *Daemon) Run(ctx context.Context) error {
	if d.opts.Elector == nil {
		d.leading.Store(true)
		d.m.leader.Set(1)
		d.update(ctx, func(st *Status) { st.Role = "single" })
		return d.loop(ctx)
	}
	d.standby.Store(true)
	d.m.leader.Set(0)
	d.log.Info("standing by for the leader lease")
	var loopErr error
	err := d.opts.Elector.Campaign(ctx, func(lctx context.Context) {
		d.standby.Store(false)
		d.leading.Store(true)
		d.m.leader.Set(1)
		d.log.Info("leading: reconciling")
		d.update(lctx, func(st *Status) { st.Role = "leader" })
		loopErr = d.loop(lctx)
		d.leading.Store(false)
		d.m.leader.Set(0)
	})
	if ctx.Err() != nil {
		return nil
	}
	if err == nil {
		err = loopErr
	}
	if err == nil {
		err = errors.New("leader election ended")
	}
	return err
}

// loop is the reconcile loop of a leader (or a single daemon).
func (d *Daemon) loop(ctx context.Context) error {
	if w, ok := d.source.(Watcher); ok {
		go func() {
			if err := w.Watch(ctx, func() { d.Request(TriggerWatch) }); err != nil && ctx.Err() == nil {
				d.log.Warn("watching the source failed; polling only", "err", err)
			}
		}()
	}
	poll := newTimer(jittered(d.opts.Interval, d.opts.Jitter))
	catalog := newTimer(d.opts.CatalogInterval)
	defer poll.stop()
	defer catalog.stop()
	defer d.stopRetry()
	d.Request(TriggerStart)
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-poll.c():
			poll.reset(jittered(d.opts.Interval, d.opts.Jitter))
			d.Request(TriggerPoll)
		case <-catalog.c():
			catalog.reset(d.opts.CatalogInterval)
			d.Request(TriggerCatalog)
		case <-d.retryC():
			d.retry = nil
			d.Request(TriggerRetry)
		}
		ts := d.take()
		if len(ts) == 0 {
			continue
		}
		c := d.cycle(ctx, ts)
		if d.opts.OnCycle != nil && ctx.Err() == nil {
			d.opts.OnCycle(c)
		}
	}
}

// cycle looks up the tip and reconciles when there is something to do.
func (d *Daemon) cycle(ctx context.Context, ts []Trigger) Cycle {
	c := Cycle{Triggers: ts}
	full := slices.ContainsFunc(ts, Trigger.full)
	rev, err := d.source.Tip(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return c
		}
		d.m.sourceChecks.WithLabelValues(ResultFailure).Inc()
		c.Err = fmt.Errorf("look up the source's revision: %w", err)
		d.failed(ctx, "", c.Err, ReasonSourceUnavailable)
		return c
	}
	d.m.sourceChecks.WithLabelValues(ResultSuccess).Inc()
	c.Revision = rev
	switch {
	case rev == d.stalledRev && !slices.Contains(ts, TriggerStart):
		// Invalid desired state stays invalid until it changes.
		return c
	case !full && rev == d.lastAttempted:
		return c // idle: one tip lookup
	case !full && d.failures == 0 && d.lastAttempted != "":
		if f, ok := d.source.(SpecFilter); ok {
			changed, err := f.SpecChanged(ctx, d.lastAttempted, rev)
			if err == nil && !changed {
				d.log.Info("new revision changes only the render directory; nothing to do", "revision", rev)
				d.lastAttempted = rev
				return c
			}
		}
	}
	c.Reconciled = true
	c.Result, c.Err = d.reconcile(ctx, rev, ts)
	return c
}

// reconcile runs one reconcile of rev and records its outcome.
func (d *Daemon) reconcile(ctx context.Context, rev string, ts []Trigger) (*Result, error) {
	start := time.Now()
	why := joinTriggers(ts)
	d.log.Info("reconciling", "revision", rev, "trigger", why)
	d.update(ctx, func(st *Status) {
		st.LastAttemptedRevision = rev
		st.set(ConditionReconciling, metav1.ConditionTrue, ReasonProgressing, fmt.Sprintf("reconciling revision %s (%s)", rev, why), start)
	})
	d.lastAttempted = rev
	res, tip, err := d.attempt(ctx, rev)
	elapsed := time.Since(start)
	if err != nil && ctx.Err() != nil {
		// Shutting down or losing the lease: not a failure of the desired
		// state. The copy engine's work so far is kept; the next run
		// resumes.
		d.log.Info("reconcile interrupted", "revision", rev, "after", elapsed.Round(time.Millisecond))
		d.lastAttempted = ""
		d.update(context.WithoutCancel(ctx), func(st *Status) {
			st.set(ConditionReconciling, metav1.ConditionFalse, "Interrupted", "interrupted by shutdown; the next start resumes", time.Now())
		})
		return res, err
	}
	d.m.duration.Observe(elapsed.Seconds())
	if res != nil {
		d.m.imagesCopied.Add(float64(res.ImagesCopied))
		d.m.bytesCopied.Add(float64(res.BytesCopied))
		d.m.catalogsPushed.Add(float64(res.CatalogsPushed))
		if res.Catalogs != nil {
			d.m.setCatalogs(res.Catalogs)
		}
		if res.Summary == "" {
			res.Summary = res.summary()
		}
	}
	now := time.Now()
	if err == nil {
		d.succeed(ctx, rev, tip, res, elapsed, now)
		return res, nil
	}
	if s, ok := stalled(err); ok {
		// The revision that is invalid is the one checked out: after a
		// rejected push, the other writer's tip.
		d.stall(ctx, tip, s, res, elapsed, now)
		return res, err
	}
	d.failed(ctx, rev, err, ReasonFailed, func(st *Status) {
		st.LastDuration = elapsed.Round(time.Millisecond).String()
		if res != nil {
			st.LastResult = res.Summary
			st.Catalogs = res.Catalogs
		}
	})
	return res, err
}

// attempt checks rev out, reconciles it and publishes the result; a push
// the remote rejects (someone pushed meanwhile) is re-planned on the new
// tip and pushed again, a bounded number of times. It returns the tip the
// remote has afterwards (the daemon's own commit when it pushed one). A
// reconcile that failed in part (a catalog held back) is published too, as
// `ferry reconcile --repo` publishes it, and its error returned after.
func (d *Daemon) attempt(ctx context.Context, rev string) (*Result, string, error) {
	pub, publishes := d.source.(Publisher)
	for try := 0; ; try++ {
		co, err := d.source.Checkout(ctx, rev)
		if publishes {
			d.m.gitFetches.WithLabelValues(result(err)).Inc()
		}
		if err != nil {
			return nil, rev, fmt.Errorf("check out %s: %w", rev, err)
		}
		if co.Revision == "" {
			co.Revision = rev
		}
		res, runErr := d.runner.Run(ctx, co)
		if res != nil {
			res.Revision = co.Revision
		}
		if !publishes || runErr != nil && !partial(ctx, res, runErr) {
			return res, co.Revision, runErr
		}
		p, err := pub.Publish(ctx, co)
		switch {
		case err == nil:
			if p.Pushed {
				d.m.gitPushes.WithLabelValues(ResultSuccess).Inc()
				if res != nil && res.Commit == "" {
					res.Commit = p.Commit
				}
			} else {
				d.m.gitPushes.WithLabelValues(ResultNoop).Inc()
			}
			tip := p.Revision
			if tip == "" {
				tip = co.Revision
			}
			return res, tip, runErr
		case errors.Is(err, ErrPublishRejected):
			d.m.gitPushes.WithLabelValues(ResultRejected).Inc()
			if try >= d.opts.PublishRetries {
				return res, co.Revision, errors.Join(runErr, fmt.Errorf("publish: gave up after %d attempt(s): %w", try+1, err))
			}
			wait := d.opts.Backoff.Delay(try + 1)
			d.log.Info("push rejected: the remote moved; re-planning on its new tip", "attempt", try+1, "wait", wait)
			if err := sleep(ctx, wait); err != nil {
				return res, co.Revision, err
			}
			if rev, err = d.source.Tip(ctx); err != nil {
				return res, co.Revision, fmt.Errorf("look up the source's revision: %w", err)
			}
		default:
			d.m.gitPushes.WithLabelValues(ResultFailure).Inc()
			return res, co.Revision, errors.Join(runErr, fmt.Errorf("publish: %w", err))
		}
	}
}

// partial reports whether a failed run still rendered what it achieved
// (an image that could not be copied held its catalog back): that render
// is published. Invalid desired state and an interrupted run are not.
func partial(ctx context.Context, res *Result, err error) bool {
	if _, ok := stalled(err); ok || ctx.Err() != nil || res == nil {
		return false
	}
	return true
}

func (d *Daemon) succeed(ctx context.Context, rev, tip string, res *Result, elapsed time.Duration, now time.Time) {
	previous := d.Status()
	recovered := d.failures > 0 || d.stalledRev != ""
	d.failures = 0
	d.stalledRev = ""
	d.stopRetry()
	d.lastAttempted = tip
	d.succeeded.Store(true)
	d.m.reconciles.WithLabelValues(ResultSuccess).Inc()
	d.m.lastSuccess.Set(float64(now.Unix()))
	summary := ""
	if res != nil {
		summary = res.Summary
	}
	msg := fmt.Sprintf("applied revision %s: %s", rev, summary)
	d.log.Info("reconciled", "revision", rev, "duration", elapsed.Round(time.Millisecond), "result", summary)
	d.update(ctx, func(st *Status) {
		st.set(ConditionReady, metav1.ConditionTrue, ReasonSucceeded, msg, now)
		st.set(ConditionReconciling, metav1.ConditionFalse, ReasonSucceeded, "", now)
		st.set(ConditionStalled, metav1.ConditionFalse, ReasonSucceeded, "", now)
		st.LastAppliedRevision = rev
		st.LastReconcileTime = ptrTime(now)
		st.LastSuccessTime = ptrTime(now)
		st.LastDuration = elapsed.Round(time.Millisecond).String()
		st.LastResult = summary
		st.LastError = ""
		st.Failures = 0
		st.NextRetry = nil
		if res != nil {
			st.Catalogs = res.Catalogs
		}
	})
	changed := res != nil && (res.Written || res.Commit != "" || res.ImagesCopied > 0 || res.CatalogsPushed > 0)
	if recovered || changed || previous.LastAppliedRevision != rev {
		reason := "ReconcileSucceeded"
		if recovered {
			reason = "Recovered"
		}
		d.event(ctx, Event{Reason: reason, Message: msg})
	}
}

func (d *Daemon) stall(ctx context.Context, rev string, s *StalledError, res *Result, elapsed time.Duration, now time.Time) {
	d.stalledRev = rev
	d.stopRetry()
	d.m.reconciles.WithLabelValues(ResultStalled).Inc()
	msg := registry.Redact(s.Error())
	d.log.Error("desired state is invalid; waiting for it to change", "revision", rev, "reason", s.Reason, "err", msg)
	d.update(ctx, func(st *Status) {
		st.set(ConditionReady, metav1.ConditionFalse, s.Reason, oneLine(msg), now)
		st.set(ConditionReconciling, metav1.ConditionFalse, s.Reason, "", now)
		st.set(ConditionStalled, metav1.ConditionTrue, s.Reason, oneLine(msg), now)
		st.LastReconcileTime = ptrTime(now)
		st.LastDuration = elapsed.Round(time.Millisecond).String()
		st.LastError = msg
		st.NextRetry = nil
	})
	d.event(ctx, Event{Warning: true, Reason: s.Reason, Message: fmt.Sprintf("revision %s: %s", rev, msg)})
}

// failed records a retryable failure and schedules the retry.
func (d *Daemon) failed(ctx context.Context, rev string, err error, reason string, more ...func(*Status)) {
	d.failures++
	wait := d.opts.Backoff.Delay(d.failures)
	d.scheduleRetry(wait)
	now := time.Now()
	if rev != "" {
		d.m.reconciles.WithLabelValues(ResultFailure).Inc()
	}
	msg := registry.Redact(err.Error())
	d.log.Error("reconcile failed", "revision", rev, "failures", d.failures, "retry_in", wait, "err", msg)
	d.update(ctx, func(st *Status) {
		st.set(ConditionReady, metav1.ConditionFalse, reason, oneLine(msg), now)
		st.set(ConditionReconciling, metav1.ConditionFalse, reason, fmt.Sprintf("retrying in %s", wait), now)
		st.set(ConditionStalled, metav1.ConditionFalse, reason, "", now)
		st.LastReconcileTime = ptrTime(now)
		st.LastError = msg
		st.Failures = d.failures
		st.NextRetry = ptrTime(now.Add(wait))
		for _, f := range more {
			f(st)
		}
	})
	d.event(ctx, Event{Warning: true, Reason: reason, Message: fmt.Sprintf("revision %s: %s (failure %d; retrying in %s)", rev, firstLine(msg), d.failures, wait)})
}

// update changes the status and records it in every sink, while this
// replica leads: a standby never overwrites the leader's status.
func (d *Daemon) update(ctx context.Context, f func(*Status)) {
	d.mu.Lock()
	f(&d.status)
	st := d.status
	st.Conditions = slices.Clone(st.Conditions)
	d.mu.Unlock()
	if !d.leading.Load() {
		return
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, s := range d.opts.Sinks {
		if err := s.Record(rctx, st); err != nil {
			d.log.Warn("could not record the status", "err", err)
		}
	}
}

func (d *Daemon) event(ctx context.Context, e Event) {
	if !d.leading.Load() {
		return
	}
	for _, s := range d.opts.Sinks {
		s.Event(context.WithoutCancel(ctx), e)
	}
}

func (d *Daemon) scheduleRetry(wait time.Duration) {
	d.stopRetry()
	d.retry = time.NewTimer(wait)
}

func (d *Daemon) stopRetry() {
	if d.retry != nil {
		d.retry.Stop()
		d.retry = nil
	}
}

func (d *Daemon) retryC() <-chan time.Time {
	if d.retry == nil {
		return nil
	}
	return d.retry.C
}

// timer is a time.Timer that is off (never fires) for a zero interval.
type timer struct{ t *time.Timer }

func newTimer(d time.Duration) *timer {
	if d <= 0 {
		return &timer{}
	}
	return &timer{time.NewTimer(d)}
}

func (t *timer) c() <-chan time.Time {
	if t.t == nil {
		return nil
	}
	return t.t.C
}

func (t *timer) reset(d time.Duration) {
	if t.t != nil {
		t.t.Reset(d)
	}
}

func (t *timer) stop() {
	if t.t != nil {
		t.t.Stop()
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func result(err error) string {
	if err != nil {
		return ResultFailure
	}
	return ResultSuccess
}

func joinTriggers(ts []Trigger) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = string(t)
	}
	return strings.Join(s, ",")
}

// oneLine folds a multi-line message ("invalid input: 2 problem(s)" and
// the problems) into one line for a condition, bounded as condition
// messages are (32 KiB in the API).
func oneLine(s string) string {
	parts := strings.Split(s, "\n")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	l := strings.Join(parts, "; ")
	if len(l) > 4096 {
		l = l[:4096] + "..."
	}
	return l
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

func ptrTime(t time.Time) *metav1.Time {
	mt := metav1.NewTime(t)
	return &mt
}
