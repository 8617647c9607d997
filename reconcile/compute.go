package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/catalogimage"
	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/memfs"
	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/internal/safefs"
	"github.com/ferry-gitops/ferry/render"
	"github.com/ferry-gitops/ferry/render/mirror"
	"github.com/ferry-gitops/ferry/spec"
)

// Result is everything a plan would produce: the files of the render
// directory and the catalog images to push.
type Result struct {
	// Files maps render-directory paths to contents.
	Files map[string][]byte
	// Images are the built catalog images, by catalog.
	Images []BuiltImage
	// Catalogs are the rendered catalogs, for reports and tests.
	Catalogs []*render.Catalog
	// Mirror is the image set, nil without a Mirror.
	Mirror *mirror.Set
	// Instance names this config repository on the cluster (Instance).
	Instance string
}

// BuiltImage is a catalog image that exists only in memory until pushed.
type BuiltImage struct {
	Catalog string
	Target  string // repository[:tag] from the spec
	Pinned  string // repository@sha256:...
	Digest  string
	Image   remote.Taggable
}

// Compute observes sources, renders every Catalog, builds the catalog
// images in memory and compares the result with the previous render
// (previous may be nil). Nothing is written anywhere.
//
// A failure is isolated to what it concerns. A catalog whose source,
// bundles or base cannot be read, or that does not render, keeps its
// previous render (files, image and mirror entries) while every other
// catalog is planned; an image of the mirror's set whose tag cannot be
// resolved keeps the digest the previous lock recorded or, without one,
// is left out, failing the catalogs that list it. Compute then returns the
// plan and the result with an *IncompleteError listing the failures (also
// in Plan.Failures), so the caller applies the rest and fails at the end.
// Other errors (cancellation, a mirror set that cannot be built at all)
// return no plan.
func (o *Observer) Compute(ctx context.Context, cfg *spec.Config, previous fs.FS) (*Plan, *Result, error) {
	if err := CheckPrevious(previous); err != nil {
		return nil, nil, err
	}
	res := &Result{Files: map[string][]byte{}, Instance: Instance(cfg)}
	plan := &Plan{}
	outcomes := make([]*catalogOutcome, len(cfg.Catalogs))
	for i, c := range cfg.Catalogs {
		out, err := o.computeCatalog(ctx, c, previous, res.Instance)
		if err != nil {
			if cerr := ctx.Err(); cerr != nil {
				return nil, nil, cerr
			}
			out = failedCatalog(ctx, c, previous, err)
		}
		outcomes[i] = out
	}
	set, imageFailures, err := o.mirrorSet(ctx, cfg, outcomes, previous)
	if err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, cerr
		}
		return nil, nil, fmt.Errorf("mirror: %w", err)
	}
	for _, out := range outcomes {
		plan.Catalogs = append(plan.Catalogs, out.change)
		for p, b := range out.files {
			res.Files[p] = b
		}
		if out.failure != nil {
			plan.Failures = append(plan.Failures, *out.failure)
			continue
		}
		res.Images = append(res.Images, out.image)
		res.Catalogs = append(res.Catalogs, out.rendered)
	}
	plan.Failures = append(plan.Failures, imageFailures...)
	plan.Catalogs = append(plan.Catalogs, deletedCatalogs(ctx, cfg, previous)...)
	if set != nil {
		files, err := set.Files(res.MirrorOptions())
		if err != nil {
			return nil, nil, fmt.Errorf("mirror: %w", err)
		}
		for p, b := range files {
			res.Files[p] = b
		}
		res.Mirror = set
		plan.Images = len(set.Images)
	}
	if m := cfg.Mirror; m != nil && m.Spec.OperatorHub != nil {
		b, err := render.OperatorHub(m.Spec.OperatorHub, render.Labels(res.Instance))
		if err != nil {
			return nil, nil, err
		}
		res.Files[render.OperatorHubFile] = b
	}
	if plan.Files, err = diffPrevious(previous, res.Files); err != nil {
		return nil, nil, err
	}
	if len(plan.Failures) > 0 {
		return plan, res, &IncompleteError{Failures: plan.Failures}
	}
	return plan, res, nil
}

// Instance is the config repository's name for itself, the value of the
// instance label on every object it renders: its Mirror's name, or
// "ferry" without a Mirror.
func Instance(cfg *spec.Config) string {
	if cfg.Mirror != nil && cfg.Mirror.Metadata.Name != "" {
		return cfg.Mirror.Metadata.Name
	}
	return "ferry"
}

// MirrorOptions are how the mirror objects of this result are rendered:
// named after the instance, so two config repositories applied to one
// cluster never write each other's mirror sets, and labelled as Ferry's.
func (res *Result) MirrorOptions() mirror.Options {
	o := mirror.DefaultOptions()
	o.NamePrefix = "ferry-" + res.Instance
	o.Labels = render.Labels(res.Instance)
	return o
}

// MaxPreviousFileSize bounds one file of the previous render. The render
// holds Ferry's own output, whose largest files (a package's FBC, the lock
// of a large catalog) stay well below the per-file limit on catalog images,
// which this matches.
const MaxPreviousFileSize = 512 << 20

// PreviousRenderError lists files of the previous render that Ferry refuses
// to read: symbolic links, special files, files over MaxPreviousFileSize.
// The render directory holds only files Ferry wrote, so any of these means
// the repository was changed by hand (or by someone hostile); nothing is
// read, written or compared until it is fixed.
type PreviousRenderError struct {
	// Problems name each path, relative to the render directory, and why.
	Problems []string
}

func (e *PreviousRenderError) Error() string {
	return "previous render: " + strings.Join(e.Problems, "; ")
}

// CheckPrevious walks what Ferry owns in the previous render (catalogs/,
// mirror/, the lock file) and refuses anything that is not a directory or a
// regular file within MaxPreviousFileSize, before any of it is read: a lock
// file linked to /dev/zero must not be read into memory, a FIFO must not
// block a read-only diff. previous may be nil.
func CheckPrevious(previous fs.FS) error {
	if previous == nil {
		return nil
	}
	var problems []string
	for _, root := range ownedPaths {
		err := fs.WalkDir(previous, root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if !errors.Is(err, fs.ErrNotExist) {
					problems = append(problems, fmt.Sprintf("%s: %v", p, unwrapPath(err)))
				}
				return nil
			}
			t := d.Type()
			switch {
			case t&fs.ModeSymlink != 0:
				problems = append(problems, p+": is a symbolic link; the render directory holds only files Ferry wrote, and links are not followed")
			case t.IsDir():
			case !t.IsRegular():
				problems = append(problems, fmt.Sprintf("%s: is a %s, not a regular file", p, safefs.DescribeMode(t)))
			default:
				if fi, err := d.Info(); err == nil && fi.Size() > MaxPreviousFileSize {
					problems = append(problems, fmt.Sprintf("%s: is %s, over the %s limit for a rendered file", p, safefs.FormatSize(fi.Size()), safefs.FormatSize(MaxPreviousFileSize)))
				}
			}
			return nil
		})
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", root, unwrapPath(err)))
		}
	}
	if len(problems) > 0 {
		return &PreviousRenderError{Problems: problems}
	}
	return nil
}

// ownedPaths are what Ferry writes into the render directory.
var ownedPaths = []string{render.CatalogsDir, path.Dir(mirror.MappingFile), mirror.LockFile, path.Dir(render.OperatorHubFile), render.SamplesDir}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Failure is one part of the plan that could not be computed.
type Failure struct {
	// Kind is FailedCatalog or FailedImage.
	Kind FailureKind `json:"kind"`
	// Name is the catalog's name or the image reference.
	Name   string `json:"name"`
	Reason string `json:"reason"`
	// Kept says what stands in for it this run: the previous render of a
	// catalog, the previous digest of an image, or nothing ("").
	Kept string `json:"kept,omitempty"`
	// Err is the failure itself, for errors.As (a *bundle.Error lists
	// every bad bundle); Reason is its redacted text.
	Err error `json:"-"`
}

// FailureKind says what failed.
type FailureKind string

const (
	// FailedCatalog: the catalog could not be observed or rendered.
	FailedCatalog FailureKind = "catalog"
	// FailedImage: an image's tag could not be resolved.
	FailedImage FailureKind = "image"
)

func (f Failure) String() string {
	s := fmt.Sprintf("%s %s: %s", f.Kind, f.Name, f.Reason)
	if f.Kept != "" {
		s += " (" + f.Kept + ")"
	}
	return s
}

// IncompleteError is Compute's error when parts of the plan failed and
// the rest was computed.
type IncompleteError struct {
	Failures []Failure
}

func (e *IncompleteError) Error() string {
	parts := make([]string, len(e.Failures))
	for i, f := range e.Failures {
		parts[i] = f.String()
	}
	return fmt.Sprintf("%d part(s) of the plan failed: %s", len(e.Failures), strings.Join(parts, "; "))
}

// Unwrap returns the failures' own errors, so callers can ask for a
// *bundle.Error or a registry status with errors.As.
func (e *IncompleteError) Unwrap() []error {
	var out []error
	for _, f := range e.Failures {
		if f.Err != nil {
			out = append(out, f.Err)
		}
	}
	return out
}

// catalogOutcome is one catalog as planned: rendered and built, or failed
// and standing on its previous render.
type catalogOutcome struct {
	spec     *spec.Catalog
	change   CatalogChange
	files    map[string][]byte // its files in the render directory
	rendered *render.Catalog   // nil when failed
	image    BuiltImage
	// mirror is what it contributes to the image set; Config is nil for a
	// failed catalog never rendered before.
	mirror  mirror.Catalog
	failure *Failure
}

func (o *Observer) computeCatalog(ctx context.Context, c *spec.Catalog, previous fs.FS, instance string) (*catalogOutcome, error) {
	name := c.Metadata.Name
	src, err := o.ReadSource(ctx, c)
	if err != nil {
		return nil, err
	}
	add, err := o.bundleAdder(ctx, c)
	if err != nil {
		return nil, err
	}
	rc, err := render.RenderCatalog(c, src.Config, add)
	if err != nil {
		return nil, err
	}
	configs, err := rc.ConfigFiles(ctx)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", name, err)
	}
	idx, base, err := o.Base(ctx, c, src)
	if err != nil {
		return nil, err
	}
	out := &catalogOutcome{spec: c, rendered: rc, files: map[string][]byte{}}
	for p, data := range configs {
		out.files[path.Join(render.ConfigsDir(name), p)] = data
	}
	tree, err := memfs.New(configs)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", name, err)
	}
	baseName := c.Spec.Base
	if baseName == "" {
		baseName = c.Spec.Source
	}
	digest, img, err := BuildImage(ctx, idx, base, tree, catalogimage.BuildOptions{Read: o.readOptions(baseName)})
	if err != nil {
		return nil, fmt.Errorf("catalog %s: build image: %w", name, err)
	}
	pinned, err := pin(c.Spec.Target, digest.String())
	if err != nil {
		return nil, fmt.Errorf("catalog %s: target: %w", name, err)
	}
	labels := render.Labels(instance)
	if c.Spec.Serves(spec.ServeCatalogSource) {
		cs, err := render.CatalogSource(c, pinned, labels)
		if err != nil {
			return nil, err
		}
		out.files[render.CatalogSourceFile(name)] = cs
	}
	if c.Spec.Serves(spec.ServeClusterCatalog) {
		cc, err := render.ClusterCatalog(c, pinned, labels)
		if err != nil {
			return nil, err
		}
		out.files[render.ClusterCatalogFile(name)] = cc
	}
	out.image = BuiltImage{Catalog: name, Target: c.Spec.Target, Pinned: pinned, Digest: digest.String(), Image: img}
	out.mirror = mirror.Catalog{Name: name, Config: rc.Config, Source: c.Spec.Source, Target: c.Spec.Target, Digest: digest.String()}
	if _, d, ok := strings.Cut(src.Ref, "@"); ok {
		out.mirror.SourceDigest = d
	}
	prev, prevImage := previousCatalog(ctx, previous, name)
	out.change = DiffCatalog(name, prev, rc.Config, prevImage, pinned)
	addInferredEdges(&out.change, rc.Edges)
	return out, nil
}

// failedCatalog is a catalog that could not be planned: it keeps its
// previous render, files and image, so nothing it serves changes, and its
// previous images stay in the mirror's set.
func failedCatalog(ctx context.Context, c *spec.Catalog, previous fs.FS, err error) *catalogOutcome {
	catalog := c.Metadata.Name
	f := &Failure{Kind: FailedCatalog, Name: catalog, Reason: registry.Redact(strings.TrimPrefix(err.Error(), "catalog "+catalog+": ")), Err: err}
	out := &catalogOutcome{spec: c, failure: f, files: previousFiles(previous, render.CatalogDir(catalog))}
	prev, prevImage := previousCatalog(ctx, previous, catalog)
	out.change = CatalogChange{Name: catalog, Action: Unchanged, Image: prevImage, PreviousImage: prevImage, Failed: f.Reason}
	if prev == nil {
		return out
	}
	f.Kept = "keeps its previous render"
	out.mirror = mirror.Catalog{Name: catalog, Config: prev, Source: c.Spec.Source}
	if repo, digest, ok := strings.Cut(prevImage, "@"); ok {
		// The spec's target (with its tag) when the previous image is
		// there, as the previous lock recorded it.
		out.mirror.Target, out.mirror.Digest = repo, digest
		if t, err := name.NewTag(c.Spec.Target, name.WeakValidation); err == nil && t.Context().String() == repo {
			out.mirror.Target = c.Spec.Target
		}
	}
	return out
}

// fail turns a planned catalog into a failed one (an image it lists could
// not be resolved).
func (out *catalogOutcome) fail(ctx context.Context, previous fs.FS, err error) {
	*out = *failedCatalog(ctx, out.spec, previous, err)
}

// previousFiles returns the files under dir of the previous render.
func previousFiles(previous fs.FS, dir string) map[string][]byte {
	out := map[string][]byte{}
	if previous == nil {
		return out
	}
	_ = fs.WalkDir(previous, dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if b, err := fs.ReadFile(previous, p); err == nil {
				out[p] = b
			}
		}
		return nil
	})
	return out
}

// pin turns a target repository[:tag] into repository@digest.
func pin(target, digest string) (string, error) {
	if target == "" {
		return "", errors.New("no target: define a Mirror or set spec.target")
	}
	repo, err := name.NewRepository(strings.Split(target, "@")[0], name.WeakValidation)
	if err == nil {
		return repo.Digest(digest).String(), nil
	}
	tag, terr := name.NewTag(target, name.StrictValidation)
	if terr != nil {
		return "", err
	}
	return tag.Context().Digest(digest).String(), nil
}

// previousCatalog loads a catalog's last render: its FBC and the image its
// CatalogSource pointed at.
func previousCatalog(ctx context.Context, previous fs.FS, catalog string) (*fbc.DeclarativeConfig, string) {
	if previous == nil {
		return nil, ""
	}
	sub, err := fs.Sub(previous, render.ConfigsDir(catalog))
	if err != nil {
		return nil, ""
	}
	if _, err := fs.Stat(sub, "."); err != nil {
		return nil, ""
	}
	cfg, err := fbc.LoadFS(ctx, sub)
	if err != nil {
		return nil, ""
	}
	var obj struct {
		Spec struct {
			Image  string `json:"image"`
			Source struct {
				Image struct {
					Ref string `json:"ref"`
				} `json:"image"`
			} `json:"source"`
		} `json:"spec"`
	}
	if b, err := fs.ReadFile(previous, render.CatalogSourceFile(catalog)); err == nil {
		_ = yaml.Unmarshal(b, &obj)
		return cfg, obj.Spec.Image
	}
	if b, err := fs.ReadFile(previous, render.ClusterCatalogFile(catalog)); err == nil {
		_ = yaml.Unmarshal(b, &obj)
	}
	return cfg, obj.Spec.Source.Image.Ref
}

// deletedCatalogs lists catalogs rendered before that the spec no longer has.
func deletedCatalogs(ctx context.Context, cfg *spec.Config, previous fs.FS) []CatalogChange {
	if previous == nil {
		return nil
	}
	entries, err := fs.ReadDir(previous, render.CatalogsDir)
	if err != nil {
		return nil
	}
	keep := map[string]bool{}
	for _, c := range cfg.Catalogs {
		keep[c.Metadata.Name] = true
	}
	var out []CatalogChange
	for _, e := range entries {
		if e.IsDir() && !keep[e.Name()] {
			prev, img := previousCatalog(ctx, previous, e.Name())
			out = append(out, DiffCatalog(e.Name(), prev, nil, img, ""))
		}
	}
	return out
}

// diffFiles compares the new render with the previous one, over the
// directories Ferry owns, leaving out previous files that cannot be read
// (Compute has refused those already, through diffPrevious).
func diffFiles(previous fs.FS, next map[string][]byte) []FileChange {
	out, _ := diffPrevious(previous, next)
	return out
}

// diffPrevious is diffFiles that also reports previous files that cannot
// be read: the plan must say so rather than list them as files to create,
// which would overwrite them unseen.
func diffPrevious(previous fs.FS, next map[string][]byte) ([]FileChange, error) {
	old := map[string][]byte{}
	var errs []error
	if previous != nil {
		for _, root := range ownedPaths {
			_ = fs.WalkDir(previous, root, func(p string, d fs.DirEntry, err error) error {
				if err == nil && !d.IsDir() {
					b, err := fs.ReadFile(previous, p)
					if err != nil {
						errs = append(errs, fmt.Errorf("previous render: %w", err))
						return nil
					}
					old[p] = b
				}
				return nil
			})
		}
	}
	paths := map[string]bool{}
	for p := range old {
		paths[p] = true
	}
	for p := range next {
		paths[p] = true
	}
	var out []FileChange
	for _, p := range sortedKeys(paths) {
		b0, ok0 := old[p]
		b1, ok1 := next[p]
		a := Unchanged
		switch {
		case !ok0:
			a = Create
		case !ok1:
			a = Delete
		case !bytes.Equal(b0, b1):
			a = Update
		}
		out = append(out, FileChange{Path: p, Action: a})
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, errors.Join(errs...)
}
