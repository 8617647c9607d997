package reconcile

import (
	"context"

	"github.com/ferry-gitops/ferry/internal/airgap"
	engine "github.com/ferry-gitops/ferry/internal/mirror"
)

// ExportOptions are the settings of Export; Archive carries the path,
// Since, concurrency and progress. Remotes defaults to the Observer's
// registry client.
type ExportOptions struct {
	Archive airgap.ExportOptions
}

// Export writes what Apply would put in the mirror into an archive for the
// other side of an air gap: every image of the image set, the built
// catalog images (at their mirror destination), and the render directory's
// files, which `ferry import` writes once the images are in the mirror.
// Nothing else is written anywhere.
func (o *Observer) Export(ctx context.Context, res *Result, opts ExportOptions) (*airgap.ExportReport, error) {
	a := opts.Archive
	if a.Remotes == nil {
		a.Remotes = o.Registry
	}
	a.Files = res.Files
	// A built catalog image goes to its target when the target is in the
	// mirror, else to where the mirror would copy it from the target (its
	// copy pair is dropped: the target holds nothing yet).
	dest := map[string]string{}
	var pairs []engine.Pair
	if res.Mirror != nil {
		for _, c := range res.Mirror.CopyPairs() {
			if builtCatalog(res.Mirror.Images, c.Destination) {
				dest[c.Digest] = c.Destination
				continue
			}
			pairs = append(pairs, engine.Pair{Source: c.Source, Destination: c.Destination})
		}
	}
	for _, img := range res.Images {
		d := img.Target
		if m, ok := dest[img.Digest]; ok {
			d = m
		}
		a.Built = append(a.Built, airgap.Built{Image: img.Image, Destination: d})
	}
	return airgap.Export(ctx, pairs, a)
}
