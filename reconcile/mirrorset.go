package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"sync"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/render/mirror"
	"github.com/ferry-gitops/ferry/spec"
)

// resolveConcurrency bounds the HEAD requests that resolve tags.
const resolveConcurrency = 8

// mirrorSet computes the image set when the spec has a Mirror: tags are
// resolved to digests once per run, with HEAD requests only.
//
// A tag that cannot be resolved fails only what needs it. It keeps the
// digest the previous run's lock recorded when there is one (the mirror
// holds it, and the render keeps pointing at it); otherwise an
// additionalImages entry naming it is left out, and a catalog listing it
// fails and stands on its previous render, whose own tags are then
// resolved in turn. The failures are returned; the error is for a set that
// cannot be built at all.
func (o *Observer) mirrorSet(ctx context.Context, cfg *spec.Config, outcomes []*catalogOutcome, previous fs.FS) (*mirror.Set, []Failure, error) {
	if cfg.Mirror == nil || cfg.Mirror.Spec.Registry == "" {
		return nil, nil, nil
	}
	lock := previousLock(previous)
	locked := map[string]string{}
	if lock != nil {
		locked = lock.Resolved()
	}
	m := cfg.Mirror.Spec
	m.AdditionalImages = slices.Clone(m.AdditionalImages)
	resolved := map[string]string{}
	failed := map[string]error{} // tag -> why it could not be resolved
	var failures []Failure
	dropped := map[int]bool{} // additionalImages left out
	// Each round either builds the set or fails at least one more catalog,
	// so it ends within one round per catalog.
	for {
		in := mirror.Input{Mirror: &m, Resolved: resolved}
		for i, raw := range cfg.Mirror.Spec.AdditionalImages {
			if dropped[i] {
				m.AdditionalImages[i] = ""
			} else {
				m.AdditionalImages[i] = raw
			}
		}
		for _, out := range outcomes {
			c := out.mirror
			if out.failure != nil && c.Config == nil {
				continue // failed, and never rendered: nothing to mirror
			}
			if out.failure != nil && lock != nil {
				for _, lc := range lock.Catalogs {
					if lc.Name == c.Name {
						c.SourceDigest = lc.SourceDigest
					}
				}
			}
			in.Catalogs = append(in.Catalogs, c)
		}
		tags, err := mirror.Unresolved(in)
		if err != nil {
			return nil, nil, err
		}
		var ask []string
		for _, t := range tags {
			if _, done := resolved[t]; !done && failed[t] == nil {
				ask = append(ask, t)
			}
		}
		errs := o.resolve(ctx, ask, resolved)
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, cerr
		}
		for _, ref := range sortedKeys(errs) {
			err := errs[ref]
			failed[ref] = err
			f := Failure{Kind: FailedImage, Name: ref, Reason: registry.Redact(err.Error())}
			if d, ok := locked[ref]; ok {
				resolved[ref] = d
				f.Kept = "keeps the digest of the previous run, " + d
			}
			failures = append(failures, f)
		}
		var missing []string
		for _, t := range tags {
			if _, ok := resolved[t]; !ok {
				missing = append(missing, t)
			}
		}
		if len(missing) == 0 {
			m.AdditionalImages = slices.DeleteFunc(m.AdditionalImages, func(s string) bool { return s == "" })
			set, err := mirror.Build(in)
			return set, failures, err
		}
		progress := false
		needs := mirror.Needs(in, missing)
		for _, ref := range missing {
			need := needs[ref]
			for _, i := range need.AdditionalImages {
				dropped[i] = true
				progress = true
			}
			for _, name := range need.Catalogs {
				for _, out := range outcomes {
					if out.spec.Metadata.Name == name && out.failure == nil {
						out.fail(ctx, previous, fmt.Errorf("image %s: %w", ref, failed[ref]))
						progress = true
					}
				}
			}
		}
		if !progress {
			// Only catalogs already standing on their previous render need
			// these tags, and the previous lock does not have them.
			return nil, nil, &mirror.MissingDigestError{Refs: missing}
		}
	}
}

// previousLock reads the previous render's lock, nil when there is none or
// it does not parse (it is then only a fallback lost).
func previousLock(previous fs.FS) *mirror.Lock {
	if previous == nil {
		return nil
	}
	f, err := previous.Open(mirror.LockFile)
	if err != nil {
		return nil
	}
	defer f.Close()
	l, err := mirror.ReadLock(f)
	if err != nil {
		return nil
	}
	return l
}

// resolve looks up the digest of every tag reference, in parallel, and
// returns why each one that failed did.
func (o *Observer) resolve(ctx context.Context, refs []string, out map[string]string) map[string]error {
	var (
		mu   sync.Mutex
		errs = map[string]error{}
		wg   sync.WaitGroup
		sem  = make(chan struct{}, resolveConcurrency)
	)
	for _, ref := range refs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			d, err := o.digestOf(ctx, ref)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				errs[ref] = fmt.Errorf("resolve: %w", err)
				return
			}
			out[ref] = d
		}()
	}
	wg.Wait()
	return errs
}

// digestOf resolves one tag with a HEAD, or a GET for registries that
// refuse HEAD on manifests.
func (o *Observer) digestOf(ctx context.Context, ref string) (string, error) {
	r, err := o.Registry.Reference(ref)
	if err != nil {
		return "", err
	}
	d, herr := remote.Head(r, o.Registry.Remote(r, remote.WithContext(ctx))...)
	if herr == nil {
		return d.Digest.String(), nil
	}
	var answer *transport.Error
	if !errors.As(herr, &answer) {
		return "", herr // the registry was not reached: a GET would wait as long again
	}
	var desc *remote.Descriptor
	err = o.Registry.Transfer(ctx, func(ctx context.Context) error {
		desc, err = remote.Get(r, o.Registry.Remote(r, remote.WithContext(ctx))...)
		return err
	})
	if err != nil {
		return "", errors.Join(herr, err)
	}
	return desc.Digest.String(), nil
}
