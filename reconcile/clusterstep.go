package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"path"
	"reflect"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/ferry-gitops/ferry/render"
	"github.com/ferry-gitops/ferry/render/mirror"
)

// ClusterPlan is the cluster part of a plan: one change per object.
type ClusterPlan struct {
	// Skipped says why the cluster step does not run (no kubeconfig and
	// not in a cluster); empty when it does.
	Skipped string `json:"skipped,omitempty"`
	// Objects are the changes, in the order they would be applied.
	Objects []ObjectChange `json:"objects,omitempty"`
}

// ObjectAction is what the cluster step does to one object, in the terms
// of a Flux change set and kubectl's output.
type ObjectAction string

const (
	ObjectCreate    ObjectAction = "create"
	ObjectConfigure ObjectAction = "configure"
	ObjectUnchanged ObjectAction = "unchanged"
	ObjectDelete    ObjectAction = "delete"
	// ObjectConflict: another manager owns a field Ferry would change.
	ObjectConflict ObjectAction = "conflict"
	// ObjectBreaking: the change would strand a Subscription or
	// ClusterExtension; applied only with AllowBreaking.
	ObjectBreaking ObjectAction = "breaking"
	// ObjectHeld: the catalog's images are not all in the mirror.
	ObjectHeld ObjectAction = "held"
	// ObjectPrunable: owned, no longer rendered, deleted only with Prune.
	ObjectPrunable ObjectAction = "prunable"
	// ObjectFailed: the API server refused the write.
	ObjectFailed ObjectAction = "failed"
)

// Changes reports whether the action writes to the cluster.
func (a ObjectAction) Changes() bool {
	return a == ObjectCreate || a == ObjectConfigure || a == ObjectDelete
}

// ObjectChange is one object of the cluster plan.
type ObjectChange struct {
	Kind      string       `json:"kind"`
	Namespace string       `json:"namespace,omitempty"`
	Name      string       `json:"name"`
	Action    ObjectAction `json:"action"`
	// File is the render-directory file the object comes from.
	File string `json:"file,omitempty"`
	// Catalog is the Catalog a CatalogSource or ClusterCatalog serves.
	Catalog string `json:"catalog,omitempty"`
	// Reasons explain conflicts (field and manager) and breaking changes
	// (which Subscription or ClusterExtension, and why).
	Reasons []string `json:"reasons,omitempty"`
	// Allowed is set on a breaking change applied because of
	// AllowBreaking, or a conflict taken over with ForceConflicts.
	Allowed bool `json:"allowed,omitempty"`
}

// String is the object as kubectl names it.
func (c ObjectChange) String() string {
	if c.Namespace != "" {
		return fmt.Sprintf("%s/%s/%s", c.Kind, c.Namespace, c.Name)
	}
	return c.Kind + "/" + c.Name
}

// HasChanges reports whether the cluster differs from the render: what
// applying would write, and what it would write were it not blocked
// (conflicts, breaking changes), as kubectl diff reports them. An object
// only --prune would delete is not a difference unless pruning was asked.
func (p *ClusterPlan) HasChanges() bool {
	if p == nil {
		return false
	}
	for _, o := range p.Objects {
		if o.Action != ObjectUnchanged && o.Action != ObjectPrunable {
			return true
		}
	}
	return false
}

// writeText prints the cluster part of a plan, one line per object that
// is not unchanged, its reasons indented, and a summary line.
func (p *ClusterPlan) writeText(b *bytes.Buffer) {
	if p == nil {
		return
	}
	if p.Skipped != "" {
		fmt.Fprintf(b, "Cluster: skipped: %s.\n", p.Skipped)
		return
	}
	writeObjects(b, p.Objects)
}

func writeObjects(b *bytes.Buffer, objs []ObjectChange) {
	counts := map[ObjectAction]int{}
	header := false
	for _, o := range objs {
		if o.Action != ObjectUnchanged && !header {
			b.WriteString("Cluster objects:\n")
			header = true
		}
		counts[o.Action]++
		if o.Action == ObjectUnchanged {
			continue
		}
		note := ""
		switch {
		case o.Action == ObjectPrunable:
			note = " (no longer rendered; --prune deletes it)"
		case o.Action == ObjectBreaking && o.File != "":
			note = " (not applied; --allow-breaking applies it)"
		case o.Action == ObjectBreaking:
			note = " (not pruned; --allow-breaking prunes it)"
		case o.Action == ObjectConflict:
			note = " (not applied; --force-conflicts takes the fields over)"
		case o.Allowed:
			note = " (breaking, allowed)"
		}
		fmt.Fprintf(b, "  %s: %s%s\n", o, o.Action, note)
		for _, r := range o.Reasons {
			fmt.Fprintf(b, "    %s\n", r)
		}
	}
	var parts []string
	for _, a := range []ObjectAction{ObjectCreate, ObjectConfigure, ObjectDelete, ObjectUnchanged, ObjectConflict, ObjectBreaking, ObjectHeld, ObjectPrunable, ObjectFailed} {
		if counts[a] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[a], a))
		}
	}
	if len(parts) == 0 {
		parts = []string{"no objects"}
	}
	fmt.Fprintf(b, "Cluster: %s.\n", strings.Join(parts, ", "))
}

// WriteText prints what the cluster step did.
func (o *ClusterOutcome) WriteText(w io.Writer) error {
	var b bytes.Buffer
	writeObjects(&b, o.Objects)
	_, err := w.Write(b.Bytes())
	return err
}

// ClusterOutcome is what the cluster step did: the plan's objects with
// what became of each.
type ClusterOutcome struct {
	Objects []ObjectChange
}

// ClusterError lists what the cluster step could not do; everything else
// was applied.
type ClusterError struct {
	Problems []string
}

func (e *ClusterError) Error() string {
	return fmt.Sprintf("cluster: %d problem(s): %s", len(e.Problems), strings.Join(e.Problems, "; "))
}

// appliedKinds are the kinds Ferry applies, in the safe order: mirror sets
// before anything that pulls through them, catalogs after, samples last.
var appliedKinds = []schema.GroupVersionKind{GVKIDMS, GVKITMS, GVKICSP, GVKOperatorHub, GVKCatalogSource, GVKClusterCatalog, GVKSamplesConfig}

func stageOf(gvk schema.GroupVersionKind) int {
	return slices.Index(appliedKinds, gvk)
}

// object is one rendered cluster object.
type object struct {
	obj     *unstructured.Unstructured
	gvk     schema.GroupVersionKind
	file    string
	catalog string
}

func (o *object) key() string { return objectKey(o.gvk, o.obj.GetNamespace(), o.obj.GetName()) }

func objectKey(gvk schema.GroupVersionKind, ns, name string) string {
	return gvk.Kind + "/" + ns + "/" + name
}

// clusterObjects parses the cluster objects of a render, in apply order.
func clusterObjects(files map[string][]byte) ([]*object, error) {
	var out []*object
	for _, p := range sortedPaths(files) {
		if !isClusterFile(p) {
			continue
		}
		dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(files[p]), 4096)
		for {
			var m map[string]any
			err := dec.Decode(&m)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", p, err)
			}
			if m == nil {
				continue
			}
			u := &unstructured.Unstructured{Object: m}
			gvk := u.GroupVersionKind()
			if stageOf(gvk) < 0 {
				return nil, fmt.Errorf("%s: %s is not a kind Ferry applies", p, gvk)
			}
			o := &object{obj: u, gvk: gvk, file: p}
			o.catalog = u.GetAnnotations()[render.AnnotationCatalog]
			out = append(out, o)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return stageOf(out[i].gvk) < stageOf(out[j].gvk) })
	return out, nil
}

// isClusterFile reports whether a render-directory file holds objects the
// cluster step applies (as opposed to FBC, mapping.txt or the lock).
func isClusterFile(p string) bool {
	switch {
	case p == render.OperatorHubFile || p == render.SamplesConfigFile:
		return true
	case strings.HasPrefix(p, mirror.Dir+"/"):
		return strings.HasSuffix(p, ".yaml")
	case strings.HasPrefix(p, render.CatalogsDir+"/"):
		base := path.Base(p)
		return path.Dir(path.Dir(p)) == render.CatalogsDir && (base == "catalogsource.yaml" || base == "clustercatalog.yaml")
	}
	return false
}

func sortedPaths(files map[string][]byte) []string {
	out := make([]string, 0, len(files))
	for p := range files {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

// clusterState is what planning observed of the cluster, kept for Apply.
type clusterState struct {
	live   map[string]*unstructured.Unstructured
	served map[schema.GroupVersionKind]bool
	// owned are live objects with this instance's labels.
	owned []*unstructured.Unstructured
	subs  []Subscription
	exts  []Extension
	// diffed is what planning found for each object it diffed, so Apply
	// does not ask again for an object that did not change since.
	diffed map[string]diffed
}

type diffed struct {
	obj    *unstructured.Unstructured
	action Action
}

// planCluster observes the cluster (one LIST per kind) and computes the
// cluster part of the plan.
func (r *Reconciler) planCluster(ctx context.Context, p *Planned, opts Options) error {
	if r.Cluster == nil {
		p.Plan.Cluster = &ClusterPlan{Skipped: r.ClusterSkipped}
		return nil
	}
	desired, err := clusterObjects(p.Result.Files)
	if err != nil {
		return err
	}
	st, err := r.observeCluster(ctx, desired, p.Result.Instance)
	if err != nil {
		return err
	}
	p.cluster = st
	changes, err := r.diffObjects(ctx, p, st, desired, opts)
	if err != nil {
		return err
	}
	p.Plan.Cluster = &ClusterPlan{Objects: changes}
	return nil
}

// observeCluster lists every kind Ferry applies, and the workloads its
// guard checks: one LIST per kind, whatever the number of objects.
func (r *Reconciler) observeCluster(ctx context.Context, desired []*object, instance string) (*clusterState, error) {
	st := &clusterState{live: map[string]*unstructured.Unstructured{}, served: map[schema.GroupVersionKind]bool{}, diffed: map[string]diffed{}}
	wanted := map[schema.GroupVersionKind]bool{}
	for _, o := range desired {
		wanted[o.gvk] = true
	}
	mine := labels.SelectorFromSet(render.Labels(instance))
	for _, gvk := range appliedKinds {
		items, err := r.Cluster.List(ctx, gvk)
		if errors.Is(err, ErrNotServed) {
			if wanted[gvk] {
				return nil, fmt.Errorf("the cluster does not serve %s (%s), which the render holds%s", gvk.Kind, gvk.GroupVersion(), servedHint(gvk))
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("list %s: %w", gvk.Kind, err)
		}
		st.served[gvk] = true
		for _, u := range items {
			st.live[objectKey(gvk, u.GetNamespace(), u.GetName())] = u
			if mine.Matches(labels.Set(u.GetLabels())) {
				st.owned = append(st.owned, u)
			}
		}
	}
	if items, err := r.Cluster.List(ctx, GVKSubscription); err == nil {
		for _, u := range items {
			st.subs = append(st.subs, subscriptionFrom(u))
		}
	} else if !errors.Is(err, ErrNotServed) {
		return nil, fmt.Errorf("list Subscriptions: %w", err)
	}
	if items, err := r.Cluster.List(ctx, GVKClusterExtension); err == nil {
		for _, u := range items {
			if e, ok := extensionFrom(u); ok {
				st.exts = append(st.exts, e)
			}
		}
	} else if !errors.Is(err, ErrNotServed) {
		return nil, fmt.Errorf("list ClusterExtensions: %w", err)
	}
	return st, nil
}

func servedHint(gvk schema.GroupVersionKind) string {
	switch gvk {
	case GVKClusterCatalog:
		return "; OLM v1 serves ClusterCatalogs from OpenShift 4.18: set the Catalog's spec.serveAs to [CatalogSource]"
	case GVKICSP:
		return "; use ImageDigestMirrorSet (Mirror spec.objects)"
	case GVKIDMS, GVKITMS:
		return "; clusters before OpenShift 4.13 need ImageContentSourcePolicy (Mirror spec.objects)"
	}
	return ""
}

// diffObjects computes each desired object's change, the guard's verdict
// on catalog objects, and the owned objects no longer rendered.
func (r *Reconciler) diffObjects(ctx context.Context, p *Planned, st *clusterState, desired []*object, opts Options) ([]ObjectChange, error) {
	// The diffs are independent (a dry-run each for the objects that
	// changed): ask them all at once, a few at a time.
	actions := make([]Action, len(desired))
	errs := make([]error, len(desired))
	var wg sync.WaitGroup
	sem := make(chan struct{}, diffConcurrency)
	for i, o := range desired {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			actions[i], errs[i] = r.Cluster.Diff(ctx, o.obj, st.live[o.key()], opts.Cluster.ForceConflicts)
		}()
	}
	wg.Wait()
	var out []ObjectChange
	desiredKeys := map[string]bool{}
	for i, o := range desired {
		desiredKeys[o.key()] = true
		c := ObjectChange{Kind: o.gvk.Kind, Namespace: o.obj.GetNamespace(), Name: o.obj.GetName(), File: o.file, Catalog: o.catalog}
		action, err := actions[i], errs[i]
		var conflict *ConflictError
		switch {
		case errors.As(err, &conflict):
			c.Action = ObjectConflict
			for _, f := range conflict.Fields {
				c.Reasons = append(c.Reasons, fmt.Sprintf("%s is owned by %s", f.Field, f.Manager))
			}
		case err != nil:
			return nil, fmt.Errorf("%s: %w", c, err)
		}
		if err == nil {
			st.diffed[o.key()] = diffed{obj: o.obj, action: action}
		}
		switch {
		case c.Action == ObjectConflict:
		case action == Create:
			c.Action = ObjectCreate
		case action == Update:
			c.Action = ObjectConfigure
		default:
			c.Action = ObjectUnchanged
		}
		if c.Action != ObjectUnchanged && o.catalog != "" {
			if reasons := r.guard(p, st, o); len(reasons) > 0 {
				c.Reasons = append(c.Reasons, reasons...)
				if opts.Cluster.AllowBreaking {
					c.Allowed = true
				} else if c.Action != ObjectConflict {
					c.Action = ObjectBreaking
				}
			}
		}
		out = append(out, c)
	}
	var prunable []ObjectChange
	for _, u := range st.owned {
		gvk := u.GroupVersionKind()
		if desiredKeys[objectKey(gvk, u.GetNamespace(), u.GetName())] {
			continue
		}
		c := ObjectChange{Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName(), Action: ObjectPrunable, Catalog: u.GetAnnotations()[render.AnnotationCatalog]}
		if opts.Cluster.Prune {
			c.Action = ObjectDelete
		}
		if gvk == GVKCatalogSource {
			for _, s := range st.subs {
				if s.Source == u.GetName() && s.SourceNamespace == u.GetNamespace() {
					c.Reasons = append(c.Reasons, fmt.Sprintf("Subscription %s/%s uses it", s.Namespace, s.Name))
				}
			}
		}
		if gvk == GVKClusterCatalog {
			for _, e := range st.exts {
				if e.Selector == nil || e.Selector.Matches(labels.Set(catalogLabels(u))) {
					c.Reasons = append(c.Reasons, fmt.Sprintf("ClusterExtension %s may install from it", e.Name))
				}
			}
		}
		if len(c.Reasons) > 0 && opts.Cluster.Prune {
			if opts.Cluster.AllowBreaking {
				c.Allowed = true
			} else {
				c.Action = ObjectBreaking
			}
		}
		prunable = append(prunable, c)
	}
	sort.Slice(prunable, func(i, j int) bool { return prunable[i].String() < prunable[j].String() })
	if opts.Cluster.Prune && len(desired) == 0 && len(prunable) > 0 {
		// Argo CD's allowEmpty guard: an empty render is far more likely a
		// broken spec than a wish to delete everything.
		for i := range prunable {
			if prunable[i].Action == ObjectDelete {
				prunable[i].Action = ObjectPrunable
				prunable[i].Reasons = append(prunable[i].Reasons, "the render is empty: Ferry never prunes everything at once")
			}
		}
	}
	return append(out, prunable...), nil
}

// diffConcurrency bounds the server-side dry-runs planning has in flight.
const diffConcurrency = 8

// catalogLabels are a ClusterCatalog's labels as a ClusterExtension
// selector sees them, the name label the API server adds included.
func catalogLabels(u *unstructured.Unstructured) map[string]string {
	l := map[string]string{"olm.operatorframework.io/metadata.name": u.GetName()}
	for k, v := range u.GetLabels() {
		l[k] = v
	}
	return l
}

// guard checks a catalog object's change against the workloads that
// install from it and returns why it would strand them.
func (r *Reconciler) guard(p *Planned, st *clusterState, o *object) []string {
	var next *catalogIndex
	for _, rc := range p.Result.Catalogs {
		if rc.Spec.Metadata.Name == o.catalog {
			next = indexCatalog(rc.Config)
		}
	}
	if next == nil {
		return nil
	}
	oldCfg, _ := previousCatalog(context.Background(), p.Previous, o.catalog)
	old := indexCatalog(oldCfg)
	var reasons []string
	switch o.gvk {
	case GVKCatalogSource:
		for _, s := range st.subs {
			if s.Source == o.obj.GetName() && s.SourceNamespace == o.obj.GetNamespace() {
				if why := strandsSubscription(s, next, old); why != "" {
					reasons = append(reasons, why)
				}
			}
		}
	case GVKClusterCatalog:
		for _, e := range st.exts {
			if e.Selector != nil && !e.Selector.Matches(labels.Set(catalogLabels(o.obj))) {
				continue
			}
			if !next.hasPackage(e.Package) && !old.hasPackage(e.Package) {
				continue // the extension draws its package from another catalog
			}
			if why := strandsExtension(e, next, old); why != "" {
				reasons = append(reasons, why)
			}
		}
	}
	return reasons
}

// applyCluster applies the achieved render to the cluster in the safe
// order: mirror sets, OperatorHub, the CatalogSources and ClusterCatalogs
// of catalogs whose images are all in the mirror (then waits for them to
// serve), the samples Config, and prune last.
func (r *Reconciler) applyCluster(ctx context.Context, p *Planned, opts Options, out *Outcome) error {
	if r.Cluster == nil || p.cluster == nil || out.Files == nil {
		return nil
	}
	held := map[string]bool{}
	for _, c := range out.Catalogs {
		if c.Held != "" {
			held[c.Name] = true
		}
	}
	// The achieved render: held catalogs keep their previous objects,
	// mirror sets list only what the mirror holds.
	desired, err := clusterObjects(out.Files)
	if err != nil {
		return err
	}
	planned := map[string]ObjectChange{}
	for _, c := range p.Plan.Cluster.Objects {
		planned[c.String()] = c
	}
	res := &ClusterOutcome{}
	out.Cluster = res
	var problems []string
	var toWait []*unstructured.Unstructured
	mirrorSetsOK := true
	for _, o := range desired {
		c := ObjectChange{Kind: o.gvk.Kind, Namespace: o.obj.GetNamespace(), Name: o.obj.GetName(), File: o.file, Catalog: o.catalog}
		pc := planned[c.String()]
		c.Reasons = pc.Reasons
		var applied *unstructured.Unstructured
		var problem string
		switch {
		case pc.Action == ObjectBreaking:
			c.Action = ObjectBreaking
			problem = fmt.Sprintf("%s not applied: breaking (%s); --allow-breaking applies it", c, strings.Join(pc.Reasons, "; "))
		case o.catalog != "" && held[o.catalog]:
			c.Action = ObjectHeld
			c.Reasons = append(c.Reasons, "its catalog's images are not all in the mirror; the object keeps its previous state")
		case o.catalog != "" && !mirrorSetsOK:
			c.Action = ObjectHeld
			c.Reasons = append(c.Reasons, "the mirror sets were not all applied; a catalog never moves before the mirror sets it pulls through")
		case o.gvk == GVKSamplesConfig:
			c, problem = r.applySamples(ctx, c, o, p.cluster, opts)
		default:
			c.Allowed = pc.Allowed
			c, applied, problem = r.applyObject(ctx, c, o, p.cluster, opts)
		}
		if problem != "" {
			problems = append(problems, problem)
			if stageOf(o.gvk) <= stageOf(GVKICSP) {
				mirrorSetsOK = false
			}
		}
		if c.Action != "" {
			res.Objects = append(res.Objects, c)
		}
		if applied != nil && o.catalog != "" {
			toWait = append(toWait, applied)
		}
	}
	if opts.Cluster.Wait > 0 {
		// Every catalog waits at once, so --wait bounds the step, not
		// each catalog in turn.
		waitErrs := make([]error, len(toWait))
		var wg sync.WaitGroup
		for i, u := range toWait {
			wg.Add(1)
			go func() {
				defer wg.Done()
				waitErrs[i] = r.waitServing(ctx, u, opts.Cluster)
			}()
		}
		wg.Wait()
		for _, err := range waitErrs {
			if err != nil {
				problems = append(problems, err.Error())
			}
		}
	}
	for _, c := range p.Plan.Cluster.Objects {
		if c.Action != ObjectDelete {
			if c.Action == ObjectPrunable || (c.Action == ObjectBreaking && c.File == "") {
				res.Objects = append(res.Objects, c)
			}
			continue
		}
		live := p.cluster.live[objectKeyFor(c)]
		if live == nil {
			continue
		}
		if err := r.Cluster.Delete(ctx, live); err != nil && !errors.Is(err, ErrNotFound) {
			problems = append(problems, fmt.Sprintf("delete %s: %v", c, err))
			continue
		}
		res.Objects = append(res.Objects, c)
	}
	if len(problems) > 0 {
		return &ClusterError{Problems: problems}
	}
	return nil
}

// applyObject applies one object when it differs from live, and returns
// its change, the object as stored (nil when nothing was written) and a
// problem ("" when none).
//
// An object planning diffed and that is the same now costs no second diff:
// its planned action stands, so a changed object costs one write, and an
// unchanged one nothing.
func (r *Reconciler) applyObject(ctx context.Context, c ObjectChange, o *object, st *clusterState, opts Options) (ObjectChange, *unstructured.Unstructured, string) {
	var action Action
	var err error
	if d, ok := st.diffed[o.key()]; ok && reflect.DeepEqual(d.obj.Object, o.obj.Object) {
		action = d.action
	} else {
		action, err = r.Cluster.Diff(ctx, o.obj, st.live[o.key()], opts.Cluster.ForceConflicts)
	}
	var conflict *ConflictError
	switch {
	case errors.As(err, &conflict):
		c.Action = ObjectConflict
		return c, nil, conflict.Error()
	case err != nil:
		c.Action = ObjectFailed
		return c, nil, fmt.Sprintf("%s: %v", c, err)
	case action == Unchanged:
		c.Action = ObjectUnchanged
		return c, nil, ""
	case action == Create:
		c.Action = ObjectCreate
	default:
		c.Action = ObjectConfigure
	}
	applied, err := r.Cluster.Apply(ctx, o.obj, opts.Cluster.ForceConflicts)
	if errors.As(err, &conflict) {
		c.Action = ObjectConflict
		return c, nil, conflict.Error()
	}
	if err != nil {
		c.Action = ObjectFailed
		return c, nil, fmt.Sprintf("apply %s: %v", c, err)
	}
	return c, applied, ""
}

func objectKeyFor(c ObjectChange) string {
	for _, gvk := range appliedKinds {
		if gvk.Kind == c.Kind {
			return objectKey(gvk, c.Namespace, c.Name)
		}
	}
	return ""
}

// waitServing polls a CatalogSource until OLM reports READY after the
// change, or a ClusterCatalog until it serves the pinned image.
func (r *Reconciler) waitServing(ctx context.Context, applied *unstructured.Unstructured, opts ClusterOptions) error {
	gvk := applied.GroupVersionKind()
	since := appliedAt(applied)
	want, _, _ := unstructured.NestedString(applied.Object, "spec", "source", "image", "ref")
	ctx, cancel := context.WithTimeout(ctx, opts.Wait)
	defer cancel()
	interval := opts.PollInterval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	state := "never observed"
	for {
		u, err := r.Cluster.Get(ctx, gvk, applied.GetNamespace(), applied.GetName())
		if err == nil {
			var ready bool
			ready, state = serving(u, since, want)
			if ready {
				return nil
			}
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			name := applied.GetName()
			if ns := applied.GetNamespace(); ns != "" {
				name = ns + "/" + name
			}
			return fmt.Errorf("%s/%s not serving its new catalog after %s (%s)", gvk.Kind, name, opts.Wait, state)
		case <-t.C:
		}
	}
}

// appliedAt is when Ferry last applied the object, from its managed
// fields (the API server's clock, second resolution).
func appliedAt(u *unstructured.Unstructured) time.Time {
	var at time.Time
	for _, m := range u.GetManagedFields() {
		if m.Manager == FieldManager && m.Time != nil && m.Time.After(at) {
			at = m.Time.Time
		}
	}
	return at
}

// serving reports whether a catalog object serves what was applied, and
// its state for the message when it does not.
func serving(u *unstructured.Unstructured, since time.Time, wantRef string) (bool, string) {
	switch u.GroupVersionKind() {
	case GVKCatalogSource:
		state, _, _ := unstructured.NestedString(u.Object, "status", "connectionState", "lastObservedState")
		last, _, _ := unstructured.NestedString(u.Object, "status", "connectionState", "lastConnect")
		t, err := time.Parse(time.RFC3339, last)
		if state == "READY" && err == nil && !t.Before(since.Truncate(time.Second)) {
			return true, state
		}
		if state == "" {
			return false, "no connection state yet"
		}
		return false, "last observed state " + state
	case GVKClusterCatalog:
		ref, _, _ := unstructured.NestedString(u.Object, "status", "resolvedSource", "image", "ref")
		conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
		servingTrue := false
		for _, c := range conds {
			m, _ := c.(map[string]any)
			if m["type"] == "Serving" && m["status"] == "True" {
				servingTrue = true
			}
		}
		if servingTrue && ref == wantRef {
			return true, "Serving"
		}
		return false, fmt.Sprintf("Serving=%v, resolved %q", servingTrue, ref)
	}
	return true, ""
}

// ApplyRender runs the cluster step alone on a render that is already
// complete (files as the render directory holds them, for instance):
// plan, then apply in the safe order, as a reconcile does once its
// registry steps are done. Without the catalogs' content there is nothing
// for the guard to check against, so it is for renders whose catalogs the
// caller trusts (tests and benchmarks of the cluster step).
func (r *Reconciler) ApplyRender(ctx context.Context, files map[string][]byte, instance string, opts Options) (*ClusterPlan, *ClusterOutcome, error) {
	p := &Planned{Plan: &Plan{}, Result: &Result{Files: files, Instance: instance}}
	if err := r.planCluster(ctx, p, opts); err != nil {
		return nil, nil, err
	}
	out := &Outcome{Files: files}
	err := r.applyCluster(ctx, p, opts, out)
	return p.Plan.Cluster, out.Cluster, err
}
