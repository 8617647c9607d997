package cluster

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// The desired object of TestUnchanged has a field of every shape the
// server records differently: scalars, an atomic list (one field), a list
// of type set (one field per value), a list of type map (one per key, each
// element a member of its own) and a nested map.
const unchangedDesired = `
apiVersion: example.com/v1
kind: Thing
metadata:
  name: t
  labels: {app: ferry}
spec:
  scalar: one
  num: 3
  atomicList: [a, b]
  setList: [red, green]
  mapList:
  - {name: p, port: 80}
  - {name: q, port: 81}
  nested: {k: v}
`

// The live object holds more than desired: a defaulted field, and list
// elements other managers added to the set and the map list.
const unchangedLive = `
apiVersion: example.com/v1
kind: Thing
metadata:
  name: t
  uid: u1
  resourceVersion: "9"
  labels: {app: ferry, team: other}
spec:
  scalar: one
  num: 3
  defaulted: d
  atomicList: [a, b]
  setList: [red, blue, green]
  mapList:
  - {name: p, port: 80}
  - {name: r, port: 90}
  - {name: q, port: 81, protocol: TCP}
  nested: {k: v}
`

const unchangedOwned = `{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{` +
	`"f:scalar":{},"f:num":{},"f:atomicList":{},"f:setList":{"v:\"red\"":{},"v:\"green\"":{}},` +
	`"f:mapList":{"k:{\"name\":\"p\"}":{".":{},"f:name":{},"f:port":{}},"k:{\"name\":\"q\"}":{".":{},"f:name":{},"f:port":{}}},` +
	`"f:nested":{"f:k":{}}}}`

func TestUnchanged(t *testing.T) {
	for _, tc := range []struct {
		name    string
		desired func(o map[string]any)
		live    func(o map[string]any)
		owned   string // replaces unchangedOwned when set
		entry   func(e *metav1.ManagedFieldsEntry)
		want    bool
	}{
		{name: "same", want: true},
		{name: "a number decoded as float", live: func(o map[string]any) { spec(o)["num"] = float64(3) }, want: true},
		{name: "desired carries server metadata", desired: func(o map[string]any) {
			md := o["metadata"].(map[string]any)
			md["resourceVersion"], md["creationTimestamp"] = "1", nil
		}, want: true},
		{name: "scalar differs", live: func(o map[string]any) { spec(o)["scalar"] = "two" }},
		{name: "scalar missing from live", live: func(o map[string]any) { delete(spec(o), "scalar") }},
		{name: "atomic list has more in live", live: func(o map[string]any) { spec(o)["atomicList"] = []any{"a", "b", "c"} }},
		{name: "atomic list reordered in live", live: func(o map[string]any) { spec(o)["atomicList"] = []any{"b", "a"} }},
		{name: "set element missing from live", live: func(o map[string]any) { spec(o)["setList"] = []any{"red", "blue"} }},
		{name: "set element added to desired", desired: func(o map[string]any) { spec(o)["setList"] = []any{"red", "green", "blue"} }},
		{name: "set element removed from desired", desired: func(o map[string]any) { spec(o)["setList"] = []any{"red"} }},
		{name: "map-list element field differs", live: func(o map[string]any) {
			spec(o)["mapList"] = []any{map[string]any{"name": "p", "port": int64(8080)}, map[string]any{"name": "q", "port": int64(81)}}
		}},
		{name: "map-list element removed from desired", desired: func(o map[string]any) {
			spec(o)["mapList"] = []any{map[string]any{"name": "p", "port": int64(80)}}
		}},
		{name: "map-list element without its key", desired: func(o map[string]any) {
			spec(o)["mapList"] = []any{map[string]any{"port": int64(80)}, map[string]any{"name": "q", "port": int64(81)}}
		}},
		{name: "nested field removed from desired", desired: func(o map[string]any) { delete(spec(o), "nested") }},
		{name: "label removed from desired", desired: func(o map[string]any) { delete(o["metadata"].(map[string]any), "labels") }},
		{name: "field added to desired", desired: func(o map[string]any) { spec(o)["defaulted"] = "d" }},
		{name: "scalar where ferry owns a map", desired: func(o map[string]any) { spec(o)["nested"] = "flat" }},
		{name: "ferry owns more than desired", owned: `{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{` +
			`"f:scalar":{},"f:num":{},"f:defaulted":{},"f:atomicList":{},"f:setList":{"v:\"red\"":{},"v:\"green\"":{}},` +
			`"f:mapList":{"k:{\"name\":\"p\"}":{".":{},"f:name":{},"f:port":{}},"k:{\"name\":\"q\"}":{".":{},"f:name":{},"f:port":{}}},` +
			`"f:nested":{"f:k":{}}}}`},
		{name: "set recorded as atomic", owned: `{"f:metadata":{"f:labels":{"f:app":{}}},"f:spec":{` +
			`"f:scalar":{},"f:num":{},"f:atomicList":{},"f:setList":{},` +
			`"f:mapList":{"k:{\"name\":\"p\"}":{".":{},"f:name":{},"f:port":{}},"k:{\"name\":\"q\"}":{".":{},"f:name":{},"f:port":{}}},` +
			`"f:nested":{"f:k":{}}}}`},
		{name: "unreadable managed fields", owned: `{"f:spec":`},
		{name: "entry of another API version", entry: func(e *metav1.ManagedFieldsEntry) { e.APIVersion = "example.com/v1beta1" }},
		{name: "entry of an update, not an apply", entry: func(e *metav1.ManagedFieldsEntry) { e.Operation = metav1.ManagedFieldsOperationUpdate }},
		{name: "entry of another manager", entry: func(e *metav1.ManagedFieldsEntry) { e.Manager = "kubectl" }},
		{name: "entry of the status subresource", entry: func(e *metav1.ManagedFieldsEntry) { e.Subresource = "status" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			desired, l := parseYAML(t, unchangedDesired), parseYAML(t, unchangedLive)
			if tc.desired != nil {
				tc.desired(desired.Object)
			}
			if tc.live != nil {
				tc.live(l.Object)
			}
			owned := unchangedOwned
			if tc.owned != "" {
				owned = tc.owned
			}
			e := metav1.ManagedFieldsEntry{
				Manager: "ferry", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "example.com/v1",
				FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(owned)},
			}
			if tc.entry != nil {
				tc.entry(&e)
			}
			other := metav1.ManagedFieldsEntry{
				Manager: "kube-controller", Operation: metav1.ManagedFieldsOperationUpdate, APIVersion: "example.com/v1", FieldsType: "FieldsV1",
				FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:setList":{"v:\"blue\"":{}}}}`)},
			}
			l.SetManagedFields([]metav1.ManagedFieldsEntry{other, e})
			if got := unchanged(desired, l); got != tc.want {
				t.Errorf("unchanged = %v; want %v", got, tc.want)
			}
		})
	}
}

func spec(o map[string]any) map[string]any { return o["spec"].(map[string]any) }

func parseYAML(t *testing.T, s string) *unstructured.Unstructured {
	t.Helper()
	obj := &unstructured.Unstructured{}
	if err := yaml.Unmarshal([]byte(s), &obj.Object); err != nil {
		t.Fatal(err)
	}
	return obj
}

// TestSameStored: the dry-run result equals live unless content or
// ownership would change; bookkeeping fields do not count.
func TestSameStored(t *testing.T) {
	base := func() *unstructured.Unstructured {
		o := parseYAML(t, unchangedLive)
		o.SetManagedFields([]metav1.ManagedFieldsEntry{{
			Manager: "ferry", Operation: metav1.ManagedFieldsOperationApply, APIVersion: "example.com/v1", FieldsType: "FieldsV1",
			Time: &metav1.Time{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, FieldsV1: &metav1.FieldsV1{Raw: []byte(unchangedOwned)},
		}})
		return o
	}
	for _, tc := range []struct {
		name   string
		change func(o *unstructured.Unstructured)
		want   bool
	}{
		{"identical", func(*unstructured.Unstructured) {}, true},
		{"bookkeeping moved", func(o *unstructured.Unstructured) {
			o.SetResourceVersion("10")
			o.SetGeneration(2)
			mf := o.GetManagedFields()
			mf[0].Time = &metav1.Time{Time: mf[0].Time.Add(1e9)}
			o.SetManagedFields(mf)
		}, true},
		{"a value changed", func(o *unstructured.Unstructured) { spec(o.Object)["scalar"] = "y" }, false},
		{"ownership changed", func(o *unstructured.Unstructured) {
			mf := o.GetManagedFields()
			mf[0].FieldsV1 = &metav1.FieldsV1{Raw: []byte(`{"f:spec":{"f:scalar":{}}}`)}
			o.SetManagedFields(mf)
		}, false},
		{"an owner added", func(o *unstructured.Unstructured) {
			o.SetManagedFields(append(o.GetManagedFields(), metav1.ManagedFieldsEntry{Manager: "kubectl-edit", Operation: metav1.ManagedFieldsOperationUpdate}))
		}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			after := base()
			tc.change(after)
			if got := sameStored(base(), after); got != tc.want {
				t.Errorf("sameStored = %v; want %v", got, tc.want)
			}
		})
	}
}
