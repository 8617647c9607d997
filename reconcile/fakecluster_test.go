package reconcile

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
)

// fakeCluster is an in-process Cluster for the cluster step's unit tests:
// objects in a map, server-side apply reduced to "Ferry's fields replace
// the live ones", and a log of every request so tests can assert order and
// count. The real API server is exercised by internal/cluster's tests.
type fakeCluster struct {
	mu        sync.Mutex
	objs      map[string]*unstructured.Unstructured
	notServed map[schema.GroupVersionKind]bool
	// owners are fields another manager owns, by object key: applying a
	// different value without force is a conflict.
	owners map[string][]FieldConflict
	// onGet plays a controller's part when an object is read (OLM marking
	// a CatalogSource READY, the samples operator finishing a removal).
	onGet func(u *unstructured.Unstructured)
	log   []string
	clock time.Time
	uid   int
}

var _ Cluster = (*fakeCluster)(nil)

func newFakeCluster() *fakeCluster {
	return &fakeCluster{objs: map[string]*unstructured.Unstructured{}, notServed: map[schema.GroupVersionKind]bool{}, owners: map[string][]FieldConflict{}, clock: time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)}
}

func fakeKey(u *unstructured.Unstructured) string {
	return objectKey(u.GroupVersionKind(), u.GetNamespace(), u.GetName())
}

// put stores an object as another manager would have created it.
func (f *fakeCluster) put(u *unstructured.Unstructured) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.uid++
	u.SetUID(types.UID(fmt.Sprint(f.uid)))
	f.objs[fakeKey(u)] = u
}

func (f *fakeCluster) writes() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, l := range f.log {
		if l[:4] != "list" && l[:3] != "get" {
			out = append(out, l)
		}
	}
	return out
}

func (f *fakeCluster) resetLog() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = nil
}

func (f *fakeCluster) List(_ context.Context, gvk schema.GroupVersionKind) ([]*unstructured.Unstructured, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, "list "+gvk.Kind)
	if f.notServed[gvk] {
		return nil, fmt.Errorf("%s: %w", gvk.Kind, ErrNotServed)
	}
	var out []*unstructured.Unstructured
	for _, u := range f.objs {
		if u.GroupVersionKind() == gvk {
			out = append(out, u.DeepCopy())
		}
	}
	sort.Slice(out, func(i, j int) bool { return fakeKey(out[i]) < fakeKey(out[j]) })
	return out, nil
}

// sameFields: live has every field of desired with the same value.
func sameFields(desired, live any) bool {
	switch d := desired.(type) {
	case map[string]any:
		l, ok := live.(map[string]any)
		if !ok {
			return false
		}
		for k, v := range d {
			if k == "creationTimestamp" && v == nil {
				continue
			}
			if !sameFields(v, l[k]) {
				return false
			}
		}
		return true
	default:
		return reflect.DeepEqual(desired, live)
	}
}

func (f *fakeCluster) Diff(_ context.Context, desired, live *unstructured.Unstructured, force bool) (Action, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if live == nil {
		return Create, nil
	}
	cur := f.objs[fakeKey(desired)]
	if cur == nil {
		return Create, nil
	}
	if sameFields(desired.Object["spec"], cur.Object["spec"]) && sameFields(desired.Object["metadata"], cur.Object["metadata"]) {
		return Unchanged, nil
	}
	if c := f.owners[fakeKey(desired)]; len(c) > 0 && !force {
		f.log = append(f.log, "dry-run "+fakeKey(desired))
		return "", &ConflictError{Object: fakeKey(desired), Fields: c}
	}
	return Update, nil
}

func (f *fakeCluster) Apply(_ context.Context, desired *unstructured.Unstructured, force bool) (*unstructured.Unstructured, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := fakeKey(desired)
	if c := f.owners[key]; len(c) > 0 && !force {
		return nil, &ConflictError{Object: key, Fields: c}
	}
	delete(f.owners, key)
	f.log = append(f.log, "apply "+key)
	u := desired.DeepCopy()
	if cur := f.objs[key]; cur != nil {
		u.SetUID(cur.GetUID())
		if st, ok := cur.Object["status"]; ok {
			u.Object["status"] = st
		}
	} else {
		f.uid++
		u.SetUID(types.UID(fmt.Sprint(f.uid)))
	}
	f.clock = f.clock.Add(time.Second)
	at := metav1.NewTime(f.clock)
	u.SetManagedFields([]metav1.ManagedFieldsEntry{{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply, Time: &at}})
	f.objs[key] = u
	return u.DeepCopy(), nil
}

func (f *fakeCluster) Delete(_ context.Context, obj *unstructured.Unstructured) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	key := fakeKey(obj)
	cur := f.objs[key]
	if cur == nil {
		return fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if cur.GetUID() != obj.GetUID() {
		return fmt.Errorf("%s: UID precondition failed", key)
	}
	f.log = append(f.log, "delete "+key)
	delete(f.objs, key)
	return nil
}

func (f *fakeCluster) Get(_ context.Context, gvk schema.GroupVersionKind, ns, name string) (*unstructured.Unstructured, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log = append(f.log, "get "+objectKey(gvk, ns, name))
	u := f.objs[objectKey(gvk, ns, name)]
	if u == nil {
		return nil, fmt.Errorf("%s: %w", name, ErrNotFound)
	}
	if f.onGet != nil {
		f.onGet(u)
	}
	return u.DeepCopy(), nil
}
