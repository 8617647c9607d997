package mirror

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Copy copies every pair into its destination and reports what it did.
//
// Every pair is validated first; a bad reference, or two sources for one
// destination tag, fails the call before anything is read or written.
// After that Copy never stops early: an image that cannot be copied is
// recorded and the run goes on. The error is nil when every image is
// complete, an *IncompleteError otherwise (the Report is returned either
// way). Cancelling ctx stops the run promptly; whatever was put before is
// kept, and the next run copies only the rest.
func Copy(ctx context.Context, pairs []Pair, opts Options) (*Report, error) {
	start := time.Now()
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	parsed, err := parse(pairs, opts.Remotes)
	if err != nil {
		return nil, err
	}
	platforms, err := parsePlatforms(opts.Platforms)
	if err != nil {
		return nil, err
	}
	c := &copier{opts: opts, platforms: platforms, endpoints: map[string]*endpoint{}}

	// Identical pairs are copied once.
	first := map[Pair]int{}
	var jobs []int
	for i, p := range parsed {
		if _, ok := first[p.Pair]; !ok {
			first[p.Pair] = i
			jobs = append(jobs, i)
		}
	}
	results := make([]ImageResult, len(parsed))
	work := make(chan int)
	var wg sync.WaitGroup
	for range min(len(jobs), c.workers()) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				results[i] = c.copyImage(ctx, parsed[i])
				r := results[i]
				opts.Reporter.Report(Event{Kind: EventImage, Image: &r})
			}
		}()
	}
	for _, i := range jobs {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, p := range parsed {
		if j := first[p.Pair]; j != i {
			results[i] = results[j]
		}
	}
	return c.finish(results, time.Since(start))
}

// copier is one run's state.
type copier struct {
	opts      Options
	platforms []v1.Platform

	mu        sync.Mutex
	endpoints map[string]*endpoint
	resolved  sync.Map // source tag -> *resolution

	manifests, indexesCompleted, uploadsRecovered atomic.Int64
	blobsPresent, blobsMounted, blobsUploaded     atomic.Int64
	bytesPresent, bytesMounted, bytesUploaded     atomic.Int64
}

// endpoint is one registry as the run sees it.
type endpoint struct {
	host   string
	sem    chan struct{}
	tr     *engineTransport
	puller *remote.Puller
	pusher *remote.Pusher

	blobs     blobTable
	manifests flights
	repos     sync.Map // repository path -> *repoGate
}

// repoGate serialises what go-containerregistry's per-repository writer
// cannot take concurrently. The Pusher shares one writer per repository,
// and an upload mounting from a repository the writer has no token scope
// for yet replaces the writer's HTTP client and scope list
// (remote.writer.maybeUpdateScopes), racing every other request on that
// writer. Such an upload runs alone; every other request on the repository
// (uploads, self-mounts, manifest puts) shares the gate.
type repoGate struct {
	rw     sync.RWMutex
	mu     sync.Mutex
	scoped map[string]bool // mount sources already in the writer's scopes
}

func (e *endpoint) gate(repo string) *repoGate {
	g, _ := e.repos.LoadOrStore(repo, &repoGate{scoped: map[string]bool{}})
	return g.(*repoGate)
}

// enter admits a request on repo that may mount from from ("" or repo
// itself: no mount source to add). The returned func ends it; ok says
// whether the writer got past its scope update (then from is scoped).
func (g *repoGate) enter(repo, from string) func(ok bool) {
	g.mu.Lock()
	fresh := from != "" && from != repo && !g.scoped[from]
	g.mu.Unlock()
	if !fresh {
		g.rw.RLock()
		return func(bool) { g.rw.RUnlock() }
	}
	g.rw.Lock()
	return func(ok bool) {
		if ok {
			g.mu.Lock()
			g.scoped[from] = true
			g.mu.Unlock()
		}
		g.rw.Unlock()
	}
}

// workers is how many images are in flight: enough that every registry's
// slots stay busy while images wait on manifests and each other.
func (c *copier) workers() int {
	n := c.opts.Concurrency
	for _, v := range c.opts.RegistryConcurrency {
		n = max(n, v)
	}
	return 4 * n
}

func (c *copier) endpoint(ref name.Reference) (*endpoint, error) {
	host := ref.Context().RegistryStr()
	c.mu.Lock()
	defer c.mu.Unlock()
	if ep, ok := c.endpoints[host]; ok {
		return ep, nil
	}
	limit := c.opts.limit(host)
	progress := func(n int64) { c.opts.Reporter.Report(Event{Kind: EventBytes, Bytes: n}) }
	tr := newTransport(host, declaredInsecure(ref.Context().Registry), 2*limit, c.opts.Retry, c.opts.Log, progress)
	ropts := c.opts.Remotes.Remote(ref, remoteOptions(tr)...)
	puller, err := remote.NewPuller(ropts...)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", host, err)
	}
	pusher, err := remote.NewPusher(ropts...)
	if err != nil {
		return nil, fmt.Errorf("registry %s: %w", host, err)
	}
	ep := &endpoint{host: host, sem: make(chan struct{}, limit), tr: tr, puller: puller, pusher: pusher}
	for d, repo := range c.opts.BlobHints {
		if h, path, ok := strings.Cut(repo, "/"); ok && h == host {
			ep.blobs.hint(d, path)
		}
	}
	c.endpoints[host] = ep
	return ep, nil
}

// hold takes one slot of each registry, in host order so two operations
// never wait on each other. Nothing waits while holding slots except for
// the registries themselves, so slots are always given back.
func hold(ctx context.Context, eps ...*endpoint) (func(), error) {
	if len(eps) == 2 && eps[0] == eps[1] {
		eps = eps[:1]
	}
	if len(eps) == 2 && eps[0].host > eps[1].host {
		eps = []*endpoint{eps[1], eps[0]}
	}
	var held []*endpoint
	release := func() {
		for _, ep := range held {
			<-ep.sem
		}
	}
	for _, ep := range eps {
		select {
		case ep.sem <- struct{}{}:
			held = append(held, ep)
		case <-ctx.Done():
			release()
			return nil, ctx.Err()
		}
	}
	return release, nil
}

// op runs fn holding slots of eps, and runs it again (slots given back
// while it waits) when it failed in a way the request layer could not
// retry: a blob stream that broke or stalled after its response started, a
// PATCH refused with a 5xx.
func (c *copier) op(ctx context.Context, eps []*endpoint, fn func(context.Context) error) error {
	return c.opts.Retry.Transfer(ctx, c.opts.Log, transferRetryable, func(ctx context.Context) error {
		release, err := hold(ctx, eps...)
		if err != nil {
			return err
		}
		defer release()
		return fn(ctx)
	})
}

// permanentError marks a failure no retry can fix.
type permanentError struct{ error }

func (e permanentError) Unwrap() error { return e.error }

// transferRetryable is the engine's judgement: unlike a read, a copy is
// worth another try on any failure but cancellation, a permanent one, and
// what registry.TransferRetryable refuses for a reason (requests the
// transport gave up on, content over a limit, a registry's final answer).
func transferRetryable(err error) bool {
	var pe permanentError
	var ee *registry.ExhaustedError
	var tl *registry.TooLargeError
	var te *transport.Error
	switch {
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &pe) || errors.As(err, &ee) || errors.As(err, &tl):
		return false
	case errors.As(err, &te):
		return registry.TransferRetryable(err)
	}
	return true
}

func isNotFound(err error) bool {
	var te *transport.Error
	return errors.As(err, &te) && te.StatusCode == http.StatusNotFound
}

// resolution is a source tag resolved once per run.
type resolution struct {
	once   sync.Once
	digest string
	err    error
}

func (c *copier) resolve(ctx context.Context, src *endpoint, ref name.Reference) (string, error) {
	v, _ := c.resolved.LoadOrStore(ref.String(), &resolution{})
	r := v.(*resolution)
	r.once.Do(func() {
		r.err = c.op(ctx, []*endpoint{src}, func(ctx context.Context) error {
			d, err := src.puller.Head(ctx, ref)
			if err == nil {
				r.digest = d.Digest.String()
			}
			return err
		})
		if r.err != nil {
			r.err = fmt.Errorf("resolve %s: %w", ref, r.err)
		}
	})
	return r.digest, r.err
}

// node is one manifest to copy: digest from srcRepo into dstRepo, put
// under tag when there is one.
type node struct {
	src, dst         *endpoint
	srcRepo, dstRepo name.Repository
	digest           string
	tag              string
}

func (c *copier) copyImage(ctx context.Context, pp parsedPair) ImageResult {
	res := ImageResult{Pair: pp.Pair}
	fail := func(err error) ImageResult {
		res.Action = ActionFailed
		res.Err = newImageError(pp.Pair, err)
		c.opts.Log.Warn("image not mirrored", "source", pp.Source, "destination", pp.Destination, "reason", res.Err.Reason)
		return res
	}
	src, err := c.endpoint(pp.src)
	if err != nil {
		return fail(err)
	}
	dst, err := c.endpoint(pp.dst.Tag("ferry"))
	if err != nil {
		return fail(err)
	}
	// The one request an image already in the mirror costs: a HEAD of
	// the destination tag, or of the digest. A source tag is resolved at
	// the same time when the destination has a tag to compare with.
	digest, found := pp.digest, ""
	switch {
	case digest == "" && pp.tag != "":
		var rerr error
		done := make(chan struct{})
		go func() {
			defer close(done)
			digest, rerr = c.resolve(ctx, src, pp.src)
		}()
		found, err = c.head(ctx, dst, pp.dst.Tag(pp.tag))
		<-done
		if rerr != nil {
			return fail(rerr)
		}
	case digest == "":
		if digest, err = c.resolve(ctx, src, pp.src); err != nil {
			return fail(err)
		}
		found, err = c.head(ctx, dst, pp.dst.Digest(digest))
	case pp.tag != "":
		found, err = c.head(ctx, dst, pp.dst.Tag(pp.tag))
	default:
		found, err = c.head(ctx, dst, pp.dst.Digest(digest))
	}
	res.Digest = digest
	res.Mirrored = pp.dst.Digest(digest).String()
	if err != nil {
		return fail(err)
	}
	if found == digest {
		res.Action = ActionPresent
		return res
	}
	n := node{src: src, dst: dst, srcRepo: pp.src.Context(), dstRepo: pp.dst, digest: digest, tag: pp.tag}
	if err := c.copyManifest(ctx, n, false); err != nil {
		return fail(err)
	}
	res.Action = ActionCopied
	return res
}

// head returns the digest ref resolves to in the destination, "" when it
// does not exist.
func (c *copier) head(ctx context.Context, dst *endpoint, ref name.Reference) (string, error) {
	var got string
	err := c.op(ctx, []*endpoint{dst}, func(ctx context.Context) error {
		d, err := dst.puller.Head(ctx, ref)
		if err == nil {
			got = d.Digest.String()
		}
		return err
	})
	if isNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("check %s: %w", ref, err)
	}
	return got, nil
}

// copyManifest copies n once per run and destination repository; check
// asks for a HEAD first (children: a killed run may have put them).
func (c *copier) copyManifest(ctx context.Context, n node, check bool) error {
	ran, err := n.dst.manifests.do(ctx, n.dstRepo.String()+"@"+n.digest, func() error {
		return c.copyManifestOnce(ctx, n, check)
	})
	if err != nil || ran || n.tag == "" {
		return err
	}
	// Another image put the same manifest without this tag.
	m, err := c.fetch(ctx, n)
	if err != nil {
		return err
	}
	return c.put(ctx, n, m)
}

func (c *copier) fetch(ctx context.Context, n node) (*remote.Descriptor, error) {
	var m *remote.Descriptor
	err := c.op(ctx, []*endpoint{n.src}, func(ctx context.Context) error {
		d, err := n.src.puller.Get(ctx, n.srcRepo.Digest(n.digest))
		m = d
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("get manifest %s: %w", n.srcRepo.Digest(n.digest), err)
	}
	return m, nil
}

func (c *copier) copyManifestOnce(ctx context.Context, n node, check bool) error {
	if check {
		found, err := c.head(ctx, n.dst, n.dstRepo.Digest(n.digest))
		if err != nil || found == n.digest {
			return err
		}
	}
	m, err := c.fetch(ctx, n)
	if err != nil {
		return err
	}
	mt := manifestMediaType(m)
	switch {
	case mt.IsIndex():
		idx, err := v1.ParseIndexManifest(bytes.NewReader(m.Manifest))
		if err != nil {
			return permanentError{fmt.Errorf("index %s: %w", n.digest, err)}
		}
		selected, skipped := c.selectChildren(idx.Manifests)
		if err := c.copyChildren(ctx, n, selected); err != nil {
			return err
		}
		err = c.put(ctx, n, m)
		if err == nil || len(skipped) == 0 || !refusedForChildren(err) {
			return err
		}
		// The registry validates indexes: it needs every child to keep the
		// digest. Copy the rest rather than rewrite the index.
		if err := c.copyChildren(ctx, n, skipped); err != nil {
			return err
		}
		c.indexesCompleted.Add(1)
		return c.put(ctx, n, m)
	case mt.IsImage():
		mf, err := v1.ParseManifest(bytes.NewReader(m.Manifest))
		if err != nil {
			return permanentError{fmt.Errorf("manifest %s: %w", n.digest, err)}
		}
		if err := c.copyBlobs(ctx, n, append([]v1.Descriptor{mf.Config}, mf.Layers...)); err != nil {
			return err
		}
		return c.put(ctx, n, m)
	case mt.IsSchema1():
		return permanentError{fmt.Errorf("manifest %s is Docker schema 1, which Ferry does not mirror", n.digest)}
	default:
		return permanentError{fmt.Errorf("manifest %s has unsupported media type %q", n.digest, mt)}
	}
}

// manifestMediaType trusts the registry's Content-Type, then the
// manifest's own mediaType, then its shape (OCI allows neither).
func manifestMediaType(m *remote.Descriptor) types.MediaType {
	if m.MediaType.IsIndex() || m.MediaType.IsImage() || m.MediaType.IsSchema1() {
		return m.MediaType
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if err := json.Unmarshal(m.Manifest, &probe); err != nil {
		return m.MediaType
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.Manifests != nil:
		return types.OCIImageIndex
	case probe.Config != nil:
		return types.OCIManifestSchema1
	}
	return m.MediaType
}

// refusedForChildren: the registry would not take an index because a
// child is missing (distribution: 400 MANIFEST_BLOB_UNKNOWN; others 400 or
// 404 with MANIFEST_UNKNOWN or BLOB_UNKNOWN).
func refusedForChildren(err error) bool {
	var te *transport.Error
	if !errors.As(err, &te) || (te.StatusCode != http.StatusBadRequest && te.StatusCode != http.StatusNotFound) {
		return false
	}
	for _, d := range te.Errors {
		switch d.Code {
		case transport.ManifestUnknownErrorCode, transport.BlobUnknownErrorCode, transport.ManifestBlobUnknownErrorCode, transport.ManifestInvalidErrorCode:
			return true
		}
	}
	return len(te.Errors) == 0
}

func parsePlatforms(ss []string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, s := range ss {
		p, err := v1.ParsePlatform(s)
		if err != nil {
			return nil, fmt.Errorf("mirror: platform %q: %w", s, err)
		}
		out = append(out, *p)
	}
	return out, nil
}

// selectChildren splits an index's children by Platforms. A child without
// a platform (an attestation, say) is kept only when copying everything.
func (c *copier) selectChildren(children []v1.Descriptor) (selected, skipped []v1.Descriptor) {
	if len(c.platforms) == 0 {
		return children, nil
	}
	for _, d := range children {
		keep := false
		if d.Platform != nil {
			for _, p := range c.platforms {
				if d.Platform.Satisfies(p) {
					keep = true
					break
				}
			}
		}
		if keep {
			selected = append(selected, d)
		} else {
			skipped = append(skipped, d)
		}
	}
	return selected, skipped
}

// copyChildren copies an index's children, all at once (the registry slots
// bound the work), before the index itself.
func (c *copier) copyChildren(ctx context.Context, n node, children []v1.Descriptor) error {
	return each(children, func(d v1.Descriptor) error {
		child := n
		child.digest, child.tag = d.Digest.String(), ""
		if !d.MediaType.IsIndex() && !d.MediaType.IsImage() && d.MediaType != "" {
			// An index may list blobs (OCI artifacts); copy them as blobs.
			return c.copyBlobs(ctx, n, []v1.Descriptor{d})
		}
		return c.copyManifest(ctx, child, true)
	})
}

// copyBlobs puts an image's blobs into n.dstRepo.
func (c *copier) copyBlobs(ctx context.Context, n node, descs []v1.Descriptor) error {
	seen := map[v1.Hash]bool{}
	var todo []v1.Descriptor
	for _, d := range descs {
		// Foreign layers (Windows base layers) stay where their URLs say.
		if seen[d.Digest] || (!d.MediaType.IsDistributable() && len(d.URLs) > 0) {
			continue
		}
		seen[d.Digest] = true
		todo = append(todo, d)
	}
	return each(todo, func(d v1.Descriptor) error { return c.copyBlob(ctx, n, d) })
}

// each runs fn for every item concurrently and returns the first error,
// after all have finished (work done for the others is kept for the next
// run).
func each[T any](items []T, fn func(T) error) error {
	if len(items) == 1 {
		return fn(items[0])
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for _, it := range items {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := fn(it); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

// copyBlob puts one blob into n.dstRepo: nothing when the run already saw
// it there, else a mount from a repository that holds it (learned this run,
// a hint, or the destination repository itself), else an upload streamed
// from the source in the session the refused mount opened.
func (c *copier) copyBlob(ctx context.Context, n node, d v1.Descriptor) error {
	digest := d.Digest.String()
	cl, err := n.dst.blobs.claim(ctx, digest, n.dstRepo.RepositoryStr())
	if err != nil {
		return err
	}
	if cl.known {
		c.blob(BlobPresent, d)
		return nil
	}
	var action BlobAction
	// sentWhole: an earlier attempt streamed every byte of the blob to the
	// registry and then lost the answer (a stall or reset while the
	// registry wrote it to disk). The registry may have committed it, so
	// the next attempt asks the destination repository first, and a blob
	// found there was uploaded by this run, once: it counts as uploaded.
	sentWhole := false
	// The operation holds a slot of the destination; the source's slot is
	// taken only while the blob streams (most blobs are found or mounted
	// without reading the source at all).
	err = c.op(ctx, []*endpoint{n.dst}, func(ctx context.Context) error {
		// No HEAD: the mount request asks the same question. Mounting
		// from the destination repository itself answers 201 when the
		// blob is there already (a resumed run) and opens the upload
		// session otherwise, so a blob costs one request when present or
		// mountable and two when uploaded, instead of one more each.
		rec := &recorder{digest: digest, skipHead: true}
		ctx = withRecorder(ctx, rec)
		src := &sourceBlob{ctx: ctx, puller: n.src.puller, ref: n.srcRepo.Digest(digest), desc: d}
		if n.src != n.dst {
			src.slot = n.src
		}
		defer src.release()
		from := cl.from
		if from == "" && n.src == n.dst && n.srcRepo.RepositoryStr() != n.dstRepo.RepositoryStr() {
			// Copying within one registry: the source repository has it.
			from = n.srcRepo.RepositoryStr()
		}
		if from == "" || sentWhole {
			from = n.dstRepo.RepositoryStr()
		}
		l := &remote.MountableLayer{Layer: src, Reference: n.dstRepo.Registry.Repo(from).Digest(digest)}
		leave := n.dst.gate(n.dstRepo.RepositoryStr()).enter(n.dstRepo.RepositoryStr(), from)
		err := n.dst.pusher.Upload(ctx, n.dstRepo, l)
		leave(err == nil || rec.mounted.Load() || rec.committed.Load())
		if err != nil {
			if d.Size > 0 && rec.sent.Load() >= d.Size {
				sentWhole = true
			}
			return err
		}
		switch {
		case rec.mounted.Load() && from == n.dstRepo.RepositoryStr() && sentWhole:
			action = BlobUploaded
			c.uploadsRecovered.Add(1)
		case rec.mounted.Load() && from == n.dstRepo.RepositoryStr():
			action = BlobPresent
		case rec.mounted.Load():
			action = BlobMounted
		case rec.committed.Load():
			action = BlobUploaded
		default:
			action = BlobPresent
		}
		return nil
	})
	cl.done(err == nil, action == BlobMounted)
	if err != nil {
		return fmt.Errorf("blob %s: %w", digest, err)
	}
	c.blob(action, d)
	return nil
}

func (c *copier) blob(a BlobAction, d v1.Descriptor) {
	switch a {
	case BlobPresent:
		c.blobsPresent.Add(1)
		c.bytesPresent.Add(d.Size)
	case BlobMounted:
		c.blobsMounted.Add(1)
		c.bytesMounted.Add(d.Size)
	case BlobUploaded:
		c.blobsUploaded.Add(1)
		c.bytesUploaded.Add(d.Size)
	}
	c.opts.Reporter.Report(Event{Kind: EventBlob, Blob: a, Digest: d.Digest.String(), Size: d.Size})
}

// put puts the manifest's bytes unchanged, by tag when n has one (which
// also makes the digest pullable), else by digest.
func (c *copier) put(ctx context.Context, n node, m *remote.Descriptor) error {
	var ref name.Reference = n.dstRepo.Digest(n.digest)
	if n.tag != "" {
		ref = n.dstRepo.Tag(n.tag)
	}
	raw := rawManifest{raw: m.Manifest, mediaType: manifestMediaType(m)}
	err := c.op(ctx, []*endpoint{n.dst}, func(ctx context.Context) error {
		leave := n.dst.gate(n.dstRepo.RepositoryStr()).enter(n.dstRepo.RepositoryStr(), "")
		defer leave(true)
		return n.dst.pusher.Put(ctx, ref, raw)
	})
	if err != nil {
		return fmt.Errorf("put manifest %s: %w", ref, err)
	}
	c.manifests.Add(1)
	return nil
}

// rawManifest is a manifest as bytes, so nothing re-serialises it and the
// digest stays the source's.
type rawManifest struct {
	raw       []byte
	mediaType types.MediaType
}

func (m rawManifest) RawManifest() ([]byte, error)        { return m.raw, nil }
func (m rawManifest) MediaType() (types.MediaType, error) { return m.mediaType, nil }

// sourceBlob is a blob of the source registry described by its manifest
// entry, so its size and media type cost no request; Compressed streams it
// (verifying the digest as it goes) into the upload.
type sourceBlob struct {
	ctx    context.Context
	puller *remote.Puller
	ref    name.Digest
	desc   v1.Descriptor
	// slot is the source registry, whose slot is held from the GET until
	// the stream is closed; nil when source and destination share a
	// registry (the operation's one slot covers both: taking a second
	// could deadlock).
	slot *endpoint

	mu   sync.Mutex
	held int
}

// release gives back slots a stream still holds; the transfer calls it
// when it ends, whatever happened to the stream.
func (b *sourceBlob) release() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for ; b.held > 0; b.held-- {
		<-b.slot.sem
	}
}

var _ v1.Layer = (*sourceBlob)(nil)

func (b *sourceBlob) Digest() (v1.Hash, error)            { return b.desc.Digest, nil }
func (b *sourceBlob) Size() (int64, error)                { return b.desc.Size, nil }
func (b *sourceBlob) MediaType() (types.MediaType, error) { return b.desc.MediaType, nil }
func (b *sourceBlob) DiffID() (v1.Hash, error) {
	return v1.Hash{}, errors.New("mirror: a copied blob's diff ID is never needed")
}
func (b *sourceBlob) Uncompressed() (io.ReadCloser, error) {
	return nil, errors.New("mirror: copied blobs are never decompressed")
}

func (b *sourceBlob) Compressed() (io.ReadCloser, error) {
	if b.slot != nil {
		select {
		case b.slot.sem <- struct{}{}:
		case <-b.ctx.Done():
			return nil, b.ctx.Err()
		}
		b.mu.Lock()
		b.held++
		b.mu.Unlock()
	}
	l, err := b.puller.Layer(b.ctx, b.ref)
	if err != nil {
		b.releaseOne()
		return nil, err
	}
	rc, err := l.Compressed()
	if err != nil {
		b.releaseOne()
		return nil, err
	}
	return &releasingBody{ReadCloser: rc, release: b.releaseOne}, nil
}

func (b *sourceBlob) releaseOne() {
	if b.slot == nil {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.held > 0 {
		b.held--
		<-b.slot.sem
	}
}

// releasingBody gives the source slot back when the stream is closed.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (r *releasingBody) Close() error {
	err := r.ReadCloser.Close()
	r.once.Do(r.release)
	return err
}

func (c *copier) finish(results []ImageResult, d time.Duration) (*Report, error) {
	r := &Report{Images: results, Duration: d}
	s := &r.Stats
	var failed []*ImageError
	for _, im := range results {
		s.Images++
		switch im.Action {
		case ActionPresent:
			s.ImagesPresent++
		case ActionCopied:
			s.ImagesCopied++
		default:
			s.ImagesFailed++
			failed = append(failed, im.Err)
		}
	}
	s.Manifests = int(c.manifests.Load())
	s.IndexesCompleted = int(c.indexesCompleted.Load())
	s.UploadsRecovered = int(c.uploadsRecovered.Load())
	s.BlobsPresent, s.BlobsMounted, s.BlobsUploaded = int(c.blobsPresent.Load()), int(c.blobsMounted.Load()), int(c.blobsUploaded.Load())
	s.BytesPresent, s.BytesMounted, s.BytesUploaded = c.bytesPresent.Load(), c.bytesMounted.Load(), c.bytesUploaded.Load()
	r.Blobs = BlobLocations{}
	for _, ep := range c.endpoints {
		r.Registries = append(r.Registries, ep.tr.count.snapshot(ep.host))
		for d, repo := range ep.blobs.locations() {
			r.Blobs[d] = ep.host + "/" + repo
		}
	}
	// Hints for registries this run did not touch stay valid.
	for d, repo := range c.opts.BlobHints {
		if _, ok := r.Blobs[d]; !ok {
			r.Blobs[d] = repo
		}
	}
	sort.Slice(r.Registries, func(i, j int) bool { return r.Registries[i].Host < r.Registries[j].Host })
	if len(failed) > 0 {
		return r, &IncompleteError{Report: r, Failed: failed}
	}
	return r, nil
}
