package reconcile

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/render"
	"github.com/ferry-gitops/ferry/spec"
)

const testDigest = "sha256:4d3cd9c8ab56b9b73e9a0d0917b12ffeba930461b5a40da2e083b407e8fb4eea"

// etcdCatalog is a catalog holding package etcd with the given channels,
// each with one bundle etcd.v0.9.<i>.
func etcdCatalog(channels ...string) *fbc.DeclarativeConfig {
	cfg := &fbc.DeclarativeConfig{Packages: []fbc.Package{{Schema: fbc.SchemaPackage, Name: "etcd", DefaultChannel: channels[0]}}}
	for i, ch := range channels {
		name := fmt.Sprintf("etcd.v0.9.%d", i)
		v, _ := json.Marshal(fbc.PackageProperty{PackageName: "etcd", Version: fmt.Sprintf("0.9.%d", i)})
		cfg.Bundles = append(cfg.Bundles, fbc.Bundle{Schema: fbc.SchemaBundle, Name: name, Package: "etcd", Properties: []fbc.Property{{Type: fbc.PropertyPackage, Value: v}}})
		cfg.Channels = append(cfg.Channels, fbc.Channel{Schema: fbc.SchemaChannel, Name: ch, Package: "etcd", Entries: []fbc.ChannelEntry{{Name: name}}})
	}
	return cfg
}

// clusterFixture is a render of two catalogs (a, b) and a mirror set, for
// instance "lab".
type clusterFixture struct {
	files    map[string][]byte
	catalogs []*render.Catalog
}

func newClusterFixture(t *testing.T, image string, aChannels ...string) *clusterFixture {
	t.Helper()
	f := &clusterFixture{files: map[string][]byte{}}
	labels := render.Labels("lab")
	for _, name := range []string{"a", "b"} {
		c := &spec.Catalog{Metadata: spec.ObjectMeta{Name: name}, Spec: spec.CatalogSpec{CatalogSource: spec.CatalogSourceSpec{Name: name, Namespace: "openshift-marketplace"}}}
		b, err := render.CatalogSource(c, "mirror.example.com/olm/"+name+image, labels)
		if err != nil {
			t.Fatal(err)
		}
		f.files[render.CatalogSourceFile(name)] = b
		cfg := etcdCatalog("stable")
		if name == "a" && len(aChannels) > 0 {
			cfg = etcdCatalog(aChannels...)
		}
		f.catalogs = append(f.catalogs, &render.Catalog{Spec: c, Config: cfg})
	}
	f.files["mirror/imagedigestmirrorset.yaml"] = []byte(`apiVersion: config.openshift.io/v1
kind: ImageDigestMirrorSet
metadata:
  name: ferry-lab-0
  labels:
    app.kubernetes.io/managed-by: ferry
    ferry.dev/instance: lab
spec:
  imageDigestMirrors:
    - source: quay.io/coreos/etcd
      mirrors:
        - mirror.example.com/olm/coreos/etcd
`)
	f.files["mirror/mapping.txt"] = []byte("not an object\n")
	f.files["catalogs/a/configs/etcd/catalog.yaml"] = []byte("schema: olm.package\n")
	return f
}

func (f *clusterFixture) planned() *Planned {
	return &Planned{Plan: &Plan{}, Result: &Result{Files: f.files, Catalogs: f.catalogs, Instance: "lab"}}
}

func subscription(ns, name, source, channel, installed string) *unstructured.Unstructured {
	u := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "operators.coreos.com/v1alpha1", "kind": "Subscription",
		"metadata": map[string]any{"name": name, "namespace": ns},
		"spec":     map[string]any{"name": "etcd", "channel": channel, "source": source, "sourceNamespace": "openshift-marketplace"},
	}}
	if installed != "" {
		u.Object["status"] = map[string]any{"installedCSV": installed}
	}
	return u
}

// run plans and applies a fixture, as Reconciler.Plan and Apply do for
// the cluster step.
func run(t *testing.T, c *fakeCluster, f *clusterFixture, opts Options, out *Outcome) (*Planned, error) {
	t.Helper()
	r := &Reconciler{Cluster: c}
	p := f.planned()
	if err := r.planCluster(t.Context(), p, opts); err != nil {
		return p, err
	}
	if out == nil {
		out = &Outcome{}
	}
	if out.Files == nil {
		out.Files = f.files
	}
	return p, r.applyCluster(t.Context(), p, opts, out)
}

func actions(objs []ObjectChange) map[string]ObjectAction {
	out := map[string]ObjectAction{}
	for _, o := range objs {
		out[o.String()] = o.Action
	}
	return out
}

// TestClusterStepOrderAndNoop: mirror sets are written before the
// CatalogSources, and a second run with nothing changed writes nothing
// and reads one LIST per kind.
func TestClusterStepOrderAndNoop(t *testing.T) {
	c := newFakeCluster()
	c.notServed[GVKClusterCatalog] = true
	f := newClusterFixture(t, "@"+testDigest)
	p, err := run(t, c, f, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"apply ImageDigestMirrorSet//ferry-lab-0",
		"apply CatalogSource/openshift-marketplace/a",
		"apply CatalogSource/openshift-marketplace/b",
	}
	if diff := cmp.Diff(want, c.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	if got := actions(p.Plan.Cluster.Objects); got["CatalogSource/openshift-marketplace/a"] != ObjectCreate {
		t.Errorf("plan: %v", got)
	}
	c.resetLog()
	p, err = run(t, c, f, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if w := c.writes(); len(w) != 0 {
		t.Errorf("a no-op run wrote: %v", w)
	}
	lists := 0
	for _, l := range c.log {
		if strings.HasPrefix(l, "list ") {
			lists++
		}
	}
	if want := len(appliedKinds) + 2; lists != want || len(c.log) != lists {
		t.Errorf("a no-op run made %d requests (%d LISTs), want %d LISTs only: %v", len(c.log), lists, want, c.log)
	}
	if p.Plan.Cluster.HasChanges() {
		t.Errorf("a no-op plan has changes: %+v", p.Plan.Cluster.Objects)
	}
}

// TestClusterStepHeldCatalog: a catalog whose images are not all in the
// mirror keeps its CatalogSource as it is.
func TestClusterStepHeldCatalog(t *testing.T) {
	c := newFakeCluster()
	old := newClusterFixture(t, "@sha256:"+strings.Repeat("1", 64))
	if _, err := run(t, c, old, Options{}, nil); err != nil {
		t.Fatal(err)
	}
	c.resetLog()
	next := newClusterFixture(t, "@"+testDigest)
	out := &Outcome{Catalogs: []CatalogOutcome{{Name: "a", Held: "image x not mirrored"}}}
	// The achieved render keeps a's previous CatalogSource.
	out.Files = map[string][]byte{}
	for k, v := range next.files {
		out.Files[k] = v
	}
	out.Files[render.CatalogSourceFile("a")] = old.files[render.CatalogSourceFile("a")]
	if _, err := run(t, c, next, Options{}, out); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"apply CatalogSource/openshift-marketplace/b"}, c.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
	if got := actions(out.Cluster.Objects)["CatalogSource/openshift-marketplace/a"]; got != ObjectHeld {
		t.Errorf("a: %s, want held", got)
	}
}

// TestClusterStepGuard: a Subscription whose channel the new catalog
// drops makes the change breaking; it is shown, not applied, unless
// AllowBreaking.
func TestClusterStepGuard(t *testing.T) {
	for _, allow := range []bool{false, true} {
		t.Run(fmt.Sprintf("allow=%v", allow), func(t *testing.T) {
			c := newFakeCluster()
			if _, err := run(t, c, newClusterFixture(t, "@sha256:"+strings.Repeat("1", 64)), Options{}, nil); err != nil {
				t.Fatal(err)
			}
			c.put(subscription("team", "etcd", "a", "stable", "etcd.v0.9.0"))
			c.resetLog()
			next := newClusterFixture(t, "@"+testDigest, "fast")
			p, err := run(t, c, next, Options{Cluster: ClusterOptions{AllowBreaking: allow}}, nil)
			var ce *ClusterError
			if allow != (err == nil) || (!allow && !errors.As(err, &ce)) {
				t.Fatalf("error %v", err)
			}
			var a ObjectChange
			for _, o := range p.Plan.Cluster.Objects {
				if o.Name == "a" {
					a = o
				}
			}
			if len(a.Reasons) == 0 || !strings.Contains(a.Reasons[0], "Subscription team/etcd: channel stable of package etcd is not in the new catalog") {
				t.Errorf("reasons %q", a.Reasons)
			}
			var text strings.Builder
			_ = p.Plan.WriteText(&text)
			applied := strings.Contains(strings.Join(c.writes(), "\n"), "CatalogSource/openshift-marketplace/a")
			if allow {
				if a.Action != ObjectConfigure || !a.Allowed || !applied {
					t.Errorf("allowed breaking change: %+v, applied %v", a, applied)
				}
			} else {
				if a.Action != ObjectBreaking || applied || !strings.Contains(text.String(), "breaking (not applied; --allow-breaking applies it)") {
					t.Errorf("breaking change: %+v, applied %v\n%s", a, applied, text.String())
				}
			}
			if !strings.Contains(strings.Join(c.writes(), "\n"), "CatalogSource/openshift-marketplace/b") {
				t.Error("the other catalog was not applied")
			}
		})
	}
}

// TestClusterStepConflict: a field another manager owns is a conflict
// naming the manager; ForceConflicts takes it over.
func TestClusterStepConflict(t *testing.T) {
	c := newFakeCluster()
	if _, err := run(t, c, newClusterFixture(t, "@sha256:"+strings.Repeat("1", 64)), Options{}, nil); err != nil {
		t.Fatal(err)
	}
	c.owners["CatalogSource/openshift-marketplace/a"] = []FieldConflict{{Field: ".spec.image", Manager: "kubectl-edit"}}
	next := newClusterFixture(t, "@"+testDigest)
	p, err := run(t, c, next, Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), `.spec.image owned by "kubectl-edit"`) {
		t.Fatalf("error %v, want a conflict naming kubectl-edit", err)
	}
	if got := actions(p.Plan.Cluster.Objects)["CatalogSource/openshift-marketplace/a"]; got != ObjectConflict {
		t.Errorf("plan: a is %s, want conflict", got)
	}
	c.resetLog()
	if _, err := run(t, c, next, Options{Cluster: ClusterOptions{ForceConflicts: true}}, nil); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(c.writes(), "\n"), "apply CatalogSource/openshift-marketplace/a") {
		t.Errorf("--force-conflicts did not apply: %v", c.writes())
	}
}

// TestClusterStepPrune: owned objects no longer rendered are listed,
// deleted only with Prune, never when a Subscription uses them (without
// AllowBreaking), never all at once, and objects of another instance or
// not Ferry's are never touched.
func TestClusterStepPrune(t *testing.T) {
	setup := func(t *testing.T) *fakeCluster {
		c := newFakeCluster()
		if _, err := run(t, c, newClusterFixture(t, "@"+testDigest), Options{}, nil); err != nil {
			t.Fatal(err)
		}
		// Objects of another instance and a hand-made one are never Ferry's
		// to prune.
		for name, labels := range map[string]map[string]string{
			"other-instance": render.Labels("prod"),
			"hand-made":      nil,
		} {
			u := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "operators.coreos.com/v1alpha1", "kind": "CatalogSource",
				"metadata": map[string]any{"name": name, "namespace": "openshift-marketplace"}}}
			u.SetLabels(labels)
			c.put(u)
		}
		c.resetLog()
		return c
	}
	onlyA := func(t *testing.T) *clusterFixture {
		f := newClusterFixture(t, "@"+testDigest)
		delete(f.files, render.CatalogSourceFile("b"))
		return f
	}
	t.Run("listed, not deleted", func(t *testing.T) {
		c := setup(t)
		p, err := run(t, c, onlyA(t), Options{}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if got := actions(p.Plan.Cluster.Objects)["CatalogSource/openshift-marketplace/b"]; got != ObjectPrunable || len(c.writes()) != 0 {
			t.Errorf("b: %s; writes %v", got, c.writes())
		}
	})
	t.Run("deleted with prune", func(t *testing.T) {
		c := setup(t)
		if _, err := run(t, c, onlyA(t), Options{Cluster: ClusterOptions{Prune: true}}, nil); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"delete CatalogSource/openshift-marketplace/b"}, c.writes()); diff != "" {
			t.Errorf("writes (-want +got):\n%s", diff)
		}
	})
	t.Run("in use", func(t *testing.T) {
		c := setup(t)
		c.put(subscription("team", "etcd", "b", "stable", "etcd.v0.9.0"))
		p, _ := run(t, c, onlyA(t), Options{Cluster: ClusterOptions{Prune: true}}, nil)
		if got := actions(p.Plan.Cluster.Objects)["CatalogSource/openshift-marketplace/b"]; got != ObjectBreaking || len(c.writes()) != 0 {
			t.Errorf("b in use: %s; writes %v", got, c.writes())
		}
		c.resetLog()
		if _, err := run(t, c, onlyA(t), Options{Cluster: ClusterOptions{Prune: true, AllowBreaking: true}}, nil); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff([]string{"delete CatalogSource/openshift-marketplace/b"}, c.writes()); diff != "" {
			t.Errorf("with --allow-breaking (-want +got):\n%s", diff)
		}
	})
	t.Run("never everything at once", func(t *testing.T) {
		c := setup(t)
		empty := &clusterFixture{files: map[string][]byte{}}
		p, err := run(t, c, empty, Options{Cluster: ClusterOptions{Prune: true}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.writes()) != 0 {
			t.Errorf("an empty render pruned: %v", c.writes())
		}
		var text strings.Builder
		_ = p.Plan.WriteText(&text)
		if !strings.Contains(text.String(), "the render is empty") {
			t.Errorf("the plan does not say why nothing is pruned:\n%s", text.String())
		}
	})
}

// TestClusterStepWait: a changed CatalogSource is waited for until OLM
// (played by the fake) reports READY after the change; one that never
// gets READY fails the run once the wait is over.
func TestClusterStepWait(t *testing.T) {
	for _, ready := range []bool{true, false} {
		t.Run(fmt.Sprintf("ready=%v", ready), func(t *testing.T) {
			c := newFakeCluster()
			gets := 0
			c.onGet = func(u *unstructured.Unstructured) {
				gets++
				if ready && u.GetKind() == "CatalogSource" && gets > 2 {
					at := appliedAt(u)
					_ = unstructured.SetNestedField(u.Object, "READY", "status", "connectionState", "lastObservedState")
					_ = unstructured.SetNestedField(u.Object, at.Add(time.Second).Format(time.RFC3339), "status", "connectionState", "lastConnect")
				}
			}
			opts := Options{Cluster: ClusterOptions{Wait: 200 * time.Millisecond, PollInterval: time.Millisecond}}
			if !ready {
				opts.Cluster.Wait = 20 * time.Millisecond
			}
			_, err := run(t, c, newClusterFixture(t, "@"+testDigest), opts, nil)
			if ready && err != nil {
				t.Fatal(err)
			}
			if !ready && (err == nil || !strings.Contains(err.Error(), "not serving its new catalog")) {
				t.Fatalf("error %v, want a wait failure", err)
			}
		})
	}
}

// TestClusterStepSamplesArchitectures: an architecture change goes
// Removed -> (removal done) -> edit -> Managed; a run stopped while the
// operator removes the samples is resumed by the next one, and samples
// never stay Removed.
func TestClusterStepSamplesArchitectures(t *testing.T) {
	c := newFakeCluster()
	samples := func(arch string) map[string][]byte {
		b, err := render.SamplesConfig(&spec.SamplesSpec{ManagementState: spec.Managed, Architectures: []string{arch}}, nil, render.Labels("lab"))
		if err != nil {
			t.Fatal(err)
		}
		return map[string][]byte{render.SamplesConfigFile: b}
	}
	f := &clusterFixture{files: samples("x86_64")}
	if _, err := run(t, c, f, Options{}, nil); err != nil {
		t.Fatal(err)
	}
	key := "Config//cluster"
	state := func() (string, []string) {
		u := c.objs[key]
		s, _, _ := unstructured.NestedString(u.Object, "spec", "managementState")
		a, _, _ := unstructured.NestedStringSlice(u.Object, "spec", "architectures")
		return s, a
	}
	// First attempt with no wait: the operator has not removed anything
	// yet, so the run stops after setting Removed and says so.
	c.resetLog()
	f = &clusterFixture{files: samples("aarch64")}
	_, err := run(t, c, f, Options{}, nil)
	if err == nil || !strings.Contains(err.Error(), "the next run continues") {
		t.Fatalf("error %v", err)
	}
	if s, a := state(); s != spec.Removed || a[0] != "x86_64" {
		t.Fatalf("after the first stage: %s %v, want Removed with the old architecture", s, a)
	}
	// The operator finishes the removal (the test plays it), then the
	// next run edits and sets Managed.
	_ = unstructured.SetNestedField(c.objs[key].Object, spec.Removed, "status", "managementState")
	c.resetLog()
	if _, err := run(t, c, f, Options{}, nil); err != nil {
		t.Fatal(err)
	}
	if s, a := state(); s != spec.Managed || a[0] != "aarch64" {
		t.Errorf("after resuming: %s %v, want Managed with the new architecture", s, a)
	}
	if diff := cmp.Diff([]string{"apply Config//cluster", "apply Config//cluster"}, c.writes()); diff != "" {
		t.Errorf("resumed writes (-want +got; edit, then Managed):\n%s", diff)
	}
}
