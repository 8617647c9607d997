package daemon

import (
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// fakeSource is an in-memory Source whose tip a test moves.
type fakeSource struct {
	mu        sync.Mutex
	rev       string
	tips      int
	checkouts int
	// renderOnly lists revisions that change only the render directory.
	renderOnly map[string]bool
}

func (s *fakeSource) set(rev string) {
	s.mu.Lock()
	s.rev = rev
	s.mu.Unlock()
}

func (s *fakeSource) Tip(context.Context) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.tips++
	return s.rev, nil
}

func (s *fakeSource) Checkout(_ context.Context, rev string) (Checkout, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checkouts++
	return Checkout{Dir: "/specs", Revision: rev}, nil
}

func (s *fakeSource) counts() (tips, checkouts int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.tips, s.checkouts
}

// filteringSource is a fakeSource that is also a SpecFilter.
type filteringSource struct{ *fakeSource }

func (s filteringSource) SpecChanged(_ context.Context, from, to string) (bool, error) {
	return !s.renderOnly[to], nil
}

// publishingSource is a fakeSource with a remote that rejects the first
// rejects pushes; each rejection moves the tip (someone pushed).
type publishingSource struct {
	*fakeSource
	rejects  int
	pushes   int
	lastPush string
}

func (s *publishingSource) Publish(_ context.Context, co Checkout) (Published, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rejects > 0 {
		s.rejects--
		s.rev = s.rev + "+foreign"
		return Published{}, ErrPublishRejected
	}
	s.pushes++
	s.lastPush = co.Revision
	s.rev = co.Revision + "+ferry" // the remote's tip is now our commit
	return Published{Revision: s.rev, Pushed: true}, nil
}

// fakeRunner records runs; fail decides each run's error.
type fakeRunner struct {
	mu      sync.Mutex
	runs    []string
	active  atomic.Int32
	overlap atomic.Bool
	fail    func(n int) error
	block   chan struct{} // when set, each run waits for a receive
	started chan string
}

func (r *fakeRunner) Run(ctx context.Context, co Checkout) (*Result, error) {
	if r.active.Add(1) > 1 {
		r.overlap.Store(true)
	}
	defer r.active.Add(-1)
	r.mu.Lock()
	r.runs = append(r.runs, co.Revision)
	n := len(r.runs)
	r.mu.Unlock()
	if r.started != nil {
		r.started <- co.Revision
	}
	if r.block != nil {
		select {
		case <-r.block:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	res := &Result{ImagesCopied: 2, BytesCopied: 100, Catalogs: []CatalogState{{Name: "community", Image: "mirror/c@sha256:" + strings.Repeat("a", 64)}}}
	if r.fail != nil {
		if err := r.fail(n); err != nil {
			return res, err
		}
	}
	return res, nil
}

func (r *fakeRunner) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.runs)
}

// memSink keeps every status recorded.
type memSink struct {
	mu     sync.Mutex
	states []Status
	events []Event
}

func (m *memSink) Record(_ context.Context, st Status) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.states = append(m.states, st)
	return nil
}

func (m *memSink) Event(_ context.Context, e Event) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.events = append(m.events, e)
}

func (m *memSink) last() Status {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.states[len(m.states)-1]
}

// start runs d until the test ends and returns its cycles as they happen.
func start(t *testing.T, src Source, run Runner, opts Options) (*Daemon, <-chan Cycle, context.CancelFunc) {
	t.Helper()
	cycles := make(chan Cycle, 100)
	also := opts.OnCycle
	opts.OnCycle = func(c Cycle) {
		if also != nil {
			also(c) // on the loop goroutine: sees the state the cycle left
		}
		cycles <- c
	}
	if opts.Log == nil {
		opts.Log = discardLog()
	}
	d := New(src, run, opts)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Error("the daemon did not stop within 10 s of cancellation")
		}
	})
	return d, cycles, cancel
}

// next waits for the next cycle; a hang fails the test, time decides
// nothing else.
func next(t *testing.T, cycles <-chan Cycle) Cycle {
	t.Helper()
	select {
	case c := <-cycles:
		return c
	case <-time.After(20 * time.Second):
		t.Fatal("no cycle within 20 s")
	}
	return Cycle{}
}

func counter(t *testing.T, m *Metrics, name string, labels ...string) float64 {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("/metrics does not parse: %v", err)
	}
	mf, ok := mfs[name]
	if !ok {
		t.Fatalf("/metrics lacks %s", name)
	}
	for _, mt := range mf.GetMetric() {
		match := true
		for i := 0; i+1 < len(labels); i += 2 {
			found := false
			for _, lp := range mt.GetLabel() {
				if lp.GetName() == labels[i] && lp.GetValue() == labels[i+1] {
					found = true
				}
			}
			match = match && found
		}
		if !match {
			continue
		}
		switch {
		case mt.Counter != nil:
			return mt.Counter.GetValue()
		case mt.Gauge != nil:
			return mt.Gauge.GetValue()
		case mt.Histogram != nil:
			return float64(mt.Histogram.GetSampleCount())
		}
	}
	t.Fatalf("%s%v not found", name, labels)
	return 0
}

func TestBackoffDelay(t *testing.T) {
	b := Backoff{Initial: 10 * time.Second, Max: time.Minute}
	for _, tc := range []struct {
		n    int
		want time.Duration
	}{{0, 10 * time.Second}, {1, 10 * time.Second}, {2, 20 * time.Second}, {3, 40 * time.Second}, {4, time.Minute}, {50, time.Minute}} {
		if got := b.Delay(tc.n); got != tc.want {
			t.Errorf("Delay(%d) = %s, want %s", tc.n, got, tc.want)
		}
	}
}

func TestJitterStaysInRange(t *testing.T) {
	for range 1000 {
		if d := jittered(time.Minute, 0.1); d < time.Minute || d >= time.Minute+6*time.Second {
			t.Fatalf("jittered(1m, 0.1) = %s", d)
		}
	}
	if d := jittered(time.Minute, 0); d != time.Minute {
		t.Errorf("no jitter: %s", d)
	}
}

// TestIdlePollCostsOneTipLookup: after the first reconcile, polls with an
// unchanged tip look the tip up and do nothing else.
func TestIdlePollCostsOneTipLookup(t *testing.T) {
	src := &fakeSource{rev: "r1"}
	run := &fakeRunner{}
	d, cycles, _ := start(t, src, run, Options{Interval: time.Millisecond})
	if c := next(t, cycles); !c.Reconciled || c.Err != nil {
		t.Fatalf("first cycle %+v, want a successful reconcile", c)
	}
	tips0, _ := src.counts()
	for i := range 3 {
		if c := next(t, cycles); c.Reconciled {
			t.Fatalf("idle poll %d reconciled: %+v", i, c)
		}
	}
	tips, checkouts := src.counts()
	if run.count() != 1 || checkouts != 1 || tips-tips0 < 3 {
		t.Errorf("after three idle polls: %d run(s), %d checkout(s), %d more tip lookup(s)", run.count(), checkouts, tips-tips0)
	}
	if got := counter(t, d.Metrics(), "ferry_reconcile_total", "result", "success"); got != 1 {
		t.Errorf("ferry_reconcile_total{success} = %v", got)
	}
	// The tip moves: the next poll reconciles it.
	src.set("r2")
	for {
		c := next(t, cycles)
		if c.Reconciled {
			if c.Revision != "r2" {
				t.Errorf("reconciled %s, want r2", c.Revision)
			}
			break
		}
	}
}

// TestRequestsCoalesce: a burst of webhooks while a reconcile runs leads to
// one more cycle, and reconciles never overlap.
func TestRequestsCoalesce(t *testing.T) {
	src := &fakeSource{rev: "r1"}
	run := &fakeRunner{block: make(chan struct{}), started: make(chan string, 10)}
	d, cycles, _ := start(t, src, run, Options{})
	<-run.started // the start reconcile is running
	src.set("r2")
	for range 20 {
		d.Request(TriggerWebhook)
	}
	run.block <- struct{}{}
	if c := next(t, cycles); !c.Reconciled || c.Revision != "r1" {
		t.Fatalf("first cycle %+v", c)
	}
	<-run.started
	run.block <- struct{}{}
	c := next(t, cycles)
	if !c.Reconciled || c.Revision != "r2" || len(c.Triggers) != 1 || c.Triggers[0] != TriggerWebhook {
		t.Fatalf("second cycle %+v, want one reconcile of r2 for the burst", c)
	}
	// Nothing is pending any more: a request now is a cycle of its own
	// with an unchanged tip.
	d.Request(TriggerWebhook)
	if c := next(t, cycles); c.Reconciled {
		t.Errorf("a third cycle reconciled: %+v", c)
	}
	if run.count() != 2 || run.overlap.Load() {
		t.Errorf("%d runs (want 2), overlapping: %v", run.count(), run.overlap.Load())
	}
	if got := counter(t, d.Metrics(), "ferry_triggers_total", "trigger", "webhook"); got != 21 {
		t.Errorf("ferry_triggers_total{webhook} = %v, want 21", got)
	}
}

// TestFailuresBackOffAndRecover: failures are retried (trigger retry) with
// a growing delay, counted, reported, and a success resets everything.
func TestFailuresBackOffAndRecover(t *testing.T) {
	src := &fakeSource{rev: "r1"}
	run := &fakeRunner{fail: func(n int) error {
		if n <= 3 {
			return errors.New("GET https://ferry:hunter2@mirror.example.com/v2/: 503 Service Unavailable")
		}
		return nil
	}}
	sink := &memSink{}
	after := make(chan Status, 100)
	d, cycles, _ := start(t, src, run, Options{Backoff: Backoff{Initial: time.Millisecond, Max: 4 * time.Millisecond}, Sinks: []StatusSink{sink},
		OnCycle: func(Cycle) { after <- sink.last() }})
	var failures []int
	for i := range 4 {
		c := next(t, cycles)
		st := <-after
		if !c.Reconciled {
			t.Fatalf("cycle %d did not reconcile: %+v", i, c)
		}
		if i > 0 && (len(c.Triggers) != 1 || c.Triggers[0] != TriggerRetry) {
			t.Errorf("cycle %d triggered by %v, want retry", i, c.Triggers)
		}
		if c.Err != nil {
			failures = append(failures, st.Failures)
			if strings.Contains(st.LastError, "hunter2") || !strings.Contains(st.LastError, "503") {
				t.Errorf("last error %q: want the failure, redacted", st.LastError)
			}
			if st.NextRetry == nil || st.Condition(ConditionReady).Status != metav1.ConditionFalse {
				t.Errorf("status after a failure: %+v", st)
			}
		}
	}
	if len(failures) != 3 || failures[0] != 1 || failures[2] != 3 {
		t.Errorf("failure counts %v, want [1 2 3]", failures)
	}
	st := sink.last()
	if c := st.Condition(ConditionReady); c.Status != metav1.ConditionTrue || st.Failures != 0 || st.LastError != "" || st.NextRetry != nil {
		t.Errorf("status after recovering: %+v", st)
	}
	if !d.Ready() {
		t.Error("not ready after a success")
	}
	if got := counter(t, d.Metrics(), "ferry_reconcile_total", "result", "failure"); got != 3 {
		t.Errorf("ferry_reconcile_total{failure} = %v", got)
	}
	var recovered bool
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, e := range sink.events {
		recovered = recovered || e.Reason == "Recovered"
	}
	if !recovered {
		t.Errorf("no Recovered event among %+v", sink.events)
	}
}

// TestStalledWaitsForNewRevision: invalid desired state is not retried, not
// even by the catalog timer, until the source changes.
func TestStalledWaitsForNewRevision(t *testing.T) {
	src := &fakeSource{rev: "bad"}
	run := &fakeRunner{fail: func(n int) error {
		if n == 1 {
			return &StalledError{Reason: "InvalidSpec", Err: errors.New("catalog.yaml:3: Catalog/x: spec.source: required")}
		}
		return nil
	}}
	sink := &memSink{}
	d, cycles, _ := start(t, src, run, Options{CatalogInterval: time.Millisecond, Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}, Sinks: []StatusSink{sink}})
	if c := next(t, cycles); c.Err == nil {
		t.Fatalf("first cycle %+v, want stalled", c)
	}
	st := sink.last()
	if c := st.Condition(ConditionStalled); c.Status != metav1.ConditionTrue || c.Reason != "InvalidSpec" || !strings.Contains(c.Message, "catalog.yaml:3") {
		t.Errorf("Stalled condition %+v", c)
	}
	for range 3 {
		if c := next(t, cycles); c.Reconciled {
			t.Fatalf("a stalled revision was reconciled again: %+v", c)
		}
	}
	src.set("good")
	d.Request(TriggerWebhook)
	for {
		if c := next(t, cycles); c.Reconciled {
			if c.Err != nil || c.Revision != "good" {
				t.Fatalf("%+v", c)
			}
			break
		}
	}
	if got := counter(t, d.Metrics(), "ferry_reconcile_total", "result", "stalled"); got != 1 {
		t.Errorf("ferry_reconcile_total{stalled} = %v", got)
	}
}

// TestPublishRejectedIsReplanned: a push the remote refuses is reconciled
// again on the new tip and pushed; the daemon's own commit is then the tip
// and is not new desired state.
func TestPublishRejectedIsReplanned(t *testing.T) {
	src := &publishingSource{fakeSource: &fakeSource{rev: "r1"}, rejects: 2}
	run := &fakeRunner{}
	d, cycles, _ := start(t, src, run, Options{Interval: time.Millisecond, PublishRetries: 3, Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
	c := next(t, cycles)
	if c.Err != nil || run.count() != 3 {
		t.Fatalf("cycle %+v after %d run(s), want success after 3", c, run.count())
	}
	src.mu.Lock()
	lastPush := src.lastPush
	src.mu.Unlock()
	if lastPush != "r1+foreign+foreign" {
		t.Errorf("pushed on top of %q, want the tip after both foreign pushes", lastPush)
	}
	for range 3 {
		if c := next(t, cycles); c.Reconciled {
			t.Fatalf("reacted to its own commit: %+v", c)
		}
	}
	for result, want := range map[string]float64{ResultRejected: 2, ResultSuccess: 1} {
		if got := counter(t, d.Metrics(), "ferry_git_push_total", "result", result); got != want {
			t.Errorf("ferry_git_push_total{%s} = %v, want %v", result, got, want)
		}
	}
	if got := counter(t, d.Metrics(), "ferry_git_fetch_total", "result", "success"); got != 3 {
		t.Errorf("ferry_git_fetch_total{success} = %v, want 3", got)
	}
}

func TestPublishGivesUp(t *testing.T) {
	src := &publishingSource{fakeSource: &fakeSource{rev: "r1"}, rejects: 100}
	run := &fakeRunner{}
	runs := make(chan int, 100)
	_, cycles, _ := start(t, src, run, Options{PublishRetries: 2, Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond},
		OnCycle: func(Cycle) { runs <- run.count() }})
	c := next(t, cycles)
	n := <-runs
	src.mu.Lock()
	pushes := src.pushes
	src.mu.Unlock()
	if !errors.Is(c.Err, ErrPublishRejected) || n != 3 || pushes != 0 {
		t.Errorf("cycle err %v after %d run(s), %d push(es): want a rejection after 3 runs, nothing pushed", c.Err, n, pushes)
	}
}

// TestPartialFailureIsPublished: a reconcile that failed in part (a
// catalog held back) is published, as ferry reconcile --repo publishes it,
// and still reported as a failure to retry; invalid desired state is
// never published.
func TestPartialFailureIsPublished(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		publish bool
	}{
		{"held back", errors.New("copy image x: 500"), true},
		{"invalid", &StalledError{Reason: "InvalidSpec", Err: errors.New("c.yaml:3: bad")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := &publishingSource{fakeSource: &fakeSource{rev: "r1"}}
			run := &fakeRunner{fail: func(int) error { return tc.err }}
			_, cycles, _ := start(t, src, run, Options{Backoff: Backoff{Initial: time.Hour, Max: time.Hour}})
			c := next(t, cycles)
			src.mu.Lock()
			pushes := src.pushes
			src.mu.Unlock()
			if !errors.Is(c.Err, tc.err) {
				t.Errorf("cycle error %v, want %v", c.Err, tc.err)
			}
			if got := pushes == 1; got != tc.publish {
				t.Errorf("%d push(es), want published=%v", pushes, tc.publish)
			}
		})
	}
}

// TestStalledOnTheForeignTip: when the tip a rejected push is re-planned
// on is invalid, that tip is what is stalled, so the next poll does not
// reconcile it again.
func TestStalledOnTheForeignTip(t *testing.T) {
	src := &publishingSource{fakeSource: &fakeSource{rev: "r1"}, rejects: 1}
	run := &fakeRunner{fail: func(n int) error {
		if n == 2 {
			return &StalledError{Reason: "InvalidSpec", Err: errors.New("c.yaml:3: bad")}
		}
		return nil
	}}
	d, cycles, _ := start(t, src, run, Options{PublishRetries: 3, Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}})
	if c := next(t, cycles); c.Err == nil {
		t.Fatalf("cycle %+v, want the foreign tip stalled", c)
	}
	d.Request(TriggerPoll)
	if c := next(t, cycles); c.Reconciled || run.count() != 2 {
		t.Errorf("the stalled foreign tip was reconciled again: %+v, %d run(s)", c, run.count())
	}
	if st := d.Status(); st.Condition(ConditionStalled).Status != metav1.ConditionTrue {
		t.Errorf("status: %+v", st.Conditions)
	}
}

// TestRenderOnlyRevisionIgnored: a new tip that changes only the render
// directory is not new desired state.
func TestRenderOnlyRevisionIgnored(t *testing.T) {
	fs := &fakeSource{rev: "r1", renderOnly: map[string]bool{"r2": true}}
	run := &fakeRunner{}
	d, cycles, _ := start(t, filteringSource{fs}, run, Options{})
	next(t, cycles)
	fs.set("r2")
	d.Request(TriggerPoll)
	if c := next(t, cycles); c.Reconciled {
		t.Errorf("reconciled a render-only revision: %+v", c)
	}
	fs.set("r3")
	d.Request(TriggerPoll)
	if c := next(t, cycles); !c.Reconciled || c.Revision != "r3" {
		t.Errorf("did not reconcile a spec change: %+v", c)
	}
}

// standbyElector never elects this replica.
type standbyElector struct{}

func (standbyElector) Campaign(ctx context.Context, _ func(context.Context)) error {
	<-ctx.Done()
	return nil
}

func TestStandbyIsReadyAndIdle(t *testing.T) {
	src := &fakeSource{rev: "r1"}
	run := &fakeRunner{}
	sink := &memSink{}
	d := New(src, run, Options{Interval: time.Millisecond, Elector: standbyElector{}, Sinks: []StatusSink{sink}, Log: discardLog()})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	for !d.Ready() {
		time.Sleep(time.Millisecond)
	}
	d.Request(TriggerWebhook) // queued, never acted on while standing by
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	tips, _ := src.counts()
	if run.count() != 0 || tips != 0 || len(sink.states) != 0 {
		t.Errorf("a standby worked: %d run(s), %d tip lookup(s), %d status write(s)", run.count(), tips, len(sink.states))
	}
	if got := counter(t, d.Metrics(), "ferry_leader"); got != 0 {
		t.Errorf("ferry_leader = %v on a standby", got)
	}
}

// TestShutdownInterruptsReconcile: cancellation reaches the runner, Run
// returns, and the interrupted reconcile is neither a failure nor a
// success.
func TestShutdownInterruptsReconcile(t *testing.T) {
	src := &fakeSource{rev: "r1"}
	run := &fakeRunner{block: make(chan struct{}), started: make(chan string, 1)}
	sink := &memSink{}
	d := New(src, run, Options{Sinks: []StatusSink{sink}, Log: discardLog()})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	<-run.started
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	st := sink.last()
	if c := st.Condition(ConditionReconciling); c.Reason != "Interrupted" {
		t.Errorf("Reconciling %+v, want Interrupted", c)
	}
	for _, r := range []string{ResultSuccess, ResultFailure} {
		if got := counter(t, d.Metrics(), "ferry_reconcile_total", "result", r); got != 0 {
			t.Errorf("ferry_reconcile_total{%s} = %v after an interrupted run", r, got)
		}
	}
	if d.Ready() {
		t.Error("ready without a successful reconcile")
	}
}
