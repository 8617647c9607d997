package daemon_test

import (
	"crypto/rand"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/daemon"
	"github.com/ferry-gitops/ferry/internal/daemon/localdir"
	"github.com/ferry-gitops/ferry/internal/daemon/webhook"
	"github.com/ferry-gitops/ferry/spec"
)

// TestRunLocalDirectory runs the daemon on a config repo in a local git
// work tree against real registries: the first reconcile converges; idle
// polls cost no registry request and no commit; an edit is picked up by
// fsnotify; webhooks without or with a wrong signature are refused and a
// signed one triggers a reconcile; a mirror that lost an image is repaired
// by the periodic full reconcile; /metrics parses and its counters moved
// as they should; the planted passwords appear nowhere.
func TestRunLocalDirectory(t *testing.T) {
	skipE2E(t)
	t.Parallel()
	f := newFixture(t, "kubevirt-wol", "nfs-provisioner-operator")
	f.writeSpec(t, f.spec("kubevirt-wol"), "spec: kubevirt-wol")
	quiet := func(dir string) *localdir.Source {
		return &localdir.Source{Dir: dir, RenderDir: spec.DefaultRenderDir, NoWatch: true}
	}
	var leaks []string // everything that must not hold a password

	// 1. Converge, then three idle polls.
	r := startDaemon(t, f, f.dir, daemonConfig{opts: daemon.Options{Interval: 20 * time.Millisecond}, source: quiet(f.dir)})
	c := r.reconciled(t)
	if c.Triggers[0] != daemon.TriggerStart || c.Result.ImagesCopied == 0 || c.Result.Commit == "" {
		t.Fatalf("first reconcile: %+v %+v", c, c.Result)
	}
	images := verifyMirror(t, f, f.dir)
	if got := f.commits(); got != "2" {
		t.Errorf("%s commits after the first reconcile, want 2 (spec, render)", got)
	}
	srcOff, dstOff := f.src.LogSize(t), f.dst.LogSize(t)
	for polls := 0; polls < 3; {
		c := r.next(t)
		if c.Reconciled {
			t.Fatalf("an idle poll reconciled: %+v", c)
		}
		if len(c.Triggers) == 1 && c.Triggers[0] == daemon.TriggerPoll {
			polls++
		}
	}
	srcReqs, _ := f.src.Requests(t, srcOff)
	dstReqs, dstLines := f.dst.Requests(t, dstOff)
	if len(srcReqs) != 0 || len(dstReqs) != 0 {
		t.Errorf("three idle polls sent requests: source %v, mirror %v %v", srcReqs, dstReqs, dstLines)
	}
	if got := f.commits(); got != "2" {
		t.Errorf("idle polls committed: %s commits", got)
	}
	resp, err := http.Get(r.url("health", "/readyz"))
	if err != nil || resp.StatusCode != 200 {
		t.Errorf("/readyz after a success: %v %v", resp, err)
	}
	r.stop(t)
	leaks = append(leaks, r.logs.String())

	// 2. An edit, picked up by fsnotify (no poll, no webhook).
	r = startDaemon(t, f, f.dir, daemonConfig{})
	if c := r.reconciled(t); c.Result.ImagesCopied != 0 || c.Result.Commit != "" {
		t.Errorf("restart with nothing changed copied or committed: %+v", c.Result)
	}
	f.writeSpec(t, f.spec("kubevirt-wol", "nfs-provisioner-operator"), "spec: add nfs-provisioner-operator")
	c = r.reconciled(t)
	if len(c.Triggers) != 1 || c.Triggers[0] != daemon.TriggerWatch {
		t.Errorf("edit reconciled by %v, want watch", c.Triggers)
	}
	more := verifyMirror(t, f, f.dir)
	if more <= images || c.Result.Commit == "" {
		t.Errorf("after adding a package: %d images (was %d), commit %q", more, images, c.Result.Commit)
	}
	mfs, _ := scrape(t, r)
	if got := value(t, mfs, "ferry_images_copied_total"); int(got) != more-images {
		t.Errorf("ferry_images_copied_total = %v, want %d (only the new package's images)", got, more-images)
	}
	r.stop(t)
	leaks = append(leaks, r.logs.String())

	// 3. Webhooks: refused unsigned or badly signed, a signed one
	// reconciles. Nothing else can trigger this daemon.
	secret := []byte("hook-" + rand.Text())
	r = startDaemon(t, f, f.dir, daemonConfig{source: quiet(f.dir), secret: secret})
	r.reconciled(t)
	f.writeSpec(t, f.spec("kubevirt-wol"), "spec: drop nfs-provisioner-operator")
	hook := r.url("webhook", "/hook")
	body := `{"ref":"refs/heads/main"}`
	if code := post(t, hook, nil, body); code != 401 {
		t.Errorf("unsigned webhook: %d, want 401", code)
	}
	if code := post(t, hook, map[string]string{"X-Hub-Signature-256": webhook.Sign([]byte("wrong"), []byte(body))}, body); code != 403 {
		t.Errorf("badly signed webhook: %d, want 403", code)
	}
	if code := post(t, hook, map[string]string{"X-Gitlab-Token": "wrong"}, body); code != 403 {
		t.Errorf("wrong GitLab token: %d, want 403", code)
	}
	if n := len(r.cycles); n != 0 {
		t.Fatalf("refused webhooks led to %d cycle(s)", n)
	}
	sent := time.Now()
	if code := post(t, hook, map[string]string{"X-Hub-Signature-256": webhook.Sign(secret, []byte(body))}, body); code != 202 {
		t.Errorf("signed webhook: %d, want 202", code)
	}
	c = r.reconciled(t)
	t.Logf("webhook to committed render for a one-package change: %s", time.Since(sent).Round(time.Millisecond))
	if len(c.Triggers) != 1 || c.Triggers[0] != daemon.TriggerWebhook || c.Result.Commit == "" {
		t.Errorf("webhook reconcile: triggers %v, result %+v", c.Triggers, c.Result)
	}
	mfs, raw := scrape(t, r)
	for result, want := range map[string]float64{"accepted": 1, "unauthorized": 1, "forbidden": 2, "invalid": 0} {
		if got := value(t, mfs, "ferry_webhook_requests_total", "result", result); got != want {
			t.Errorf("ferry_webhook_requests_total{result=%q} = %v, want %v", result, got, want)
		}
	}
	if got := value(t, mfs, "ferry_reconcile_total", "result", "success"); got != 2 {
		t.Errorf("ferry_reconcile_total{success} = %v, want 2", got)
	}
	if got := value(t, mfs, "ferry_reconcile_duration_seconds"); got != 2 {
		t.Errorf("ferry_reconcile_duration_seconds count = %v, want 2", got)
	}
	if got := value(t, mfs, "ferry_last_success_timestamp_seconds"); got < float64(time.Now().Add(-time.Hour).Unix()) {
		t.Errorf("ferry_last_success_timestamp_seconds = %v", got)
	}
	cs, err := os.ReadFile(filepath.Join(f.dir, "rendered/catalogs/community/catalogsource.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	_, digest, _ := strings.Cut(strings.Fields(string(cs[strings.Index(string(cs), "image: ")+7:]))[0], "@")
	if got := value(t, mfs, "ferry_catalog_info", "catalog", "community", "digest", digest); got != 1 {
		t.Errorf("ferry_catalog_info for the rendered digest %s = %v", digest, got)
	}
	st, err := daemon.ReadStatusFile(r.status)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Condition(daemon.ConditionReady); c == nil || c.Status != "True" || st.LastAppliedRevision == "" || len(st.Catalogs) != 1 {
		t.Errorf("status file: %+v", st)
	}
	r.stop(t)
	statusBytes, _ := os.ReadFile(r.status)
	leaks = append(leaks, r.logs.String(), raw, string(statusBytes))

	// 4. Mirror drift: an image deleted from the mirror comes back with
	// the periodic full reconcile, though the spec did not change.
	r = startDaemon(t, f, f.dir, daemonConfig{opts: daemon.Options{CatalogInterval: 200 * time.Millisecond}, source: quiet(f.dir)})
	r.reconciled(t)
	mapping, _ := os.ReadFile(filepath.Join(f.dir, "rendered/mirror/mapping.txt"))
	first := strings.Split(strings.TrimSpace(string(mapping)), "\n")[0]
	srcRef, dstRef, _ := strings.Cut(first, "=")
	_, d, _ := strings.Cut(srcRef, "@")
	dst, err := name.ParseReference(dstRef)
	if err != nil {
		t.Fatal(err)
	}
	gone := dst.Context().Digest(d)
	if err := remote.Delete(gone, remote.WithAuth(f.dst.Auth())); err != nil {
		t.Fatalf("delete %s from the mirror: %v", gone, err)
	}
	c = r.reconciled(t)
	if len(c.Triggers) != 1 || c.Triggers[0] != daemon.TriggerCatalog || c.Result.ImagesCopied < 1 {
		t.Errorf("drift repair: triggers %v, %d image(s) copied", c.Triggers, c.Result.ImagesCopied)
	}
	verifyMirror(t, f, f.dir)
	r.stop(t)
	leaks = append(leaks, r.logs.String(), f.git("log", "-p", "--all"))

	for _, s := range leaks {
		for _, secretText := range []string{f.dst.Password, string(secret)} {
			if strings.Contains(s, secretText) {
				t.Errorf("a planted secret leaked into logs, metrics, status or commits")
			}
		}
	}
}
