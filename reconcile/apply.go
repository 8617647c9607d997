package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	engine "github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/render"
	"github.com/ferry-gitops/ferry/render/mirror"
)

// ApplyOptions are the settings of one Apply.
type ApplyOptions struct {
	// Copy configures the copy engine. Remotes defaults to the Observer's
	// registry client and Platforms to the Mirror's.
	Copy engine.Options
	// Hold names catalogs to hold back whatever the copy does, with why:
	// the cluster step found their change breaking. They keep their
	// previous render, so a GitOps tool applying the render does not make
	// the change either.
	Hold map[string]string
}

// Outcome is what Apply did.
type Outcome struct {
	// Copy is the copy engine's report, nil without a Mirror; CatalogCopy
	// the report of copying built catalog images whose target is outside
	// the mirror, after their push (nil when there are none).
	Copy, CatalogCopy *engine.Report
	// Catalogs says, per built catalog image, whether it was pushed, was
	// already at its target, or was held back.
	Catalogs []CatalogOutcome
	// Files is the render directory to write: the new render, except that
	// every held-back catalog keeps its previous files (or has none if it
	// was never rendered), so no CatalogSource moves to a catalog whose
	// images are not all in the mirror.
	Files map[string][]byte
	// Samples is what mirroring the sample images did, nil when nothing
	// was to mirror.
	Samples *SamplesOutcome
	// Cluster is what the cluster step did, nil when it did not run.
	Cluster *ClusterOutcome
	// Written is set when the render directory was rewritten.
	Written bool
	// Commit is what was committed, nil without a Committer.
	Commit *Commit
}

// CatalogOutcome is what happened to one catalog's image.
type CatalogOutcome struct {
	Name   string
	Image  string // the target pinned by digest
	Pushed bool   // false: the target had it already, or held
	// Held is why the catalog did not move forward, empty when it did.
	Held string
}

// HeldError is Apply's error when anything failed: the images that were
// not mirrored and the catalogs held back because of them. Everything
// else was applied; the next run picks up from there.
type HeldError struct {
	Failed   []*engine.ImageError
	Catalogs []CatalogOutcome
	// PushErrors are catalog images that could not be pushed.
	PushErrors []error
}

func (e *HeldError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d image(s) not mirrored, %d catalog push(es) failed", len(e.Failed), len(e.PushErrors))
	var held []string
	for _, c := range e.Catalogs {
		held = append(held, c.Name)
	}
	if len(held) > 0 {
		fmt.Fprintf(&b, "; held back: %s", strings.Join(held, ", "))
	}
	return b.String()
}

// Apply executes a computed Result in the safe order: copy the image set
// into the mirror; push each built catalog image whose images are all in
// the mirror; return the files to write, where a catalog held back keeps
// its previous render. previous is the previous render directory (nil if
// none). On a partial failure it returns the Outcome and a *HeldError; on
// cancellation, the Outcome so far and the context's error.
func (o *Observer) Apply(ctx context.Context, res *Result, previous fs.FS, opts ApplyOptions) (*Outcome, error) {
	out := &Outcome{}
	held := map[string]string{}
	for name, why := range opts.Hold {
		held[name] = why
	}
	var failed []*engine.ImageError
	// A built catalog image whose target is outside the mirror is copied
	// from its target, so after its push; everything else is copied first.
	var images, catalogs []engine.Pair
	if res.Mirror != nil {
		for _, c := range res.Mirror.CopyPairs() {
			p := engine.Pair{Source: c.Source, Destination: c.Destination}
			if builtCatalog(res.Mirror.Images, c.Destination) {
				catalogs = append(catalogs, p)
			} else {
				images = append(images, p)
			}
		}
		rep, bad, err := o.copy(ctx, res, images, opts)
		out.Copy = rep
		if err != nil {
			return out, err
		}
		failed = append(failed, bad...)
		holdDependents(held, res, bad)
	}
	var pushErrs []error
	pushed := map[string]bool{}
	for _, img := range res.Images {
		if held[img.Catalog] != "" {
			continue
		}
		ok, err := o.push(ctx, img)
		if err != nil {
			held[img.Catalog] = "catalog image not pushed"
			pushErrs = append(pushErrs, fmt.Errorf("catalog %s: push %s: %w", img.Catalog, img.Target, err))
		}
		pushed[img.Catalog] = ok
	}
	if len(catalogs) > 0 {
		var ready []engine.Pair
		for _, p := range catalogs {
			if !anyHeld(held, dependents(res.Mirror.Images, p.Destination)) {
				ready = append(ready, p)
			}
		}
		rep, bad, err := o.copy(ctx, res, ready, opts)
		out.CatalogCopy = rep
		if err != nil {
			return out, err
		}
		failed = append(failed, bad...)
		holdDependents(held, res, bad)
	}
	for _, img := range res.Images {
		out.Catalogs = append(out.Catalogs, CatalogOutcome{Name: img.Catalog, Image: img.Pinned, Pushed: pushed[img.Catalog], Held: held[img.Catalog]})
	}
	files, err := achievedFiles(res, previous, held, out.Copy, out.CatalogCopy)
	if err != nil {
		return out, err
	}
	out.Files = files
	if len(failed) == 0 && len(pushErrs) == 0 {
		return out, nil
	}
	he := &HeldError{Failed: failed, PushErrors: pushErrs}
	for _, c := range out.Catalogs {
		if c.Held != "" {
			he.Catalogs = append(he.Catalogs, c)
		}
	}
	return out, he
}

// copy runs the copy engine on pairs. Failed images are returned, not
// errors: only cancellation and bad input fail the call.
func (o *Observer) copy(ctx context.Context, res *Result, pairs []engine.Pair, opts ApplyOptions) (*engine.Report, []*engine.ImageError, error) {
	if len(pairs) == 0 {
		return nil, nil, nil
	}
	copyOpts := opts.Copy
	if copyOpts.Remotes == nil {
		copyOpts.Remotes = o.Registry
	}
	if copyOpts.Platforms == nil {
		copyOpts.Platforms = res.Mirror.Mirror.Platforms
	}
	rep, err := engine.Copy(ctx, pairs, copyOpts)
	var incomplete *engine.IncompleteError
	if errors.As(err, &incomplete) {
		if cerr := ctx.Err(); cerr != nil {
			return rep, nil, cerr
		}
		return rep, incomplete.Failed, nil
	}
	return rep, nil, err
}

// holdDependents holds back every catalog that needs a failed image.
func holdDependents(held map[string]string, res *Result, failed []*engine.ImageError) {
	for _, f := range failed {
		for _, name := range dependents(res.Mirror.Images, f.Destination) {
			if held[name] == "" {
				held[name] = fmt.Sprintf("image %s not mirrored", f.Source)
			}
		}
	}
}

func anyHeld(held map[string]string, names []string) bool {
	for _, n := range names {
		if held[n] != "" {
			return true
		}
	}
	return false
}

// builtCatalog reports whether the image copied to destination is a built
// catalog image.
func builtCatalog(images []mirror.Image, destination string) bool {
	for i := range images {
		if images[i].Destination == destination && slices.Contains(images[i].Roles, mirror.RoleCatalog) {
			return true
		}
	}
	return false
}

// dependents lists the catalogs needing the image copied to destination.
func dependents(images []mirror.Image, destination string) []string {
	var out []string
	for i := range images {
		if images[i].Destination == destination {
			out = append(out, images[i].Catalogs...)
		}
	}
	return out
}

// push puts a built catalog image at its target unless the target already
// holds that digest: a run with nothing to do writes nothing.
func (o *Observer) push(ctx context.Context, img BuiltImage) (bool, error) {
	ref, err := o.Registry.Reference(img.Target)
	if err != nil {
		return false, err
	}
	if d, err := remote.Head(ref, o.Registry.Remote(ref, remote.WithContext(ctx))...); err == nil && d.Digest.String() == img.Digest {
		return false, nil
	}
	// One layer at a time: base layers read from another repository of
	// the same registry are mounted, and go-containerregistry's writer
	// replaces its HTTP client when it adds a mount source's scope while
	// concurrent layer uploads use it (a data race). A catalog image has a
	// handful of layers.
	// A push that broke off mid-blob starts again; what arrived is found
	// by the existence checks and not sent twice.
	err = o.Registry.Transfer(ctx, func(ctx context.Context) error {
		return remote.Push(ref, img.Image, o.Registry.Remote(ref, remote.WithContext(ctx), remote.WithJobs(1))...)
	})
	if err != nil {
		return false, err
	}
	return true, nil
}

// holdBack returns files where held catalogs have their previous files
// instead; files itself is not changed.
func holdBack(files map[string][]byte, previous fs.FS, held map[string]string) map[string][]byte {
	if len(held) == 0 {
		return maps.Clone(files)
	}
	out := make(map[string][]byte, len(files))
	prefixes := make([]string, 0, len(held))
	for name := range held {
		prefixes = append(prefixes, path.Join(render.CatalogsDir, name)+"/")
	}
	sort.Strings(prefixes)
	isHeld := func(p string) bool {
		for _, pre := range prefixes {
			if strings.HasPrefix(p, pre) {
				return true
			}
		}
		return false
	}
	for p, b := range files {
		if !isHeld(p) {
			out[p] = b
		}
	}
	if previous == nil {
		return out
	}
	for _, pre := range prefixes {
		_ = fs.WalkDir(previous, strings.TrimSuffix(pre, "/"), func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				if b, err := fs.ReadFile(previous, p); err == nil {
					out[p] = b
				}
			}
			return nil
		})
	}
	return out
}

// achievedFiles is the render to write after a run: the new render, where
// every held catalog keeps its previous files and the mirror's files
// (mapping.txt, mirror sets, lock) list only what the mirror holds — an
// image that failed keeps its previous entry or has none, a held catalog's
// unpushed image is not locked. What is committed describes the mirror,
// never only the intent.
func achievedFiles(res *Result, previous fs.FS, held map[string]string, reports ...*engine.Report) (map[string][]byte, error) {
	files := holdBack(res.Files, previous, held)
	if res.Mirror == nil {
		return files, nil
	}
	complete := map[engine.Pair]bool{}
	for _, rep := range reports {
		if rep == nil {
			continue
		}
		for _, im := range rep.Images {
			if im.Action.Complete() {
				complete[im.Pair] = true
			}
		}
	}
	heldNames := map[string]bool{}
	for name := range held {
		heldNames[name] = true
	}
	done := func(img *mirror.Image) bool {
		if img.InPlace {
			// Pushed straight into the mirror: there when none of the
			// catalogs it is built for was held back.
			for _, c := range img.Catalogs {
				if heldNames[c] {
					return false
				}
			}
			return true
		}
		return complete[engine.Pair{Source: img.Pinned(), Destination: img.Destination}]
	}
	var prevLock *mirror.Lock
	if previous != nil {
		if f, err := previous.Open(mirror.LockFile); err == nil {
			prevLock, _ = mirror.ReadLock(f) // an unreadable lock is no lock: nothing previous is kept
			f.Close()
		}
	}
	set := res.Mirror.Achieved(done, heldNames, prevLock)
	mfiles, err := set.Files(res.MirrorOptions())
	if err != nil {
		return nil, fmt.Errorf("mirror: %w", err)
	}
	for p := range files {
		if strings.HasPrefix(p, mirror.Dir+"/") || p == mirror.LockFile {
			delete(files, p)
		}
	}
	for p, b := range mfiles {
		files[p] = b
	}
	return files, nil
}
