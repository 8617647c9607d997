package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	engine "github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/render"
	"github.com/ferry-gitops/ferry/spec"
)

// applySamples applies the samples Config. The samples operator refuses a
// change of architectures while Managed, so such a change goes Removed →
// (removal done) → edit → Managed. Every stage is read back from the
// cluster, so a run killed in the middle resumes the sequence instead of
// leaving samples Removed.
func (r *Reconciler) applySamples(ctx context.Context, c ObjectChange, o *object, st *clusterState, opts Options) (ObjectChange, string) {
	live := st.live[o.key()]
	want := o.obj
	wantArch, _, _ := unstructured.NestedStringSlice(want.Object, "spec", "architectures")
	wantState, _, _ := unstructured.NestedString(want.Object, "spec", "managementState")
	if live == nil || wantState != spec.Managed || len(wantArch) == 0 {
		c, _, problem := r.applyObject(ctx, c, o, st, opts)
		return c, problem
	}
	liveArch, _, _ := unstructured.NestedStringSlice(live.Object, "spec", "architectures")
	if sameSet(liveArch, wantArch) {
		c, _, problem := r.applyObject(ctx, c, o, st, opts)
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

// SamplesPlan is the samples part of a plan: the images the samples
// operator will import once samplesRegistry points at the mirror.
type SamplesPlan struct {
	Registry string `json:"registry,omitempty"`
	// Images are the sample images to mirror (mirrorImages: true).
	Images []render.SampleImage `json:"images,omitempty"`
	// Unavailable says why the image list could not be read; the samples
	// Config is then held back, since pointing the operator at a mirror
	// without its images would fail every import.
	Unavailable string `json:"unavailable,omitempty"`
}

// SamplesOutcome is what mirroring the sample images did.
type SamplesOutcome struct {
	Copy *engine.Report
	// Skipped are the streams with an image that could not be copied,
	// with the first reason, added to skippedImagestreams.
	Skipped map[string]string
}

// samplesConfigMap is where the samples operator publishes the images of
// its inventory.
const (
	samplesNamespace = "openshift-cluster-samples-operator"
	samplesConfigMap = "imagestreamtag-to-image"
)

// planSamples renders the samples Config and, with mirrorImages, lists the
// images to mirror: from the file spec.imagesFrom names, or from the
// cluster's imagestreamtag-to-image ConfigMap.
func (r *Reconciler) planSamples(ctx context.Context, p *Planned) error {
	smp := p.Config.Samples
	if smp == nil {
		return nil
	}
	s := &smp.Spec
	sp := &SamplesPlan{Registry: s.SamplesRegistry}
	p.Plan.Samples = sp
	if s.MirrorImages {
		list, err := r.sampleList(ctx, p.Dir, smp)
		if err != nil {
			sp.Unavailable = err.Error()
		} else {
			sp.Images = render.SampleImages(s, list)
		}
	}
	cfg, err := render.SamplesConfig(s, nil, render.Labels(p.Result.Instance))
	if err != nil {
		return err
	}
	p.Result.Files[render.SamplesConfigFile] = cfg
	if m := render.SamplesMapping(sp.Images); m != nil {
		p.Result.Files[render.SamplesMappingFile] = m
	}
	p.Plan.Files = diffFiles(p.Previous, p.Result.Files)
	return nil
}

func (r *Reconciler) sampleList(ctx context.Context, dir string, smp *spec.Samples) (map[string]string, error) {
	from := smp.Spec.ImagesFrom
	if from != spec.ImagesFromCluster {
		file := path.Join(path.Dir(smp.Origin.File), from)
		b, err := fs.ReadFile(os.DirFS(dir), file)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		list, err := render.ParseSampleImages(b)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		return list, nil
	}
	if r.Cluster == nil {
		return nil, fmt.Errorf("spec.imagesFrom is %q but no cluster is configured; point it at a copy of the %s/%s ConfigMap", spec.ImagesFromCluster, samplesNamespace, samplesConfigMap)
	}
	u, err := r.Cluster.Get(ctx, GVKConfigMap, samplesNamespace, samplesConfigMap)
	if err != nil {
		return nil, fmt.Errorf("read ConfigMap %s/%s: %w", samplesNamespace, samplesConfigMap, err)
	}
	data, _, _ := unstructured.NestedStringMap(u.Object, "data")
	return data, nil
}

// copySamples mirrors the sample images (only the configured
// architectures of multi-arch images) and re-renders the samples Config
// with every stream whose images could not all be copied skipped.
func (r *Reconciler) copySamples(ctx context.Context, p *Planned, opts Options, out *Outcome) error {
	sp := p.Plan.Samples
	if sp == nil || out.Files == nil {
		return nil
	}
	smp := p.Config.Samples
	if len(sp.Images) == 0 && sp.Unavailable == "" {
		return nil
	}
	// Held until the images are in the mirror: samplesRegistry must never
	// point at a mirror that lacks them, in the cluster or in the render a
	// GitOps tool applies.
	holdFile(out.Files, p.Previous, render.SamplesConfigFile)
	holdFile(out.Files, p.Previous, render.SamplesMappingFile)
	if sp.Unavailable != "" {
		return &ClusterError{Problems: []string{"samples images not mirrored: " + sp.Unavailable + "; the samples Config keeps its previous state"}}
	}
	pairs := make([]engine.Pair, 0, len(sp.Images))
	for _, im := range sp.Images {
		pairs = append(pairs, engine.Pair{Source: im.Source, Destination: im.Destination})
	}
	copyOpts := opts.Apply.Copy
	if copyOpts.Remotes == nil {
		copyOpts.Remotes = r.Observer.Registry
	}
	copyOpts.Platforms = render.SamplePlatforms(smp.Spec.Architectures)
	copyOpts.Reporter = nil
	rep, err := engine.Copy(ctx, pairs, copyOpts)
	var incomplete *engine.IncompleteError
	if err != nil && !errors.As(err, &incomplete) {
		return fmt.Errorf("samples: %w", err)
	}
	if cerr := ctx.Err(); cerr != nil {
		return cerr
	}
	so := &SamplesOutcome{Copy: rep, Skipped: map[string]string{}}
	out.Samples = so
	failed := map[engine.Pair]string{}
	if rep != nil {
		for _, im := range rep.Images {
			if !im.Action.Complete() && im.Err != nil {
				failed[im.Pair] = im.Err.Reason
			}
		}
	}
	var copied []render.SampleImage
	for _, im := range sp.Images {
		if why, bad := failed[engine.Pair{Source: im.Source, Destination: im.Destination}]; bad {
			if so.Skipped[im.Stream] == "" {
				so.Skipped[im.Stream] = fmt.Sprintf("%s: %s", im.Source, why)
			}
		}
	}
	for _, im := range sp.Images {
		if so.Skipped[im.Stream] == "" {
			copied = append(copied, im)
		}
	}
	skipped := make([]string, 0, len(so.Skipped))
	for s := range so.Skipped {
		skipped = append(skipped, s)
	}
	cfg, err := render.SamplesConfig(&smp.Spec, skipped, render.Labels(p.Result.Instance))
	if err != nil {
		return err
	}
	out.Files[render.SamplesConfigFile] = cfg
	delete(out.Files, render.SamplesMappingFile)
	if m := render.SamplesMapping(copied); m != nil {
		out.Files[render.SamplesMappingFile] = m
	}
	return nil
}

// holdFile puts a file's previous content (or nothing) back in files.
func holdFile(files map[string][]byte, previous fs.FS, name string) {
	delete(files, name)
	if previous == nil {
		return
	}
	if b, err := fs.ReadFile(previous, name); err == nil {
		files[name] = b
	}
}
