package reconcile

import (
	"context"
	"fmt"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/ferry-gitops/ferry/spec"
)

// applySamples applies the samples Config. The samples operator refuses a
// change of architectures while Managed, so such a change goes Removed →
// (removal done) → edit → Managed. Every stage is read back from the
// cluster, so a run killed in the middle resumes the sequence instead of
// leaving samples Removed.
func (r *Reconciler) applySamples(ctx context.Context, c ObjectChange, o *object, live *unstructured.Unstructured, opts Options) (ObjectChange, string) {
	want := o.obj
	wantArch, _, _ := unstructured.NestedStringSlice(want.Object, "spec", "architectures")
	wantState, _, _ := unstructured.NestedString(want.Object, "spec", "managementState")
	if live == nil || wantState != spec.Managed || len(wantArch) == 0 {
		c, _, problem := r.applyObject(ctx, c, o, live, opts)
		return c, problem
	}
	liveArch, _, _ := unstructured.NestedStringSlice(live.Object, "spec", "architectures")
	if sameSet(liveArch, wantArch) {
		c, _, problem := r.applyObject(ctx, c, o, live, opts)
		return c, problem
	}
	c.Action = ObjectConfigure
	c.Reasons = append(c.Reasons, fmt.Sprintf("architectures %v -> %v through Removed, the only way the samples operator allows", liveArch, wantArch))
	stage := func(state string, arch []string) error {
		u := want.DeepCopy()
		_ = unstructured.SetNestedField(u.Object, state, "spec", "managementState")
		if len(arch) > 0 {
			_ = unstructured.SetNestedStringSlice(u.Object, arch, "spec", "architectures")
		} else {
			unstructured.RemoveNestedField(u.Object, "spec", "architectures")
		}
		_, err := r.Cluster.Apply(ctx, u, opts.Cluster.ForceConflicts)
		return err
	}
	if state, _, _ := unstructured.NestedString(live.Object, "spec", "managementState"); state != spec.Removed {
		if err := stage(spec.Removed, liveArch); err != nil {
			c.Action = ObjectFailed
			return c, fmt.Sprintf("%s: set Removed: %v", c, err)
		}
	}
	if err := r.waitRemoved(ctx, opts.Cluster); err != nil {
		return c, fmt.Sprintf("%s: %v; the next run continues the architecture change", c, err)
	}
	if err := stage(spec.Removed, wantArch); err != nil {
		c.Action = ObjectFailed
		return c, fmt.Sprintf("%s: change architectures: %v", c, err)
	}
	if _, err := r.Cluster.Apply(ctx, want, opts.Cluster.ForceConflicts); err != nil {
		c.Action = ObjectFailed
		return c, fmt.Sprintf("%s: set %s: %v", c, wantState, err)
	}
	return c, ""
}

// waitRemoved waits until the samples operator reports the removal done:
// status.managementState Removed and no RemovePending condition. With no
// wait it looks once.
func (r *Reconciler) waitRemoved(ctx context.Context, opts ClusterOptions) error {
	ctx, cancel := context.WithTimeout(ctx, max(opts.Wait, time.Nanosecond))
	defer cancel()
	interval := opts.PollInterval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	for {
		u, err := r.Cluster.Get(ctx, GVKSamplesConfig, "", "cluster")
		if err == nil && removalDone(u) {
			return nil
		}
		if opts.Wait <= 0 {
			return fmt.Errorf("the samples operator has not finished removing the samples")
		}
		t := time.NewTimer(interval)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("the samples operator did not finish removing the samples within %s", opts.Wait)
		case <-t.C:
		}
	}
}

func removalDone(u *unstructured.Unstructured) bool {
	if state, _, _ := unstructured.NestedString(u.Object, "status", "managementState"); state != spec.Removed {
		return false
	}
	conds, _, _ := unstructured.NestedSlice(u.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "RemovePending" && m["status"] == "True" {
			return false
		}
	}
	return true
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}
