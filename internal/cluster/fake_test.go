package cluster

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic/fake"
	clienttesting "k8s.io/client-go/testing"

	"github.com/ferry-gitops/ferry/reconcile"
)

// Unit tests on client-go's fake dynamic client: what requests the Client
// sends and how it reads the answers. The fake does not implement
// server-side apply, so reactors answer as the API server does (the
// answers' shapes are the ones the real server gave in kube_test.go).

func fakeClient(t *testing.T) (*Client, *fake.FakeDynamicClient) {
	t.Helper()
	listKinds := map[schema.GroupVersionResource]string{}
	for gvk, m := range knownKinds {
		listKinds[m.gvr] = gvk.Kind + "List"
	}
	dyn := fake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), listKinds)
	return newForDynamic(dyn, fastRetry), dyn
}

var csGVR = knownKinds[reconcile.GVKCatalogSource].gvr

// answer makes a reactor that returns results in turn, the last one
// repeated.
func answer(results ...func(clienttesting.Action) (runtime.Object, error)) clienttesting.ReactionFunc {
	n := 0
	return func(a clienttesting.Action) (bool, runtime.Object, error) {
		r := results[min(n, len(results)-1)]
		n++
		obj, err := r(a)
		return true, obj, err
	}
}

func echoApply(a clienttesting.Action) (runtime.Object, error) {
	obj := &unstructured.Unstructured{}
	if err := json.Unmarshal(a.(clienttesting.PatchAction).GetPatch(), &obj.Object); err != nil {
		return nil, err
	}
	obj.SetUID("uid-1")
	obj.SetResourceVersion("7")
	return obj, nil
}

func fail(err error) func(clienttesting.Action) (runtime.Object, error) {
	return func(clienttesting.Action) (runtime.Object, error) { return nil, err }
}

func TestApplyRequest(t *testing.T) {
	for _, tc := range []struct {
		name       string
		run        func(c *Client, obj *unstructured.Unstructured) error
		wantForce  bool
		wantDryRun []string
	}{
		{"apply", func(c *Client, o *unstructured.Unstructured) error {
			_, err := c.Apply(t.Context(), o, false)
			return err
		}, false, nil},
		{"apply with force", func(c *Client, o *unstructured.Unstructured) error {
			_, err := c.Apply(t.Context(), o, true)
			return err
		}, true, nil},
		{"diff of a new object", func(c *Client, o *unstructured.Unstructured) error {
			action, err := c.Diff(t.Context(), o, nil, false)
			if action != reconcile.Create {
				t.Errorf("Diff = %q; want create", action)
			}
			return err
		}, false, []string{"All"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, dyn := fakeClient(t)
			dyn.PrependReactor("patch", "catalogsources", answer(echoApply))
			desired := catalogSource("olm", "community", "mirror.example.com/index@"+digest("1"))
			// What a rendered file may carry and an apply must not.
			desired.SetResourceVersion("42")
			desired.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: "someone"}})
			before := desired.DeepCopy()
			if err := tc.run(c, desired); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(before, desired); diff != "" {
				t.Errorf("the caller's object was modified:\n%s", diff)
			}
			actions := dyn.Actions()
			if len(actions) != 1 {
				t.Fatalf("%d requests; want 1: %v", len(actions), actions)
			}
			p := actions[0].(clienttesting.PatchActionImpl)
			if p.GetPatchType() != types.ApplyPatchType || p.GetNamespace() != "olm" || p.GetName() != "community" || p.GetResource() != csGVR {
				t.Errorf("request: %s %s %s/%s", p.GetPatchType(), p.GetResource(), p.GetNamespace(), p.GetName())
			}
			opts := p.GetPatchOptions()
			if opts.FieldManager != "ferry" || (opts.Force != nil && *opts.Force) != tc.wantForce || !cmp.Equal(opts.DryRun, tc.wantDryRun) {
				t.Errorf("patch options = fieldManager %q force %v dryRun %v", opts.FieldManager, opts.Force, opts.DryRun)
			}
			for _, f := range []string{"resourceVersion", "managedFields"} {
				if strings.Contains(string(p.GetPatch()), f) {
					t.Errorf("the apply body carries metadata.%s: %s", f, p.GetPatch())
				}
			}
		})
	}
}

func TestApplyConflict(t *testing.T) {
	c, dyn := fakeClient(t)
	conflict := apierrors.NewApplyConflict([]metav1.StatusCause{
		{Type: metav1.CauseTypeFieldManagerConflict, Field: ".spec.image", Message: `conflict with "kubectl-edit" using operators.coreos.com/v1alpha1`},
		{Type: metav1.CauseTypeFieldManagerConflict, Field: ".spec.displayName", Message: `conflict with "olm" with subresource "status" using v1 at 2026-01-02T03:04:05Z`},
		{Type: metav1.CauseTypeFieldManagerConflict, Field: ".spec.publisher", Message: `conflict with "argocd-controller"`},
	}, "Apply failed with 3 conflicts")
	dyn.PrependReactor("patch", "catalogsources", answer(fail(conflict)))
	_, err := c.Apply(t.Context(), catalogSource("olm", "cs", "i@"+digest("1")), false)
	var ce *reconcile.ConflictError
	if !errors.As(err, &ce) {
		t.Fatalf("Apply = %v; want a *ConflictError", err)
	}
	want := &reconcile.ConflictError{Object: "CatalogSource/olm/cs", Fields: []reconcile.FieldConflict{
		{Field: ".spec.displayName", Manager: "olm"},
		{Field: ".spec.image", Manager: "kubectl-edit"},
		{Field: ".spec.publisher", Manager: "argocd-controller"},
	}}
	if diff := cmp.Diff(want, ce); diff != "" {
		t.Errorf("conflict (-want +got):\n%s", diff)
	}
	if n := len(dyn.Actions()); n != 1 {
		t.Errorf("an apply conflict was sent %d times; it must never be retried", n)
	}
	if s := c.Stats(); s.Retries != 0 {
		t.Errorf("stats count %d retries", s.Retries)
	}
}

// TestApplyRetriesOptimisticConflict: a 409 without field conflicts means
// another writer got in between; the same apply is sent again.
func TestApplyRetriesOptimisticConflict(t *testing.T) {
	c, dyn := fakeClient(t)
	modified := apierrors.NewConflict(schema.GroupResource{Group: "operators.coreos.com", Resource: "catalogsources"}, "cs",
		errors.New("the object has been modified; please apply your changes to the latest version and try again"))
	dyn.PrependReactor("patch", "catalogsources", answer(fail(modified), fail(modified), echoApply))
	if _, err := c.Apply(t.Context(), catalogSource("olm", "cs", "i@"+digest("1")), false); err != nil {
		t.Fatal(err)
	}
	if n := len(dyn.Actions()); n != 3 {
		t.Errorf("%d apply requests; want 3", n)
	}
	if s := c.Stats(); s.Retries != 2 {
		t.Errorf("stats count %d retries; want 2", s.Retries)
	}

	c, dyn = fakeClient(t)
	dyn.PrependReactor("patch", "catalogsources", answer(fail(modified)))
	_, err := c.Apply(t.Context(), catalogSource("olm", "cs", "i@"+digest("1")), false)
	if !apierrors.IsConflict(err) {
		t.Fatalf("Apply = %v; want the conflict after the retries", err)
	}
	if n := len(dyn.Actions()); n != fastRetry.Attempts {
		t.Errorf("%d apply requests; want %d (the policy's attempts)", n, fastRetry.Attempts)
	}
}

var notServed = &apierrors.StatusError{ErrStatus: metav1.Status{
	Status: metav1.StatusFailure, Code: http.StatusNotFound, Reason: metav1.StatusReasonNotFound,
	Message: "the server could not find the requested resource", Details: &metav1.StatusDetails{},
}}

func TestDelete(t *testing.T) {
	obj := catalogSource("olm", "cs", "i@"+digest("1"))
	obj.SetUID("uid-1")
	for _, tc := range []struct {
		name    string
		answer  error
		wantErr string // "" = success
		is      error
	}{
		{name: "deleted"},
		{name: "already gone", answer: apierrors.NewNotFound(schema.GroupResource{Resource: "catalogsources"}, "cs")},
		{name: "replaced", answer: apierrors.NewConflict(schema.GroupResource{Resource: "catalogsources"}, "cs", errors.New("Precondition failed: UID in precondition: uid-1, UID in object meta: uid-2")), wantErr: "no longer the object read"},
		{name: "not served", answer: notServed, wantErr: "not served", is: reconcile.ErrNotServed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, dyn := fakeClient(t)
			dyn.PrependReactor("delete", "catalogsources", answer(fail(tc.answer)))
			err := c.Delete(t.Context(), obj)
			if tc.wantErr == "" && err != nil || tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)) {
				t.Fatalf("Delete = %v; want error containing %q", err, tc.wantErr)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("Delete = %v; want it to wrap %v", err, tc.is)
			}
			actions := dyn.Actions()
			if len(actions) != 1 {
				t.Fatalf("%d requests; want 1", len(actions))
			}
			pre := actions[0].(clienttesting.DeleteActionImpl).GetDeleteOptions().Preconditions
			if pre == nil || pre.UID == nil || *pre.UID != "uid-1" {
				t.Errorf("delete sent without the UID precondition: %+v", pre)
			}
		})
	}
	c, dyn := fakeClient(t)
	noUID := catalogSource("olm", "cs", "i@"+digest("1"))
	if err := c.Delete(t.Context(), noUID); err == nil || !strings.Contains(err.Error(), "no metadata.uid") {
		t.Errorf("Delete without a UID = %v", err)
	}
	if len(dyn.Actions()) != 0 {
		t.Errorf("Delete without a UID sent a request")
	}
}

func TestListPages(t *testing.T) {
	c, dyn := fakeClient(t)
	page := func(cont string, names ...string) func(clienttesting.Action) (runtime.Object, error) {
		return func(clienttesting.Action) (runtime.Object, error) {
			l := &unstructured.UnstructuredList{Object: map[string]any{"apiVersion": "operators.coreos.com/v1alpha1", "kind": "CatalogSourceList"}}
			l.SetContinue(cont)
			for _, n := range names {
				item := catalogSource("olm", n, "i@"+digest(n))
				item.SetAPIVersion("")
				item.SetKind("")
				l.Items = append(l.Items, *item)
			}
			return l, nil
		}
	}
	dyn.PrependReactor("list", "catalogsources", answer(page("p2", "a", "b"), page("p3", "c"), page("", "d")))
	objs, err := c.List(t.Context(), reconcile.GVKCatalogSource)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, o := range objs {
		names = append(names, o.GetName())
		if o.GroupVersionKind() != reconcile.GVKCatalogSource {
			t.Errorf("item %s has kind %v", o.GetName(), o.GroupVersionKind())
		}
	}
	if diff := cmp.Diff([]string{"a", "b", "c", "d"}, names); diff != "" {
		t.Errorf("items (-want +got):\n%s", diff)
	}
	if n := len(dyn.Actions()); n != 3 {
		t.Errorf("%d LIST requests for three pages", n)
	}

	c, dyn = fakeClient(t)
	dyn.PrependReactor("list", "catalogsources", answer(fail(notServed)))
	if _, err := c.List(t.Context(), reconcile.GVKCatalogSource); !errors.Is(err, reconcile.ErrNotServed) {
		t.Errorf("List of an unserved kind = %v; want ErrNotServed", err)
	}
}

func TestGetErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer error
		is     error
	}{
		{"missing object", apierrors.NewNotFound(schema.GroupResource{Group: "operators.coreos.com", Resource: "catalogsources"}, "cs"), reconcile.ErrNotFound},
		{"unserved kind", notServed, reconcile.ErrNotServed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, dyn := fakeClient(t)
			dyn.PrependReactor("get", "catalogsources", answer(fail(tc.answer)))
			_, err := c.Get(t.Context(), reconcile.GVKCatalogSource, "olm", "cs")
			if !errors.Is(err, tc.is) {
				t.Errorf("Get = %v; want %v", err, tc.is)
			}
		})
	}
}

func TestScopeChecked(t *testing.T) {
	c, dyn := fakeClient(t)
	noNS := catalogSource("", "cs", "i@"+digest("1"))
	if _, err := c.Apply(t.Context(), noNS, false); err == nil || !strings.Contains(err.Error(), "no metadata.namespace") {
		t.Errorf("Apply of a CatalogSource without namespace = %v", err)
	}
	withNS := mirrorSet("ImageDigestMirrorSet", "m", "mirror.example.com", "quay.io/a/b")
	withNS.SetNamespace("olm")
	if _, err := c.Apply(t.Context(), withNS, false); err == nil || !strings.Contains(err.Error(), "cluster-scoped") {
		t.Errorf("Apply of an ImageDigestMirrorSet with a namespace = %v", err)
	}
	unknown := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "example.com/v1", "kind": "Widget", "metadata": map[string]any{"name": "w"}}}
	if _, err := c.Apply(t.Context(), unknown, false); err == nil || !strings.Contains(err.Error(), "Widget") {
		t.Errorf("Apply of an unknown kind without discovery = %v", err)
	}
	if n := len(dyn.Actions()); n != 0 {
		t.Errorf("refused objects sent %d requests", n)
	}
}

// TestDiffUnchangedSendsNothing: the managedFields proof needs no server.
func TestDiffUnchangedSendsNothing(t *testing.T) {
	c, dyn := fakeClient(t)
	desired := catalogSource("olm", "cs", "i@"+digest("1"))
	l := desired.DeepCopy()
	l.SetUID("uid-1")
	l.SetManagedFields([]metav1.ManagedFieldsEntry{{
		Manager: "ferry", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "operators.coreos.com/v1alpha1", FieldsType: "FieldsV1",
		FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{"f:annotations":{"f:ferry.dev/catalog":{}},"f:labels":{"f:app.kubernetes.io/managed-by":{},"f:ferry.dev/instance":{}}},` +
			`"f:spec":{"f:displayName":{},"f:grpcPodConfig":{"f:securityContextConfig":{}},"f:image":{},"f:publisher":{},"f:sourceType":{},"f:updateStrategy":{"f:registryPoll":{"f:interval":{}}}}}`)},
	}})
	action, err := c.Diff(t.Context(), desired, l, false)
	if err != nil || action != reconcile.Unchanged {
		t.Fatalf("Diff = %q, %v; want unchanged", action, err)
	}
	if n := len(dyn.Actions()); n != 0 {
		t.Errorf("an unchanged Diff sent %d requests", n)
	}
	other := desired.DeepCopy()
	other.SetName("other")
	if _, err := c.Diff(t.Context(), other, l, false); err == nil {
		t.Error("Diff of one object against another's live state was accepted")
	}
}

func TestConflictManager(t *testing.T) {
	for msg, want := range map[string]string{
		`conflict with "kubectl-edit" using operators.coreos.com/v1alpha1`:      "kubectl-edit",
		`conflict with "kubectl-edit"`:                                          "kubectl-edit",
		`conflict with "olm" with subresource "status" using v1 at 2026-01-02Z`: "olm",
		`conflict with "name \"quoted\" inside" using v1`:                       `name "quoted" inside`,
		`conflict with kubectl-edit`:                                            `conflict with kubectl-edit`,
		`something else entirely`:                                               `something else entirely`,
	} {
		if got := conflictManager(msg); got != want {
			t.Errorf("conflictManager(%q) = %q; want %q", msg, got, want)
		}
	}
}
