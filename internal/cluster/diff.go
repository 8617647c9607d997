package cluster

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/structured-merge-diff/v6/fieldpath"
	"sigs.k8s.io/structured-merge-diff/v6/value"

	"github.com/ferry-gitops/ferry/reconcile"
)

// Diff implements reconcile.Cluster: Unchanged without a request when
// managedFields prove it (unchanged), else a server-side dry-run apply.
func (c *Client) Diff(ctx context.Context, desired, live *unstructured.Unstructured, force bool) (reconcile.Action, error) {
	if live != nil {
		if err := sameObject(desired, live); err != nil {
			return "", err
		}
		if unchanged(desired, live) {
			return reconcile.Unchanged, nil
		}
	}
	after, err := c.apply(ctx, desired, force, true)
	if err != nil {
		return "", err
	}
	switch {
	case live == nil:
		return reconcile.Create, nil
	case sameStored(live, after):
		return reconcile.Unchanged, nil
	}
	return reconcile.Update, nil
}

func sameObject(desired, live *unstructured.Unstructured) error {
	d, l := desired.GroupVersionKind(), live.GroupVersionKind()
	if d.GroupKind() != l.GroupKind() || desired.GetNamespace() != live.GetNamespace() || desired.GetName() != live.GetName() {
		return fmt.Errorf("diff: desired %s is compared with live %s",
			objectName(d.Kind, desired.GetNamespace(), desired.GetName()), objectName(l.Kind, live.GetNamespace(), live.GetName()))
	}
	return nil
}

// unchanged is true when a server-side apply of desired by Ferry would
// change nothing: live holds every field of desired with the same value,
// and the fields Ferry owns (its Apply entry in managedFields) are exactly
// desired's fields. The second half matters: a field Ferry applied before
// and desired no longer has would be removed by the apply, although live
// holds everything desired asks for.
//
// Desired's field set is computed in the shape the server records, which
// depends on the schema: an atomic list or map is one field, a list of
// type set or map has one field per element (v:"x", k:{"name":"y"}).
// Ferry does not fetch OpenAPI schemas for that (more requests than the
// whole no-op apply); it reads the shape off the managed set itself, where
// desired and the managed set describe the same field. Where they disagree
// the answer is false, and the dry-run decides: a wrong "changed" costs a
// request, a wrong "unchanged" would skip a change, so every doubt falls on
// the safe side. (structured-merge-diff's DeducedParseableType would be
// simpler, but it takes every list to be atomic and so never matches a
// list of type set or map.)
func unchanged(desired, live *unstructured.Unstructured) bool {
	owned, ok := ferryFields(live, desired.GetAPIVersion())
	if !ok {
		return false
	}
	w := &walker{got: &fieldpath.Set{}}
	if !w.object(owned, desired.Object, live.Object) {
		return false
	}
	return w.got.Equals(owned)
}

// ferryFields parses the field set of Ferry's Apply entry in live's
// managedFields. No entry, an entry of another API version (an apply would
// rewrite it) or an unreadable one: false.
func ferryFields(live *unstructured.Unstructured, apiVersion string) (*fieldpath.Set, bool) {
	for _, e := range live.GetManagedFields() {
		if e.Manager != reconcile.FieldManager || e.Operation != metav1.ManagedFieldsOperationApply || e.Subresource != "" {
			continue
		}
		if e.APIVersion != apiVersion {
			return nil, false
		}
		return parseFields(e)
	}
	return nil, false
}

// parseFields reads a managedFields entry's field set.
func parseFields(e metav1.ManagedFieldsEntry) (*fieldpath.Set, bool) {
	if e.FieldsType != "FieldsV1" || e.FieldsV1 == nil {
		return nil, false
	}
	s := &fieldpath.Set{}
	if err := s.FromJSON(bytes.NewReader(e.FieldsV1.Raw)); err != nil {
		return nil, false
	}
	return s, true
}

// walker walks desired beside live and the managed set, collecting in got
// the paths desired sets, as the server would record them.
type walker struct {
	got  *fieldpath.Set
	path fieldpath.Path
}

// ignoredTop and ignoredMetadata are left out of field sets by the server
// (apimachinery's stripMeta).
var (
	ignoredTop      = map[string]bool{"apiVersion": true, "kind": true}
	ignoredMetadata = map[string]bool{"name": true, "namespace": true}
)

func (w *walker) object(owned *fieldpath.Set, desired, live map[string]any) bool {
	ok := true
	for _, k := range sortedKeys(desired) {
		if ignoredTop[k] {
			continue
		}
		if k == "metadata" {
			dm, isMap := desired[k].(map[string]any)
			lm, _ := live[k].(map[string]any)
			if !isMap {
				return false
			}
			pe := fieldpath.PathElement{FieldName: ptr("metadata")}
			sub, _ := owned.Children.Get(pe)
			if sub == nil {
				sub = &fieldpath.Set{}
			}
			w.push(pe)
			for _, mk := range sortedKeys(dm) {
				if ignoredMetadata[mk] || slices.Contains(serverMetadata, mk) {
					continue
				}
				lv, has := lm[mk]
				ok = w.field(sub, fieldpath.PathElement{FieldName: ptr(mk)}, dm[mk], lv, has) && ok
			}
			w.pop()
			continue
		}
		lv, has := live[k]
		ok = w.field(owned, fieldpath.PathElement{FieldName: ptr(k)}, desired[k], lv, has) && ok
	}
	return ok
}

// field handles the child pe of the current path: node is the managed set
// under the current path.
func (w *walker) field(node *fieldpath.Set, pe fieldpath.PathElement, d, l any, lok bool) bool {
	w.push(pe)
	defer w.pop()
	member := node.Members.Has(pe)
	child, hasChildren := node.Children.Get(pe)
	if !hasChildren {
		// A leaf: a scalar, or an atomic list or map, which an apply
		// replaces whole; or a field Ferry does not own yet, which got
		// then has and the managed set lacks.
		w.insert()
		return lok && equal(d, l)
	}
	if member {
		w.insert()
	}
	switch dv := d.(type) {
	case map[string]any:
		lm, isMap := l.(map[string]any)
		if !lok || !isMap {
			return false
		}
		ok := true
		for _, k := range sortedKeys(dv) {
			lv, has := lm[k]
			ok = w.field(child, fieldpath.PathElement{FieldName: ptr(k)}, dv[k], lv, has) && ok
		}
		return ok
	case []any:
		ll, isList := l.([]any)
		if !lok || !isList {
			return false
		}
		return w.list(child, dv, ll)
	}
	// A scalar where Ferry owns fields below: the shape changed.
	w.insert()
	return false
}

// list handles a list that is not atomic: its managed set holds one entry
// per element, by value (a set) or by key fields (a map).
func (w *walker) list(node *fieldpath.Set, d, l []any) bool {
	sample, ok := firstElement(node)
	if !ok {
		return false
	}
	switch {
	case sample.Value != nil:
		all := true
		for _, e := range d {
			v := value.NewValueInterface(e)
			w.push(fieldpath.PathElement{Value: &v})
			w.insert()
			w.pop()
			all = all && slices.ContainsFunc(l, func(x any) bool { return equal(e, x) })
		}
		return all
	case sample.Key != nil:
		names := make([]string, len(*sample.Key))
		for i, f := range *sample.Key {
			names[i] = f.Name
		}
		all := true
		for _, e := range d {
			key, ok := keyOf(e, names)
			if !ok {
				return false
			}
			pe := fieldpath.PathElement{Key: &key}
			var le any
			found := false
			for _, x := range l {
				if k, ok := keyOf(x, names); ok && k.Equals(key) {
					le, found = x, true
					break
				}
			}
			// Each element is recorded as a member of its own ("."), as
			// the server does, besides its fields.
			w.push(pe)
			w.insert()
			w.pop()
			em, isMap := e.(map[string]any)
			if !isMap {
				return false
			}
			elem, _ := node.Children.Get(pe)
			if elem == nil {
				elem = &fieldpath.Set{}
			}
			lm, _ := le.(map[string]any)
			w.push(pe)
			for _, k := range sortedKeys(em) {
				lv, has := lm[k]
				all = w.field(elem, fieldpath.PathElement{FieldName: ptr(k)}, em[k], lv, has) && all
			}
			w.pop()
			all = all && found
		}
		return all
	}
	return false
}

// firstElement returns some path element directly under node: all of a
// list's elements are of one kind.
func firstElement(node *fieldpath.Set) (fieldpath.PathElement, bool) {
	for pe := range node.Members.All() {
		return pe, true
	}
	for pe := range node.Children.All() {
		return pe, true
	}
	return fieldpath.PathElement{}, false
}

// keyOf builds the key of a list-map element from its key fields.
func keyOf(e any, names []string) (value.FieldList, bool) {
	m, ok := e.(map[string]any)
	if !ok {
		return nil, false
	}
	key := make(value.FieldList, 0, len(names))
	for _, n := range names {
		v, ok := m[n]
		if !ok {
			return nil, false
		}
		key = append(key, value.Field{Name: n, Value: value.NewValueInterface(v)})
	}
	key.Sort()
	return key, true
}

func (w *walker) push(pe fieldpath.PathElement) { w.path = append(w.path, pe) }
func (w *walker) pop()                          { w.path = w.path[:len(w.path)-1] }
func (w *walker) insert()                       { w.got.Insert(w.path.Copy()) }

// equal compares two decoded JSON values, numbers by value (the same
// number can arrive as int64 from one decoder and float64 from another).
func equal(a, b any) bool {
	return value.Equals(value.NewValueInterface(a), value.NewValueInterface(b))
}

// sameStored is true when the dry-run result after is what the server
// already stores as live: the same content and the same ownership.
// resourceVersion, generation and managedFields timestamps are left out;
// a dry-run may report them moved although nothing would be written.
func sameStored(live, after *unstructured.Unstructured) bool {
	return reflect.DeepEqual(storedForm(live), storedForm(after))
}

func storedForm(obj *unstructured.Unstructured) map[string]any {
	o := obj.DeepCopy()
	unstructured.RemoveNestedField(o.Object, "metadata", "resourceVersion")
	unstructured.RemoveNestedField(o.Object, "metadata", "generation")
	unstructured.RemoveNestedField(o.Object, "metadata", "managedFields")
	var owners []string
	for _, e := range obj.GetManagedFields() {
		fields := ""
		if s, ok := parseFields(e); ok {
			fields = s.String()
		} else if e.FieldsV1 != nil {
			fields = string(e.FieldsV1.Raw)
		}
		owners = append(owners, strings.Join([]string{e.Manager, string(e.Operation), e.Subresource, e.APIVersion, fields}, "\x00"))
	}
	slices.Sort(owners)
	return map[string]any{"object": normalize(o.Object), "owners": owners}
}

// normalize makes numbers comparable with reflect.DeepEqual: JSON integers
// decode to int64, but a float64 holding an integer means the same.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			out[k] = normalize(e)
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	case float64:
		if x == float64(int64(x)) {
			return int64(x)
		}
	case int:
		return int64(x)
	case int32:
		return int64(x)
	}
	return v
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func ptr[T any](v T) *T { return &v }

func sortConflicts(fs []reconcile.FieldConflict) {
	slices.SortFunc(fs, func(a, b reconcile.FieldConflict) int {
		if c := strings.Compare(a.Field, b.Field); c != 0 {
			return c
		}
		return strings.Compare(a.Manager, b.Manager)
	})
}
