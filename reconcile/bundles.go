package reconcile

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ferry-gitops/ferry/internal/bundle"
	"github.com/ferry-gitops/ferry/internal/catalogimage"
	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/render"
	"github.com/ferry-gitops/ferry/spec"
)

// bundleAdder fetches a Catalog's extra bundle images (registry images by
// digest, or OCI layouts), renders each to an olm.bundle as `opm render`
// would, and returns the step that adds them to the source catalog.
//
// A bundle that cannot be fetched or rendered does not stop the others:
// the step reports it together with every bundle that cannot be added,
// each by its spec.bundles position and file:line, so one run lists all
// there is to fix.
func (o *Observer) bundleAdder(ctx context.Context, c *spec.Catalog) (render.Adder, error) {
	if len(c.Spec.Bundles) == 0 {
		return nil, nil
	}
	var adds []bundle.Addition
	var specIdx []int
	var failed []*bundle.AdditionError
	for i, ref := range c.Spec.Bundles {
		origin := bundleOrigin(c, i)
		b, p, err := o.renderBundle(ctx, c, ref.Image)
		if err != nil {
			failed = append(failed, &bundle.AdditionError{Index: i, Origin: origin, Image: ref.Image, Err: err})
			continue
		}
		adds = append(adds, bundle.Addition{
			Bundle:          b,
			Placement:       p,
			Mode:            bundle.Mode(cmp.Or(ref.AddMode, c.Spec.AddMode)),
			ReplaceExisting: ref.ReplaceExisting,
			Origin:          origin,
		})
		specIdx = append(specIdx, i)
	}
	return func(cfg *fbc.DeclarativeConfig) (*render.Added, error) {
		var bad []*bundle.AdditionError
		for i := range adds {
			if err := bundle.FollowForm(cfg, &adds[i].Bundle); err != nil {
				bad = append(bad, &bundle.AdditionError{Index: specIdx[i], Origin: adds[i].Origin, Image: c.Spec.Bundles[specIdx[i]].Image, Err: err})
			}
		}
		edges, err := bundle.AddAll(cfg, adds)
		var addErr *bundle.Error
		switch {
		case errors.As(err, &addErr):
			for _, a := range addErr.Additions {
				a.Index = specIdx[a.Index]
				bad = append(bad, a)
			}
		case err != nil:
			return nil, err
		}
		if bad = append(bad, failed...); len(bad) > 0 {
			slices.SortStableFunc(bad, func(x, y *bundle.AdditionError) int { return cmp.Compare(x.Index, y.Index) })
			return nil, &bundle.Error{Additions: bad}
		}
		out := &render.Added{Bundles: map[string][]string{}, Edges: edges}
		for _, a := range adds {
			out.Bundles[a.Bundle.Package] = append(out.Bundles[a.Bundle.Package], a.Bundle.Name)
		}
		return out, nil
	}, nil
}

// renderBundle reads one bundle image. A registry image is recorded by
// digest; a bundle from an OCI layout has no reference the cluster could
// pull, so it is recorded without an image and keeps its manifests as
// olm.bundle.object properties, which is how `opm render` records a bundle
// directory and how OLM installs a bundle without an image.
func (o *Observer) renderBundle(ctx context.Context, c *spec.Catalog, ref string) (fbc.Bundle, bundle.Placement, error) {
	_, img, pinned, err := o.fetchRef(ctx, c, ref)
	if err != nil {
		return fbc.Bundle{}, bundle.Placement{}, err
	}
	fsys, err := catalogimage.ReadDirs(img, o.Limits, "/manifests", "/metadata")
	if err != nil {
		return fbc.Bundle{}, bundle.Placement{}, err
	}
	if spec.IsOCISource(ref) {
		pinned = ""
	}
	return bundle.Render(fsys, pinned, bundle.Options{})
}

// bundleOrigin names spec.bundles[i] of c with its file and line.
func bundleOrigin(c *spec.Catalog, i int) string {
	field := fmt.Sprintf("spec.bundles[%d]", i)
	if c.Origin == nil || c.Origin.File == "" {
		return field
	}
	return fmt.Sprintf("%s (%s:%d)", field, c.Origin.File, c.Origin.LineOf(field))
}
