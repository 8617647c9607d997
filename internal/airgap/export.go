package airgap

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/internal/registry"
)

// Built is an image that exists only in memory (a catalog image Ferry
// rendered, say), to be carried to Destination.
type Built struct {
	// Image is a v1.Image or a v1.ImageIndex.
	Image remote.Taggable
	// Destination is the mirror repository, with an optional tag.
	Destination string
}

// ExportOptions are the settings of one Export.
type ExportOptions struct {
	// Path is the archive to write: a directory (an OCI image layout), or
	// a tar file of one when it ends in ".tar". A tar must not exist; a
	// directory must be empty or an export that did not finish.
	Path string
	// Remotes gives references and credentials for the source registries.
	// Required when there are pairs.
	Remotes mirror.Remotes
	// Built are in-memory images to carry along with the pairs.
	Built []Built
	// Since are earlier archives (directories, .tar files, or just their
	// record files): what they carried is left out of this one. The newest
	// is enough, since each record lists everything carried before it.
	Since []string
	// Files are carried along under FilesPrefix (name -> content) and
	// returned by Import: Ferry's rendered manifests and lock file.
	Files map[string][]byte
	// Concurrency bounds operations in flight per source registry.
	Concurrency int
	// Retry says how source failures are retried (the engine's defaults
	// when zero).
	Retry registry.RetryPolicy
	// Reporter receives the copy engine's progress events; optional.
	Reporter mirror.Reporter
	// Log receives retries and failures, never credentials; nil is silent.
	Log *slog.Logger
}

// ExportReport is what an Export did.
type ExportReport struct {
	// Record is the archive's record, as written.
	Record *Record
	// Copy is the copy engine's report of reading the sources (per image:
	// Present means an earlier archive carried it).
	Copy *mirror.Report
	// Stats counts what the archive holds and left out.
	Stats ExportStats
	// Duration is the wall time of the export.
	Duration time.Duration
}

// ExportStats count an archive's content.
type ExportStats struct {
	// Images and Earlier: all images, and those an earlier archive carried
	// whole to the same destination.
	Images, Earlier int
	// Manifests, Blobs and their bytes are what the archive holds.
	Manifests, Blobs         int
	ManifestBytes, BlobBytes int64
	LeftOut                  int
	LeftOutBytes             int64
}

func (o ExportOptions) withDefaults() ExportOptions {
	d := mirror.DefaultOptions(nil)
	if o.Concurrency <= 0 {
		o.Concurrency = d.Concurrency
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o
}

// Export copies pairs and built images into an archive at opts.Path: an
// OCI image layout (a directory or a tar) with one index.json entry per
// image, every manifest byte for byte (indexes with all their children),
// and a record (RecordFile) saying what it holds and what it left out.
//
// Everything is validated first (references, destinations, file names,
// the Since records). The sources are read through the copy engine, so
// blobs stream from the source straight to disk, each once, digests
// verified before anything becomes part of the archive. An image that
// cannot be read fails the export with an *ExportError naming every such
// image; no archive is produced then (a directory keeps the blobs it
// verified and exporting into it again fetches only the rest).
func Export(ctx context.Context, pairs []mirror.Pair, opts ExportOptions) (*ExportReport, error) {
	start := time.Now()
	opts = opts.withDefaults()
	if opts.Path == "" {
		return nil, errors.New("airgap: ExportOptions.Path is required")
	}
	if len(pairs) > 0 && opts.Remotes == nil {
		return nil, errors.New("airgap: ExportOptions.Remotes is required to read sources")
	}
	names := make([]string, 0, len(pairs)+len(opts.Built))
	for _, p := range pairs {
		names = append(names, p.Destination)
	}
	for _, b := range opts.Built {
		names = append(names, b.Destination)
	}
	dests, err := parseDestinations(names)
	var errs []error
	if err != nil {
		errs = append(errs, err)
	}
	for i, p := range pairs {
		if err := checkSource(p.Source, opts.Remotes); err != nil {
			errs = append(errs, fmt.Errorf("image %d (%s): source: %w", i+1, p, err))
		}
	}
	for i, b := range opts.Built {
		if _, ok := b.Image.(digester); !ok {
			errs = append(errs, fmt.Errorf("built image %d (%s): not a v1.Image or v1.ImageIndex", i+1, b.Destination))
		}
	}
	// The engine refuses two sources for one destination tag among the
	// pairs; a built image's tag must not meet another image either.
	tags := map[string]int{}
	for i, d := range dests {
		if d.tag != "" {
			tags[d.repo+":"+d.tag]++
			if i >= len(pairs) && tags[d.repo+":"+d.tag] > 1 {
				errs = append(errs, fmt.Errorf("built image %s: its destination tag is used by another image", names[i]))
			}
		}
	}
	for n := range opts.Files {
		if err := checkFileName(n); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("airgap: %w", err)
	}
	destHost := ""
	if len(dests) > 0 {
		destHost = repoHost(dests[0].repo)
	}
	carried, since, err := loadSince(opts.Since, destHost)
	if err != nil {
		return nil, fmt.Errorf("airgap: %w", err)
	}

	created := time.Now().UTC()
	sk, err := newSink(opts.Path, created)
	if err != nil {
		return nil, fmt.Errorf("airgap: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			sk.abort()
		}
	}()
	st := newStore(sk, carried, destHost)
	defer st.closeSessions() // after the server is closed
	srv, err := serveLocal(func(prefix string) http.Handler { return exportHandler{st: st, prefix: prefix} })
	if err != nil {
		return nil, err
	}
	defer srv.close()

	local := make([]mirror.Pair, len(pairs))
	for i, p := range pairs {
		local[i] = mirror.Pair{Source: p.Source, Destination: srv.repo(dests[i].path())}
		if dests[i].tag != "" {
			local[i].Destination += ":" + dests[i].tag
		}
	}
	copyOpts := mirror.Options{
		Remotes:     localRemotes{host: srv.host, next: opts.Remotes},
		Concurrency: opts.Concurrency,
		Retry:       opts.Retry,
		Reporter:    opts.Reporter,
		Log:         opts.Log,
	}
	rep, err := mirror.Copy(ctx, local, copyOpts)
	report := &ExportReport{Copy: rep}
	if rep != nil {
		// Callers read the report in the mirror's names, not the local
		// registry's.
		for i := range rep.Images {
			rep.Images[i].Destination = pairs[i].Destination
			if rep.Images[i].Digest != "" {
				rep.Images[i].Mirrored = dests[i].repo + "@" + rep.Images[i].Digest
			}
			if e := rep.Images[i].Err; e != nil {
				e.Destination = pairs[i].Destination
			}
		}
	}
	var incomplete *mirror.IncompleteError
	if errors.As(err, &incomplete) {
		return report, &ExportError{Path: opts.Path, Failed: incomplete.Failed}
	}
	if err != nil {
		return report, fmt.Errorf("airgap: export %s: %w", opts.Path, err)
	}

	images := make([]Image, 0, len(pairs)+len(opts.Built))
	for i, p := range pairs {
		d := rep.Images[i].Digest
		if _, pinned, ok := strings.Cut(p.Destination, "@"); ok && pinned != d {
			return report, fmt.Errorf("airgap: export %s: image %d (%s): destination digest differs from the source's %s", opts.Path, i+1, p, d)
		}
		images = append(images, Image{Source: p.Source, Destination: p.Destination, Digest: d})
	}
	for i, b := range opts.Built {
		d := dests[len(pairs)+i]
		digest, err := pushBuilt(ctx, srv, st, d, b.Image, opts.Concurrency)
		if err != nil {
			return report, fmt.Errorf("airgap: export %s: built image %s: %w", opts.Path, b.Destination, err)
		}
		images = append(images, Image{Destination: b.Destination, Digest: digest})
	}

	rec := &Record{Version: RecordVersion, ID: rand.Text(), Created: created, Registry: destHost, Since: since, Images: images}
	if err := st.describe(rec, dests); err != nil {
		return report, fmt.Errorf("airgap: export %s: %w", opts.Path, err)
	}
	if err := writeFiles(sk, rec, opts.Files); err != nil {
		return report, fmt.Errorf("airgap: export %s: %w", opts.Path, err)
	}
	if err := writeIndex(sk, rec); err != nil {
		return report, fmt.Errorf("airgap: export %s: %w", opts.Path, err)
	}
	b, err := json.Marshal(rec)
	if err == nil {
		err = sk.write(RecordFile, b)
	}
	if err == nil {
		keep := map[string]bool{}
		for _, bl := range rec.Blobs {
			keep[blobName(bl.Digest)] = true
		}
		err = sk.finish(func(n string) bool { return keep[n] })
	}
	if err != nil {
		return report, fmt.Errorf("airgap: export %s: %w", opts.Path, err)
	}
	ok = true
	report.Record = rec
	report.Stats = rec.stats()
	report.Duration = time.Since(start)
	opts.Log.Info("archive written", "path", opts.Path, "id", rec.ID, "images", report.Stats.Images,
		"blobs", report.Stats.Blobs, "bytes", report.Stats.BlobBytes, "leftOut", report.Stats.LeftOut)
	return report, nil
}

// checkSource validates a source as the copy engine will read it, so a
// bad one fails the export before anything is written: repo@digest,
// repo:tag, or repo:tag@digest (the digest wins).
func checkSource(src string, rc mirror.Remotes) error {
	if rc == nil {
		return nil
	}
	if i := strings.LastIndex(src, "@"); i >= 0 {
		if _, err := v1.NewHash(src[i+1:]); err != nil {
			return err
		}
		repo := src[:i]
		if j := strings.LastIndex(repo, ":"); j > strings.LastIndex(repo, "/") {
			repo = repo[:j]
		}
		src = repo + "@" + src[i+1:]
	}
	_, err := rc.Reference(src)
	return err
}

type digester interface {
	Digest() (v1.Hash, error)
	MediaType() (types.MediaType, error)
}

// pushBuilt writes an in-memory image into the archive through the local
// registry, with go-containerregistry's own pusher: blobs the archive
// holds or an earlier archive carried are found by a HEAD and skipped, and
// an image an earlier archive carried to the same destination is skipped
// whole by the HEAD of its destination.
func pushBuilt(ctx context.Context, srv *localServer, st *store, d destination, img remote.Taggable, jobs int) (string, error) {
	h, err := img.(digester).Digest()
	if err != nil {
		return "", err
	}
	ref, err := name.ParseReference(srv.repo(d.path())+"@"+h.String(), name.Insecure)
	if d.tag != "" {
		ref, err = name.ParseReference(srv.repo(d.path())+":"+d.tag, name.Insecure)
	}
	if err != nil {
		return "", err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DisableCompression = true
	p, err := remote.NewPusher(remote.WithAuth(authn.Anonymous), remote.WithTransport(tr), remote.WithJobs(jobs), remote.WithUserAgent("ferry"))
	if err != nil {
		return "", err
	}
	if err := p.Push(ctx, ref, img); err != nil {
		return "", err
	}
	return h.String(), nil
}

// describe completes rec from what the store holds: each image's
// descriptor, the blobs held, what was left out and where Import finds it,
// and the carried set for the next export. It walks every image's tree,
// so it also proves the archive complete.
func (s *store) describe(rec *Record, dests []destination) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	carried := newCarried()
	blobRepo := map[string]string{}
	leftOut := map[string]LeftOut{}
	visited := map[string]bool{}
	var errs []error
	var walk func(repo, digest, image string)
	walk = func(repo, digest, image string) {
		key := repo + "@" + digest
		if visited[key] {
			return
		}
		visited[key] = true
		b := s.blobs[digest]
		carried.Manifests[key] = Descriptor{Digest: digest, MediaType: b.MediaType, Size: b.Size}
		for _, d := range s.refs[digest] {
			ds := d.Digest.String()
			switch {
			case isManifestType(d.MediaType):
				if c, ok := s.blobs[ds]; ok && c.Manifest {
					walk(repo, ds, image)
				} else if m, ok := s.carried.Manifests[repo+"@"+ds]; ok {
					leftOut[ds] = LeftOut{Digest: ds, Size: m.Size, Manifest: true, Repository: repo}
				} else {
					errs = append(errs, fmt.Errorf("image %s: manifest %s neither in the archive nor carried before", image, ds))
				}
			case foreign(d):
			default:
				if _, ok := s.blobs[ds]; ok {
					if _, ok := blobRepo[ds]; !ok {
						blobRepo[ds] = repo
					}
				} else if l, ok := s.carried.Blobs[ds]; ok {
					leftOut[ds] = LeftOut{Digest: ds, Size: l.Size, Repository: l.Repository}
				} else {
					errs = append(errs, fmt.Errorf("image %s: blob %s neither in the archive nor carried before", image, ds))
				}
			}
		}
	}
	for i := range rec.Images {
		im := &rec.Images[i]
		d := dests[i]
		if b, ok := s.blobs[im.Digest]; ok && b.Manifest {
			im.MediaType, im.Size = b.MediaType, b.Size
			walk(d.repo, im.Digest, im.Destination)
		} else if m, ok := s.carried.Manifests[d.repo+"@"+im.Digest]; ok {
			im.MediaType, im.Size, im.Earlier = m.MediaType, m.Size, true
		} else {
			errs = append(errs, fmt.Errorf("image %s: manifest %s neither in the archive nor carried before", im.Destination, im.Digest))
			continue
		}
		if d.tag != "" {
			carried.Manifests[d.repo+":"+d.tag] = Descriptor{Digest: im.Digest, MediaType: im.MediaType, Size: im.Size}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	for _, b := range s.blobs {
		rec.Blobs = append(rec.Blobs, *b)
		if r, ok := blobRepo[b.Digest]; ok && !b.Manifest {
			carried.Blobs[b.Digest] = Location{Repository: r, Size: b.Size}
		}
	}
	sort.Slice(rec.Blobs, func(i, j int) bool { return rec.Blobs[i].Digest < rec.Blobs[j].Digest })
	for _, l := range leftOut {
		rec.LeftOut = append(rec.LeftOut, l)
	}
	sort.Slice(rec.LeftOut, func(i, j int) bool { return rec.LeftOut[i].Digest < rec.LeftOut[j].Digest })
	carried.merge(s.carried)
	rec.Carried = carried
	return nil
}

func writeFiles(sk sink, rec *Record, files map[string][]byte) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		b := files[n]
		sum := sha256.Sum256(b)
		if err := sk.write(FilesPrefix+n, b); err != nil {
			return err
		}
		rec.Files = append(rec.Files, File{Name: n, Digest: "sha256:" + hex.EncodeToString(sum[:]), Size: int64(len(b))})
	}
	return nil
}

// writeIndex writes index.json: one entry per image, named by its
// destination, so a full archive is a layout any OCI tool reads.
func writeIndex(sk sink, rec *Record) error {
	idx := v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Manifests: []v1.Descriptor{}}
	for _, im := range rec.Images {
		h, err := v1.NewHash(im.Digest)
		if err != nil {
			return err
		}
		ann := map[string]string{AnnotationRefName: im.Destination}
		if im.Source != "" {
			ann[AnnotationSource] = im.Source
		}
		idx.Manifests = append(idx.Manifests, v1.Descriptor{MediaType: im.MediaType, Digest: h, Size: im.Size, Annotations: ann})
	}
	b, err := json.Marshal(idx)
	if err != nil {
		return err
	}
	return sk.write("index.json", b)
}

func (r *Record) stats() ExportStats {
	s := ExportStats{Images: len(r.Images)}
	for _, im := range r.Images {
		if im.Earlier {
			s.Earlier++
		}
	}
	for _, b := range r.Blobs {
		if b.Manifest {
			s.Manifests++
			s.ManifestBytes += b.Size
		} else {
			s.Blobs++
			s.BlobBytes += b.Size
		}
	}
	s.LeftOut = len(r.LeftOut)
	for _, l := range r.LeftOut {
		s.LeftOutBytes += l.Size
	}
	return s
}

// loadSince merges what the given earlier archives carried, and lists
// their IDs with those they built on. An archive for another mirror
// registry is refused: what it carried is not where this one's import
// will look.
func loadSince(paths []string, registry string) (Carried, []string, error) {
	carried := newCarried()
	var ids []string
	seen := map[string]bool{}
	add := func(id string) {
		if !seen[id] {
			seen[id] = true
			ids = append(ids, id)
		}
	}
	for _, p := range paths {
		rec, err := ReadRecord(p)
		if err != nil {
			return carried, nil, fmt.Errorf("since %s: %w", p, err)
		}
		if registry != "" && rec.Registry != "" && rec.Registry != registry {
			return carried, nil, fmt.Errorf("since %s: that archive is for mirror registry %s, this one for %s", p, rec.Registry, registry)
		}
		carried.merge(rec.Carried)
		add(rec.ID)
		for _, id := range rec.Since {
			add(id)
		}
	}
	return carried, ids, nil
}
