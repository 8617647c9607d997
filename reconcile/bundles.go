package reconcile

import (
	"context"
	"fmt"

	"github.com/ferry-gitops/ferry/internal/bundle"
	"github.com/ferry-gitops/ferry/internal/catalogimage"
	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/render"
	"github.com/ferry-gitops/ferry/spec"
)

// bundleAdder fetches a Catalog's extra bundle images, renders each to an
// olm.bundle as `opm render` would, and returns the step that places them
// in the filtered catalog. Bundles are referenced by digest in the result.
func (o *Observer) bundleAdder(ctx context.Context, c *spec.Catalog) (render.Adder, error) {
	if len(c.Spec.Bundles) == 0 {
		return nil, nil
	}
	type rendered struct {
		b fbc.Bundle
		p bundle.Placement
	}
	var all []rendered
	for _, ref := range c.Spec.Bundles {
		_, img, pinned, err := o.fetch(ctx, ref, c.Spec.Platform)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: bundle %s: %w", c.Metadata.Name, ref, err)
		}
		tree, err := catalogimage.ReadDirs(ctx, img, o.readOptions(pinned), "/manifests", "/metadata")
		if err != nil {
			return nil, fmt.Errorf("catalog %s: bundle %s: %w", c.Metadata.Name, ref, err)
		}
		b, p, err := bundle.Render(tree.FS, pinned, bundle.DefaultOptions())
		tree.Close()
		if err != nil {
			return nil, fmt.Errorf("catalog %s: bundle %s: %w", c.Metadata.Name, ref, err)
		}
		all = append(all, rendered{b, p})
	}
	return func(cfg *fbc.DeclarativeConfig) error {
		for _, r := range all {
			if err := bundle.Add(cfg, r.b, r.p); err != nil {
				return fmt.Errorf("%s: %w", r.b.Name, err)
			}
		}
		return nil
	}, nil
}
