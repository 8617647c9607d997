package reconcile

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sort"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/render/mirror"
)

// CopyPlan is what the mirror lacks of the image set, as --dry-run and
// diff show it.
type CopyPlan struct {
	// Images are the images to copy, sorted by destination.
	Images []ImageCopy `json:"images,omitempty"`
	// Bytes sums their sizes: an upper bound of what a reconcile uploads,
	// since blobs the mirror holds already are mounted or skipped.
	Bytes int64 `json:"bytes"`
	// Present counts images already in the mirror.
	Present int `json:"present"`
	// Unchecked says why the mirror could not be asked (unreachable,
	// credentials refused); every image is then listed, without sizes.
	Unchecked string `json:"unchecked,omitempty"`
}

// ImageCopy is one image the mirror lacks.
type ImageCopy struct {
	Source      string `json:"source"`
	Destination string `json:"destination"`
	// Bytes is the image's size: manifests, configs and layers (every
	// child of an index), 0 when unknown.
	Bytes int64 `json:"bytes"`
}

// checkConcurrency bounds the requests CheckMirror has in flight.
const checkConcurrency = 8

// CheckMirror asks the mirror which images of the set it lacks (one HEAD
// per image, as a reconcile would) and the sources how large those are. It
// only reads. The first image the mirror cannot be asked about stops the
// check: every request retries under the registry policy, so asking about
// thousands of images of an unreachable mirror would take hours.
func (o *Observer) CheckMirror(ctx context.Context, set *mirror.Set) *CopyPlan {
	pairs := set.CopyPairs()
	cp := &CopyPlan{}
	results := make([]ImageCopy, len(pairs))
	missing := make([]bool, len(pairs))
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		sem      = make(chan struct{}, checkConcurrency)
		failures []error
	)
	for i, c := range pairs {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			present, err := o.present(ctx, c)
			if err != nil {
				mu.Lock()
				if ctx.Err() == nil {
					failures = append(failures, fmt.Errorf("%s: %w", c.Destination, err))
				}
				mu.Unlock()
				cancel()
				return
			}
			if present {
				return
			}
			missing[i] = true
			results[i] = ImageCopy{Source: c.Source, Destination: c.Destination}
			results[i].Bytes, _ = o.imageSize(ctx, c.Source)
		}()
	}
	wg.Wait()
	if len(failures) == 0 && ctx.Err() != nil {
		failures = append(failures, ctx.Err())
	}
	if len(failures) > 0 {
		cp.Unchecked = fmt.Sprintf("the mirror could not be asked: %s", registry.Redact(failures[0].Error()))
		for _, c := range pairs {
			cp.Images = append(cp.Images, ImageCopy{Source: c.Source, Destination: c.Destination})
		}
		return cp
	}
	for i := range pairs {
		if missing[i] {
			cp.Images = append(cp.Images, results[i])
			cp.Bytes += results[i].Bytes
		} else {
			cp.Present++
		}
	}
	sort.SliceStable(cp.Images, func(i, j int) bool { return cp.Images[i].Destination < cp.Images[j].Destination })
	return cp
}

// present HEADs the destination: true when it holds the pair's digest, false
// when it answers 404 or another digest.
func (o *Observer) present(ctx context.Context, c mirror.Copy) (bool, error) {
	ref, err := o.Registry.Reference(c.Destination)
	if err != nil {
		return false, err
	}
	d, err := remote.Head(ref, o.Registry.Remote(ref, remote.WithContext(ctx))...)
	var te *transport.Error
	if errors.As(err, &te) && te.StatusCode == http.StatusNotFound {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return d.Digest.String() == c.Digest, nil
}

// imageSize sums an image's manifests and blobs at the source.
func (o *Observer) imageSize(ctx context.Context, source string) (int64, error) {
	ref, err := o.Registry.Reference(source)
	if err != nil {
		return 0, err
	}
	desc, err := remote.Get(ref, o.Registry.Remote(ref, remote.WithContext(ctx))...)
	if err != nil {
		return 0, err
	}
	total := desc.Size
	if desc.MediaType.IsIndex() {
		idx, err := desc.ImageIndex()
		if err != nil {
			return total, err
		}
		m, err := idx.IndexManifest()
		if err != nil {
			return total, err
		}
		for _, child := range m.Manifests {
			n, err := o.imageSize(ctx, ref.Context().Digest(child.Digest.String()).String())
			if err != nil {
				return total, err
			}
			total += n
		}
		return total, nil
	}
	img, err := desc.Image()
	if err != nil {
		return total, err
	}
	m, err := img.Manifest()
	if err != nil {
		return total, err
	}
	total += m.Config.Size
	for _, l := range m.Layers {
		total += l.Size
	}
	return total, nil
}
