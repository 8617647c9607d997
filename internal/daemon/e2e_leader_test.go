package daemon_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/ferry-gitops/ferry/internal/daemon"
	"github.com/ferry-gitops/ferry/internal/daemon/kube"
	"github.com/ferry-gitops/ferry/internal/testenv"
)

// TestRunLeaderElection runs two replicas against the real API server with
// a Lease: only the leader reconciles (the standby runs no cycle, writes no
// status, is ready and reports ferry_leader 0); the status ConfigMap and
// its Events say what the leader did; when the leader stops, the standby
// takes over at once (the lease is released) and its first reconcile
// writes nothing to the mirror, which the leader already filled.
func TestRunLeaderElection(t *testing.T) {
	skipE2E(t)
	t.Parallel()
	k := testenv.SharedKube(t)
	ns := k.NewNamespace(t)
	client, err := kubernetes.NewForConfig(k.RESTConfig())
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, "kubevirt-wol")
	f.writeSpec(t, f.spec("kubevirt-wol"), "spec")
	// The second replica has its own checkout, as a second pod would.
	other := t.TempDir()
	if err := os.WriteFile(filepath.Join(other, "catalog.yaml"), []byte(f.spec("kubevirt-wol")), 0o644); err != nil {
		t.Fatal(err)
	}
	replica := func(dir, id string) *running {
		sink := &kube.StatusSink{Client: client, Namespace: ns, Name: kube.DefaultStatusName}
		t.Cleanup(sink.Shutdown)
		return startDaemon(t, f, dir, daemonConfig{opts: daemon.Options{
			Identity: id,
			Sinks:    []daemon.StatusSink{sink},
			Elector: &kube.Elector{Client: client, Namespace: ns, Name: "ferry-leader", Identity: id,
				LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 200 * time.Millisecond},
		}})
	}
	a, b := replica(f.dir, "replica-a"), replica(other, "replica-b")
	var leader, standby *running
	var leaderID, leaderDir string
	select {
	case c := <-a.cycles:
		leader, standby, leaderID, leaderDir = a, b, "replica-a", f.dir
		a.cycles <- c
	case c := <-b.cycles:
		leader, standby, leaderID, leaderDir = b, a, "replica-b", other
		b.cycles <- c
	case <-time.After(3 * time.Minute):
		t.Fatal("no replica reconciled within 3 minutes")
	}
	c := leader.reconciled(t)
	if c.Result.ImagesCopied == 0 {
		t.Fatalf("the leader's first reconcile copied nothing: %+v", c.Result)
	}
	if n := len(standby.cycles); n != 0 {
		t.Errorf("the standby ran %d cycle(s) while the other replica leads", n)
	}
	if !standby.d.Ready() {
		t.Error("a standby must be ready (it can take over)")
	}
	mfs, _ := scrape(t, standby)
	if value(t, mfs, "ferry_leader") != 0 || value(t, mfs, "ferry_reconcile_total", "result", "success") != 0 || value(t, mfs, "ferry_source_checks_total", "result", "success") != 0 {
		t.Error("the standby's metrics say it worked")
	}
	mfs, _ = scrape(t, leader)
	if value(t, mfs, "ferry_leader") != 1 {
		t.Error("the leader's ferry_leader is not 1")
	}
	st, err := kube.ReadStatus(t.Context(), client, ns, kube.DefaultStatusName)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Condition(daemon.ConditionReady); c == nil || c.Status != metav1.ConditionTrue || st.Role != "leader" || st.Identity != leaderID {
		t.Errorf("status ConfigMap: %+v", st)
	}
	waitEvent(t, client, ns, "ReconcileSucceeded")
	verifyMirror(t, f, leaderDir)

	// The leader stops; the standby takes over without waiting for the
	// lease to expire, and finds nothing to copy.
	off := f.dst.LogSize(t)
	leader.stop(t)
	c = standby.reconciled(t)
	if c.Triggers[0] != daemon.TriggerStart {
		t.Errorf("takeover cycle triggered by %v", c.Triggers)
	}
	counts, lines := f.dst.Requests(t, off)
	if w := testenv.Writes(counts); w != 0 {
		t.Errorf("the new leader wrote %d time(s) to a mirror that was complete: %v", w, lines)
	}
	st, err = kube.ReadStatus(t.Context(), client, ns, kube.DefaultStatusName)
	if err != nil {
		t.Fatal(err)
	}
	if st.Identity == leaderID || st.Role != "leader" {
		t.Errorf("after the takeover the status names %s (%s)", st.Identity, st.Role)
	}
}

// waitEvent waits for an Event with reason on the status ConfigMap (the
// recorder sends them asynchronously).
func waitEvent(t *testing.T, client kubernetes.Interface, ns, reason string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	for {
		evs, err := client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{FieldSelector: "involvedObject.name=" + kube.DefaultStatusName})
		if err == nil {
			for _, e := range evs.Items {
				if e.Reason == reason && e.Source.Component == "ferry" {
					return
				}
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("no %s Event on ConfigMap %s/%s within a minute", reason, ns, kube.DefaultStatusName)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
