package cluster

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/reconcile"
)

// These tests run against the real kube-apiserver with the real CRDs
// (testenv.SharedKube). Nothing reacts to the objects: no OLM, no samples
// operator. What the server did is read from its audit log, not from the
// client's own accounting.

// live reads obj back with the admin client, as a List would return it.
func live(t *testing.T, kube *testenv.Kube, obj *unstructured.Unstructured) *unstructured.Unstructured {
	t.Helper()
	m := knownKinds[obj.GroupVersionKind()]
	ri := kube.Dynamic().Resource(m.gvr)
	var got *unstructured.Unstructured
	var err error
	if m.namespaced {
		got, err = ri.Namespace(obj.GetNamespace()).Get(t.Context(), obj.GetName(), metav1.GetOptions{})
	} else {
		got, err = ri.Get(t.Context(), obj.GetName(), metav1.GetOptions{})
	}
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestApplyThenNoOp is the life of an object: a plan says Create and
// writes nothing, the apply creates it, and the next plan says Unchanged
// without sending a single request.
func TestApplyThenNoOp(t *testing.T) {
	t.Parallel()
	c, kube, user := kubeClient(t)
	ns := kube.NewNamespace(t)
	desired := catalogSource(ns, "community", "mirror.example.com/olm/community-index@"+digest("v1"))

	mark := kube.AuditMark(t)
	action, err := c.Diff(t.Context(), desired, nil, false)
	if err != nil || action != reconcile.Create {
		t.Fatalf("Diff of a new object = %q, %v; want create", action, err)
	}
	if _, err := c.Get(t.Context(), reconcile.GVKCatalogSource, ns, "community"); !errors.Is(err, reconcile.ErrNotFound) {
		t.Fatalf("after the dry-run, Get = %v; want ErrNotFound: the dry-run created the object", err)
	}
	applied, err := c.Apply(t.Context(), desired, false)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, _ := unstructured.NestedString(applied.Object, "spec", "image"); got != desired.Object["spec"].(map[string]any)["image"] {
		t.Errorf("applied spec.image = %q", got)
	}
	events := kube.AuditEvents(t, mark).By(user)
	want := []string{
		"patch catalogsources " + ns + "/community 201 dry-run", // Diff
		"get catalogsources " + ns + "/community 404",           // Get
		"patch catalogsources " + ns + "/community 201",         // Apply
	}
	if diff := cmp.Diff(want, events.Strings()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}

	objs, err := c.List(t.Context(), reconcile.GVKCatalogSource)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(objs, func(o *unstructured.Unstructured) bool { return o.GetNamespace() == ns })
	if i < 0 {
		t.Fatalf("List did not return the CatalogSource in %s", ns)
	}
	mark = kube.AuditMark(t)
	action, err = c.Diff(t.Context(), desired, objs[i], false)
	if err != nil || action != reconcile.Unchanged {
		t.Fatalf("Diff after apply = %q, %v; want unchanged", action, err)
	}
	if events := kube.AuditEvents(t, mark).By(user); len(events) != 0 {
		t.Errorf("an unchanged Diff sent requests: %v", events.Strings())
	}
	if s := c.Stats(); s.Writes != 1 || s.DryRuns != 1 || s.Retries != 0 {
		t.Errorf("client stats = %+v; want 1 write, 1 dry-run, no retries", s)
	}
}

// TestNoOpForEveryKind applies one object of each kind Ferry writes, with
// its real CRD, and checks that the plan of the same object is Unchanged
// with no request: the managed-field comparison must read each CRD's list
// and map shapes right (atomic lists in mirror sets, a set-typed list in
// the samples Config, server defaults in ClusterCatalog).
func TestNoOpForEveryKind(t *testing.T) {
	t.Parallel()
	c, kube, user := kubeClient(t)
	ns := kube.NewNamespace(t)
	s := suffix()
	sources := []string{"registry.redhat.io/rhel9/postgresql-15", "quay.io/strimzi/operator", "registry.connect.redhat.com/crunchydata/postgres-operator"}
	for _, desired := range []*unstructured.Unstructured{
		mirrorSet("ImageDigestMirrorSet", "ferry-0-"+s, "mirror.example.com:5000/olm", sources...),
		mirrorSet("ImageTagMirrorSet", "ferry-0-"+s, "mirror.example.com:5000/olm", sources...),
		icsp("ferry-0-"+s, "mirror.example.com:5000/olm", sources...),
		catalogSource(ns, "certified", "mirror.example.com:5000/olm/certified-operator-index@"+digest("c")),
		clusterCatalog("certified-"+s, "mirror.example.com:5000/olm/certified-operator-index@"+digest("c")),
		samplesConfig("samples-"+s, "mirror.example.com:5000", "jenkins", "fuse7-java-openshift"),
		operatorHub("hub-"+s, "redhat-operators", "community-operators"),
	} {
		t.Run(desired.GetKind(), func(t *testing.T) {
			if _, err := c.Apply(t.Context(), desired, false); err != nil {
				t.Fatal(err)
			}
			l := live(t, kube, desired)
			mark := kube.AuditMark(t)
			action, err := c.Diff(t.Context(), desired, l, false)
			if err != nil || action != reconcile.Unchanged {
				t.Fatalf("Diff = %q, %v; want unchanged", action, err)
			}
			if events := kube.AuditEvents(t, mark).By(user); len(events) != 0 {
				t.Errorf("requests for an unchanged object: %v (managedFields %s)", events.Strings(), managedJSON(l))
			}
		})
	}
}

func managedJSON(obj *unstructured.Unstructured) string {
	var b strings.Builder
	for _, e := range obj.GetManagedFields() {
		b.WriteString(e.Manager + ":" + string(e.Operation) + " ")
		if e.FieldsV1 != nil {
			b.Write(e.FieldsV1.Raw)
		}
		b.WriteString("; ")
	}
	return b.String()
}

// TestDiffChanges covers what must not pass for unchanged: a changed
// value, a field removed from desired (an apply would delete it), a label
// removed, and a field added. Each is an Update decided by a dry-run that
// stores nothing.
func TestDiffChanges(t *testing.T) {
	t.Parallel()
	c, kube, user := kubeClient(t)
	ns := kube.NewNamespace(t)
	for _, tc := range []struct {
		name   string
		change func(obj *unstructured.Unstructured)
	}{
		{"changed image", func(o *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(o.Object, "mirror.example.com/olm/index@"+digest("v2"), "spec", "image")
		}},
		{"removed displayName", func(o *unstructured.Unstructured) {
			unstructured.RemoveNestedField(o.Object, "spec", "displayName")
		}},
		{"removed grpcPodConfig", func(o *unstructured.Unstructured) {
			unstructured.RemoveNestedField(o.Object, "spec", "grpcPodConfig")
		}},
		{"removed annotation", func(o *unstructured.Unstructured) {
			o.SetAnnotations(nil)
		}},
		{"added label", func(o *unstructured.Unstructured) {
			l := o.GetLabels()
			l["team"] = "platform"
			o.SetLabels(l)
		}},
		{"added priority", func(o *unstructured.Unstructured) {
			_ = unstructured.SetNestedField(o.Object, int64(-200), "spec", "priority")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			name := "cs-" + suffix()
			first := catalogSource(ns, name, "mirror.example.com/olm/index@"+digest("v1"))
			if _, err := c.Apply(t.Context(), first, false); err != nil {
				t.Fatal(err)
			}
			before := live(t, kube, first)
			desired := first.DeepCopy()
			tc.change(desired)

			mark := kube.AuditMark(t)
			action, err := c.Diff(t.Context(), desired, before, false)
			if err != nil || action != reconcile.Update {
				t.Fatalf("Diff = %q, %v; want update", action, err)
			}
			events := kube.AuditEvents(t, mark).By(user)
			want := []string{"patch catalogsources " + ns + "/" + name + " 200 dry-run"}
			if diff := cmp.Diff(want, events.Strings()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			after := live(t, kube, first)
			if after.GetResourceVersion() != before.GetResourceVersion() {
				t.Errorf("the dry-run wrote: resourceVersion %s -> %s", before.GetResourceVersion(), after.GetResourceVersion())
			}
		})
	}
}

// TestHandEditConflict: an administrator edits spec.image by hand (a
// kubectl edit is an update by field manager "kubectl-edit"). The plan and
// the apply report a conflict naming that manager, the apply is sent once
// and not retried, and force takes the field over.
func TestHandEditConflict(t *testing.T) {
	t.Parallel()
	c, kube, user := kubeClient(t)
	ns := kube.NewNamespace(t)
	desired := catalogSource(ns, "redhat-operators", "mirror.example.com/olm/redhat-operator-index@"+digest("v1"))
	if _, err := c.Apply(t.Context(), desired, false); err != nil {
		t.Fatal(err)
	}
	edit := []byte(`{"spec":{"image":"registry.redhat.io/redhat/redhat-operator-index:v4.20"}}`)
	cs := kube.Dynamic().Resource(knownKinds[reconcile.GVKCatalogSource].gvr).Namespace(ns)
	if _, err := cs.Patch(t.Context(), "redhat-operators", types.MergePatchType, edit, metav1.PatchOptions{FieldManager: "kubectl-edit"}); err != nil {
		t.Fatal(err)
	}
	desired = desired.DeepCopy()
	_ = unstructured.SetNestedField(desired.Object, "mirror.example.com/olm/redhat-operator-index@"+digest("v2"), "spec", "image")
	l := live(t, kube, desired)

	wantConflict := &reconcile.ConflictError{
		Object: "CatalogSource/" + ns + "/redhat-operators",
		Fields: []reconcile.FieldConflict{{Field: ".spec.image", Manager: "kubectl-edit"}},
	}
	mark := kube.AuditMark(t)
	_, err := c.Diff(t.Context(), desired, l, false)
	var ce *reconcile.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Diff = %v; want a *ConflictError", err)
	}
	if diff := cmp.Diff(wantConflict, ce); diff != "" {
		t.Errorf("Diff conflict (-want +got):\n%s", diff)
	}
	_, err = c.Apply(t.Context(), desired, false)
	if !errors.As(err, &ce) {
		t.Fatalf("Apply = %v; want a *ConflictError", err)
	}
	if diff := cmp.Diff(wantConflict, ce); diff != "" {
		t.Errorf("Apply conflict (-want +got):\n%s", diff)
	}
	if !strings.Contains(err.Error(), `.spec.image owned by "kubectl-edit"`) {
		t.Errorf("conflict message %q does not name the field and its manager", err)
	}
	events := kube.AuditEvents(t, mark).By(user)
	want := []string{
		"patch catalogsources " + ns + "/redhat-operators 409 dry-run",
		"patch catalogsources " + ns + "/redhat-operators 409",
	}
	if diff := cmp.Diff(want, events.Strings()); diff != "" {
		t.Errorf("a conflict must be sent once, never retried (-want +got):\n%s", diff)
	}

	action, err := c.Diff(t.Context(), desired, l, true)
	if err != nil || action != reconcile.Update {
		t.Fatalf("Diff with force = %q, %v; want update", action, err)
	}
	applied, err := c.Apply(t.Context(), desired, true)
	if err != nil {
		t.Fatalf("Apply with force: %v", err)
	}
	if got := owners(t, applied, ".spec.image"); !slices.Equal(got, []string{"ferry"}) {
		t.Errorf(".spec.image is owned by %v after force; want only ferry", got)
	}
	action, err = c.Diff(t.Context(), desired, applied, false)
	if err != nil || action != reconcile.Unchanged {
		t.Errorf("Diff after the takeover = %q, %v; want unchanged", action, err)
	}
}

// owners lists the managers whose managedFields entry holds the field
// (".spec.image" style).
func owners(t *testing.T, obj *unstructured.Unstructured, field string) []string {
	t.Helper()
	var out []string
	for _, e := range obj.GetManagedFields() {
		s, ok := parseFields(e)
		if !ok {
			t.Fatalf("unreadable managedFields entry of %s", e.Manager)
		}
		for p := range s.All() {
			if p.String() == field {
				out = append(out, e.Manager)
			}
		}
	}
	return out
}

func TestListOneRequestPerKind(t *testing.T) {
	t.Parallel()
	c, kube, user := kubeClient(t)
	ns1, ns2 := kube.NewNamespace(t), kube.NewNamespace(t)
	for _, obj := range []*unstructured.Unstructured{
		catalogSource(ns1, "a", "mirror.example.com/a@"+digest("a")),
		catalogSource(ns1, "b", "mirror.example.com/b@"+digest("b")),
		catalogSource(ns2, "a", "mirror.example.com/a@"+digest("a")),
	} {
		if _, err := c.Apply(t.Context(), obj, false); err != nil {
			t.Fatal(err)
		}
	}
	mark := kube.AuditMark(t)
	objs, err := c.List(t.Context(), reconcile.GVKCatalogSource)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range objs {
		if o.GetNamespace() == ns1 || o.GetNamespace() == ns2 {
			got = append(got, o.GetNamespace()+"/"+o.GetName())
		}
		if o.GetKind() != "CatalogSource" || o.GetAPIVersion() != "operators.coreos.com/v1alpha1" {
			t.Errorf("listed object %s has apiVersion %q kind %q", o.GetName(), o.GetAPIVersion(), o.GetKind())
		}
	}
	slices.Sort(got)
	want := []string{ns1 + "/a", ns1 + "/b", ns2 + "/a"}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("List = %v; want %v", got, want)
	}
	events := kube.AuditEvents(t, mark).By(user)
	if diff := cmp.Diff([]string{"list catalogsources 200"}, events.Strings()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}

	// A server that pages the answer is followed to the last page.
	c.listChunk = 2
	mark = kube.AuditMark(t)
	paged, err := c.List(t.Context(), reconcile.GVKCatalogSource)
	if err != nil {
		t.Fatal(err)
	}
	var pagedNames []string
	for _, o := range paged {
		if o.GetNamespace() == ns1 || o.GetNamespace() == ns2 {
			pagedNames = append(pagedNames, o.GetNamespace()+"/"+o.GetName())
		}
	}
	slices.Sort(pagedNames)
	if !slices.Equal(pagedNames, want) {
		t.Errorf("paged List = %v; want %v", pagedNames, want)
	}
	// Other tests add CatalogSources meanwhile, so the page count is not
	// fixed; that every page was asked for by its continue token is.
	events = kube.AuditEvents(t, mark).By(user)
	if len(events) < 2 {
		t.Fatalf("paged List sent %v; want at least 2 LISTs of 2", events.Strings())
	}
	for i, e := range events {
		if e.Verb != "list" || !strings.Contains(e.RequestURI, "limit=2") || (i > 0) != strings.Contains(e.RequestURI, "continue=") {
			t.Errorf("page %d: %s %s", i, e, e.RequestURI)
		}
	}
}

// TestNotServed: a kind whose CRD is not installed is ErrNotServed on
// every path, whether Ferry knows the kind (static table, told by the
// LIST's 404) or not (told by the group's resource list).
func TestNotServed(t *testing.T) {
	t.Parallel()
	c, kube, user := kubeClient(t)
	widget := schema.GroupVersionKind{Group: "widgets.ferry.dev", Version: "v1", Kind: "Widget"}
	gadget := schema.GroupVersionKind{Group: "widgets.ferry.dev", Version: "v1", Kind: "Gadget"}
	// Known to the client, absent from the server: an OpenShift kind on a
	// plain Kubernetes cluster is this case.
	c.mapper.known = map[schema.GroupVersionKind]mapping{gadget: {gvr("widgets.ferry.dev", "v1", "gadgets"), false}}

	mark := kube.AuditMark(t)
	for _, gvk := range []schema.GroupVersionKind{widget, gadget} {
		if _, err := c.List(t.Context(), gvk); !errors.Is(err, reconcile.ErrNotServed) {
			t.Errorf("List %s = %v; want ErrNotServed", gvk.Kind, err)
		}
		if _, err := c.Get(t.Context(), gvk, "", "x"); !errors.Is(err, reconcile.ErrNotServed) {
			t.Errorf("Get %s = %v; want ErrNotServed", gvk.Kind, err)
		}
		obj := &unstructured.Unstructured{Object: map[string]any{"metadata": map[string]any{"name": "x"}}}
		obj.SetGroupVersionKind(gvk)
		if _, err := c.Apply(t.Context(), obj, false); !errors.Is(err, reconcile.ErrNotServed) {
			t.Errorf("Apply %s = %v; want ErrNotServed", gvk.Kind, err)
		}
	}
	// The unknown kind costs one discovery of its group, once.
	events := kube.AuditEvents(t, mark).By(user)
	want := []string{"get 404", "list gadgets 404", "get gadgets x 404", "patch gadgets x 404"}
	if diff := cmp.Diff(want, events.Strings()); diff != "" {
		t.Errorf("requests (-want +got):\n%s", diff)
	}
}

func TestGetNotFound(t *testing.T) {
	t.Parallel()
	c, kube, _ := kubeClient(t)
	ns := kube.NewNamespace(t)
	_, err := c.Get(t.Context(), reconcile.GVKCatalogSource, ns, "absent")
	if !errors.Is(err, reconcile.ErrNotFound) || errors.Is(err, reconcile.ErrNotServed) {
		t.Errorf("Get = %v; want ErrNotFound only", err)
	}
	if _, err := c.Get(t.Context(), reconcile.GVKCatalogSource, "", "absent"); err == nil || !strings.Contains(err.Error(), "namespaced") {
		t.Errorf("Get without a namespace = %v; want an error saying the kind is namespaced", err)
	}
}

// TestDeleteChecksUID: Delete removes the object it was given, refuses a
// newer object of the same name, and accepts one already gone.
func TestDeleteChecksUID(t *testing.T) {
	t.Parallel()
	c, kube, user := kubeClient(t)
	ns := kube.NewNamespace(t)
	desired := catalogSource(ns, "old", "mirror.example.com/a@"+digest("a"))
	first, err := c.Apply(t.Context(), desired, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(t.Context(), first); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	if _, err := c.Get(t.Context(), reconcile.GVKCatalogSource, ns, "old"); !errors.Is(err, reconcile.ErrNotFound) {
		t.Fatalf("after Delete, Get = %v", err)
	}
	if err := c.Delete(t.Context(), first); err != nil {
		t.Errorf("Delete of an object already gone = %v; want nil", err)
	}
	second, err := c.Apply(t.Context(), desired, false)
	if err != nil {
		t.Fatal(err)
	}
	mark := kube.AuditMark(t)
	err = c.Delete(t.Context(), first) // stale: the UID of the first object
	if err == nil || !strings.Contains(err.Error(), "no longer the object read") {
		t.Fatalf("Delete with a stale UID = %v; want a refusal", err)
	}
	got, err := c.Get(t.Context(), reconcile.GVKCatalogSource, ns, "old")
	if err != nil || got.GetUID() != second.GetUID() {
		t.Fatalf("the newer object is gone or replaced: %v", err)
	}
	events := kube.AuditEvents(t, mark).By(user)
	want := []string{"delete catalogsources " + ns + "/old 409", "get catalogsources " + ns + "/old 200"}
	if diff := cmp.Diff(want, events.Strings()); diff != "" {
		t.Errorf("a refused delete must not be retried (-want +got):\n%s", diff)
	}
}

// TestKnownKindsMatchServer checks the static table against the API
// server's own discovery, with the real CRDs installed.
func TestKnownKindsMatchServer(t *testing.T) {
	t.Parallel()
	c, _, _ := kubeClient(t)
	for gvk, want := range knownKinds {
		m := &mapper{discover: c.mapper.discover}
		got, err := m.mapping(t.Context(), gvk)
		if err != nil {
			t.Errorf("%s: %v", gvk, err)
			continue
		}
		if got != want {
			t.Errorf("%s: table says %+v, server says %+v", gvk, want, got)
		}
	}
}

// TestSamplesConfigMap: the fixture publishes the samples operator's
// ConfigMap as the operator does, idempotently, and Get reads it back.
func TestSamplesConfigMap(t *testing.T) {
	t.Parallel()
	c, kube, _ := kubeClient(t)
	data := kube.SamplesConfigMap(t, "ocp-x86_64")
	if again := kube.SamplesConfigMap(t, "ocp-x86_64"); !cmp.Equal(data, again) {
		t.Error("a second SamplesConfigMap changed the data")
	}
	cm, err := c.Get(t.Context(), reconcile.GVKConfigMap, testenv.SamplesNamespace, testenv.SamplesConfigMapName)
	if err != nil {
		t.Fatal(err)
	}
	got, _, _ := unstructured.NestedStringMap(cm.Object, "data")
	if diff := cmp.Diff(data, got); diff != "" {
		t.Errorf("ConfigMap data (-fixture +server):\n%s", diff)
	}
	// A real entry: the operator's key is <imagestream>_<tag>.
	if img := got["dotnet-aspnet_8.0"]; img != "registry.access.redhat.com/ubi8/dotnet-80-runtime:8.0" {
		t.Errorf("dotnet-aspnet_8.0 = %q", img)
	}
	if len(got) < 100 {
		t.Errorf("%d entries; the x86_64 samples have hundreds", len(got))
	}
}

// TestConcurrentApply applies twenty objects from twenty goroutines through
// one Client (run it with -race), then plans them all as unchanged.
func TestConcurrentApply(t *testing.T) {
	t.Parallel()
	c, kube, user := kubeClient(t)
	ns := kube.NewNamespace(t)
	var objs []*unstructured.Unstructured
	for i := range 20 {
		objs = append(objs, catalogSource(ns, fmt.Sprintf("c%02d", i), "mirror.example.com/c@"+digest(fmt.Sprint(i))))
	}
	errs := make([]error, len(objs))
	var wg sync.WaitGroup
	for i, o := range objs {
		wg.Go(func() { _, errs[i] = c.Apply(t.Context(), o, false) })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	listed, err := c.List(t.Context(), reconcile.GVKCatalogSource)
	if err != nil {
		t.Fatal(err)
	}
	live := map[string]*unstructured.Unstructured{}
	for _, o := range listed {
		live[o.GetNamespace()+"/"+o.GetName()] = o
	}
	mark := kube.AuditMark(t)
	for _, o := range objs {
		wg.Go(func() {
			if action, err := c.Diff(t.Context(), o, live[ns+"/"+o.GetName()], false); err != nil || action != reconcile.Unchanged {
				t.Errorf("Diff %s = %q, %v", o.GetName(), action, err)
			}
		})
	}
	wg.Wait()
	if events := kube.AuditEvents(t, mark).By(user); len(events) != 0 {
		t.Errorf("unchanged objects cost requests: %v", events.Strings())
	}
	if s := c.Stats(); s.Writes != 20 || s.Requests["GET"] != 1 {
		t.Errorf("stats %+v; want 20 writes and one LIST", s)
	}
}
