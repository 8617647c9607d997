package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/render/mirror"
	"github.com/ferry-gitops/ferry/spec"
)

// resolveConcurrency bounds the HEAD requests that resolve tags.
const resolveConcurrency = 8

// mirrorSet computes the image set and its rendered files when the spec
// has a Mirror: tags are resolved to digests once per run, with HEAD
// requests only.
func (o *Observer) mirrorSet(ctx context.Context, cfg *spec.Config, res *Result, sources map[string]*Source) (*mirror.Set, error) {
	if cfg.Mirror == nil || cfg.Mirror.Spec.Registry == "" {
		return nil, nil
	}
	in := mirror.Input{Mirror: &cfg.Mirror.Spec, Resolved: map[string]string{}}
	for i, rc := range res.Catalogs {
		name := rc.Spec.Metadata.Name
		c := mirror.Catalog{Name: name, Config: rc.Config, Source: rc.Spec.Spec.Source, Target: rc.Spec.Spec.Target}
		if src := sources[name]; src != nil {
			if _, d, ok := strings.Cut(src.Ref, "@"); ok {
				c.SourceDigest = d
			}
		}
		if img := res.Images[i]; img.Catalog == name {
			c.Digest = img.Digest
		}
		in.Catalogs = append(in.Catalogs, c)
	}
	tags, err := mirror.Unresolved(in)
	if err != nil {
		return nil, err
	}
	if err := o.resolve(ctx, tags, in.Resolved); err != nil {
		return nil, err
	}
	return mirror.Build(in)
}

// resolve looks up the digest of every tag reference, in parallel.
func (o *Observer) resolve(ctx context.Context, refs []string, out map[string]string) error {
	var (
		mu   sync.Mutex
		errs []error
		wg   sync.WaitGroup
		sem  = make(chan struct{}, resolveConcurrency)
	)
	for _, ref := range refs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			r, err := o.Registry.Reference(ref)
			if err == nil {
				var desc *remote.Descriptor
				if d, herr := remote.Head(r, o.Registry.Remote(r, remote.WithContext(ctx))...); herr == nil {
					mu.Lock()
					out[ref] = d.Digest.String()
					mu.Unlock()
					return
				}
				// Some registries refuse HEAD on manifests; GET answers.
				desc, err = remote.Get(r, o.Registry.Remote(r, remote.WithContext(ctx))...)
				if err == nil {
					mu.Lock()
					out[ref] = desc.Digest.String()
					mu.Unlock()
					return
				}
			}
			mu.Lock()
			errs = append(errs, fmt.Errorf("resolve %s: %w", ref, err))
			mu.Unlock()
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
