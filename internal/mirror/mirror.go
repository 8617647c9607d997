package mirror

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/registry"
)

// Pair is one image to copy.
type Pair struct {
	// Source is the image to copy: repo@sha256:..., repo:tag, or
	// repo:tag@sha256:... (the digest wins). A tag is resolved once per run.
	Source string
	// Destination is the repository to copy into, with an optional tag:
	// the image is pushed by digest, and the tag set when there is one.
	Destination string
}

func (p Pair) String() string { return p.Source + " -> " + p.Destination }

// Remotes is what Copy needs of internal/registry's Client: references
// parsed the way the user configured the registry (insecure or not), and
// go-containerregistry options carrying its credentials.
type Remotes interface {
	Reference(ref string) (name.Reference, error)
	Remote(ref name.Reference, extra ...remote.Option) []remote.Option
}

var _ Remotes = (*registry.Client)(nil)

// Options are the settings of one Copy.
type Options struct {
	// Remotes gives references and credentials per registry. Required.
	Remotes Remotes
	// Platforms are the children of multi-arch images to copy, as
	// os/arch[/variant]; empty copies every child. Index digests are never
	// changed: the index is copied byte for byte after its children. A
	// registry that validates indexes (distribution 2.8, the Debian
	// docker-registry, refuses an index whose children are not all in the
	// repository) gets every child anyway: Copy puts the selected children,
	// tries the index, and when the registry refuses it for missing
	// children, copies the rest and puts it again. Stats.IndexesCompleted
	// counts those indexes.
	Platforms []string
	// Concurrency bounds simultaneous operations (a manifest request or a
	// blob transfer) against one registry.
	Concurrency int
	// RegistryConcurrency overrides Concurrency for some registries
	// (host[:port]).
	RegistryConcurrency map[string]int
	// Retry says how failures are retried: the policy every registry call
	// of Ferry follows (internal/registry).
	Retry registry.RetryPolicy
	// BlobHints are where earlier runs saw blobs in the mirror (the
	// previous Report.Blobs). A run learns blob locations only from what
	// it copies or checks, and an image already in the mirror costs one
	// HEAD, which reveals nothing about its blobs; without hints, a new
	// image whose layers the mirror holds only in other repositories
	// would upload them again. With them it mounts. A stale hint costs
	// nothing but the upload it could not avoid.
	BlobHints BlobLocations
	// Reporter receives progress events; nil reports nothing. It is called
	// from many goroutines at once.
	Reporter Reporter
	// Log receives retries and per-image failures, never credentials; nil
	// is silent.
	Log *slog.Logger
}

// DefaultOptions returns the settings `ferry reconcile` starts from.
func DefaultOptions(remotes Remotes) Options {
	return Options{
		Remotes:     remotes,
		Concurrency: 8,
		Retry:       registry.DefaultRetryPolicy(),
	}
}

func (o Options) withDefaults() (Options, error) {
	if o.Remotes == nil {
		return o, errors.New("mirror: Options.Remotes is required")
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultOptions(nil).Concurrency
	}
	o.Retry = o.Retry.WithDefaults()
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Reporter == nil {
		o.Reporter = ReporterFunc(func(Event) {})
	}
	return o, nil
}

func (o Options) limit(host string) int {
	if n, ok := o.RegistryConcurrency[host]; ok && n > 0 {
		return n
	}
	return o.Concurrency
}

// BlobLocations maps a blob digest to a repository of the mirror holding
// it ("host[:port]/path"). Callers keep Report.Blobs between runs (in
// memory, or a cache file) and pass it back as Options.BlobHints.
type BlobLocations map[string]string

// EventKind says what an Event reports.
type EventKind string

const (
	// EventImage: one image is finished (Image says how).
	EventImage EventKind = "Image"
	// EventBlob: one blob is in a destination repository (Blob says how).
	EventBlob EventKind = "Blob"
	// EventBytes: Bytes more bytes were sent to a registry.
	EventBytes EventKind = "Bytes"
)

// BlobAction says how a blob got into a destination repository.
type BlobAction string

const (
	// BlobPresent: it was there already (a HEAD said so, or this run put it
	// there); nothing was sent.
	BlobPresent BlobAction = "Present"
	// BlobMounted: mounted from another repository of the mirror.
	BlobMounted BlobAction = "Mounted"
	// BlobUploaded: streamed from the source.
	BlobUploaded BlobAction = "Uploaded"
)

// Event is one progress report.
type Event struct {
	Kind  EventKind
	Image *ImageResult // EventImage
	Blob  BlobAction   // EventBlob
	// Digest and Size of the blob (EventBlob); Bytes sent (EventBytes).
	Digest string
	Size   int64
	Bytes  int64
}

// Reporter receives progress: a CLI draws bars from it, a daemon logs.
type Reporter interface {
	Report(Event)
}

// ReporterFunc adapts a function to Reporter.
type ReporterFunc func(Event)

// Report implements Reporter.
func (f ReporterFunc) Report(e Event) { f(e) }

// parsedPair is a validated Pair.
type parsedPair struct {
	Pair
	src    name.Reference
	digest string // pinned source digest, "" when by tag only
	dst    name.Repository
	tag    string
}

// parse validates every pair before anything is copied, returning every
// problem at once: a bad reference or two sources for one destination tag.
func parse(pairs []Pair, rc Remotes) ([]parsedPair, error) {
	var errs []error
	out := make([]parsedPair, len(pairs))
	byTag := map[string]string{}
	for i, p := range pairs {
		pp, err := parsePair(p, rc)
		if err != nil {
			errs = append(errs, fmt.Errorf("image %d (%s): %w", i+1, p, err))
			continue
		}
		if pp.tag != "" {
			key := pp.dst.Tag(pp.tag).String()
			src := pp.src.String()
			if pp.digest != "" {
				src = pp.digest
			}
			if prev, ok := byTag[key]; ok && prev != src {
				errs = append(errs, fmt.Errorf("image %d (%s): destination %s is also the destination of %s", i+1, p, key, prev))
			}
			byTag[key] = src
		}
		out[i] = pp
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return out, nil
}

func parsePair(p Pair, rc Remotes) (parsedPair, error) {
	pp := parsedPair{Pair: p}
	src := p.Source
	// repo:tag@digest: the digest is what gets copied.
	if i := strings.LastIndex(src, "@"); i >= 0 {
		pp.digest = src[i+1:]
		if _, err := v1.NewHash(pp.digest); err != nil {
			return pp, fmt.Errorf("source digest: %w", err)
		}
		repo := src[:i]
		if j := strings.LastIndex(repo, ":"); j > strings.LastIndex(repo, "/") {
			repo = repo[:j]
		}
		src = repo + "@" + pp.digest
	}
	ref, err := rc.Reference(src)
	if err != nil {
		return pp, fmt.Errorf("source: %w", err)
	}
	pp.src = ref
	dst := p.Destination
	if strings.Contains(dst, "@") {
		d := dst[strings.LastIndex(dst, "@")+1:]
		if pp.digest != "" && d != pp.digest {
			return pp, fmt.Errorf("destination digest %s differs from the source's %s", d, pp.digest)
		}
		dst = dst[:strings.LastIndex(dst, "@")]
	}
	if j := strings.LastIndex(dst, ":"); j > strings.LastIndex(dst, "/") {
		pp.tag = dst[j+1:]
		dst = dst[:j]
	}
	// Parse through Remotes so the destination's insecure flag is the
	// user's; a throwaway tag makes it a reference.
	dref, err := rc.Reference(dst + ":ferry")
	if err != nil {
		return pp, fmt.Errorf("destination: %w", err)
	}
	pp.dst = dref.Context()
	if pp.tag != "" {
		if _, err := name.NewTag(dst+":"+pp.tag, name.StrictValidation); err != nil {
			return pp, fmt.Errorf("destination tag: %w", err)
		}
	}
	return pp, nil
}

// declaredInsecure tells whether reg was parsed with name.Insecure, which is
// how registry.Client marks registries the user declared insecure: the
// struct compares equal to an insecure registry of the same name only then.
// (Loopback and private addresses speak plain HTTP without the flag; TLS is
// still verified for them when they do speak TLS.)
func declaredInsecure(reg name.Registry) bool {
	ins, err := name.NewRegistry(reg.RegistryStr(), name.Insecure)
	return err == nil && ins == reg
}

// remoteOptions are the options Copy adds to what Remotes gives: its own
// transport, and go-containerregistry's retries switched off so that only
// one layer retries (go-containerregistry's does not honour Retry-After).
func remoteOptions(t http.RoundTripper) []remote.Option {
	return []remote.Option{
		remote.WithTransport(t),
		remote.WithRetryStatusCodes(),
		remote.WithRetryPredicate(func(error) bool { return false }),
		remote.WithUserAgent("ferry"),
	}
}
