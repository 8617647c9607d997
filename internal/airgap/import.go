package airgap

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"runtime"
	"sort"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/internal/registry"
)

// ImportOptions are the settings of one Import.
type ImportOptions struct {
	// Remotes gives references and credentials for the mirror. Required.
	Remotes mirror.Remotes
	// Concurrency bounds operations in flight against the mirror.
	Concurrency int
	// Retry says how mirror failures are retried (the engine's defaults
	// when zero).
	Retry registry.RetryPolicy
	// BlobHints are where earlier runs saw blobs in the mirror (a previous
	// Report.Blobs); the record's own locations of left-out blobs are
	// added to them.
	BlobHints mirror.BlobLocations
	// SkipBlobVerify skips hashing every layer before pushing. Manifests,
	// sizes and the record are checked regardless, and registries verify
	// each blob's digest as they receive it, so a corrupt layer is still
	// refused; skipping only means it is found halfway through the push
	// instead of before it.
	SkipBlobVerify bool
	// Reporter receives the copy engine's progress events; optional.
	Reporter mirror.Reporter
	// Log receives retries and failures, never credentials; nil is silent.
	Log *slog.Logger
}

// Import pushes every image of the archive at path (a directory or a .tar)
// to its recorded destination, and returns the files the archive carries.
//
// The archive is checked first, whole: a truncated or corrupt archive, or
// one that does not match its record, is an *ArchiveError before anything
// is sent to the mirror. The images are then copied by the copy engine
// from a read-only registry serving the archive on 127.0.0.1 (a tar is
// read in place, never extracted): an image already in the mirror costs
// one HEAD, a blob is uploaded at most once, and blobs an incremental
// archive left out are found in the destination repository or mounted
// from the repository the record says an earlier import put them in.
//
// The Report and error are the engine's (an *mirror.IncompleteError when
// some images failed), except that images failing because the mirror
// lacks what the archive left out give a *MissingError wrapping it. The
// files are returned whenever the archive checked out.
func Import(ctx context.Context, path string, opts ImportOptions) (*mirror.Report, map[string][]byte, error) {
	if opts.Remotes == nil {
		return nil, nil, errors.New("airgap: ImportOptions.Remotes is required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	a, err := openArchive(path)
	if err != nil {
		return nil, nil, err
	}
	defer a.Close()
	rec, err := a.record()
	if err != nil {
		return nil, nil, err
	}
	// Hashing the archive is bound by the disk and the CPU, not by the
	// registry's concurrency.
	workers := min(runtime.GOMAXPROCS(0), 4)
	contents, err := check(ctx, a, rec, !opts.SkipBlobVerify, workers)
	if err != nil {
		return nil, nil, err
	}

	h := &importHandler{a: a, blobs: contents.blobs, expected: map[string]bool{}, missed: map[string]bool{}}
	for _, l := range rec.LeftOut {
		h.expected[l.Digest] = true
	}
	for _, im := range rec.Images {
		if im.Earlier {
			h.expected[im.Digest] = true
		}
	}
	srv, err := serveLocal(func(prefix string) http.Handler { h.prefix = prefix; return h })
	if err != nil {
		return nil, nil, err
	}
	defer srv.close()

	pairs := make([]mirror.Pair, len(rec.Images))
	for i, im := range rec.Images {
		repo, _, _ := splitDestination(im.Destination) // checked with the record
		pairs[i] = mirror.Pair{Source: srv.repo(repoPath(repo)) + "@" + im.Digest, Destination: im.Destination}
	}
	hints := mirror.BlobLocations{}
	for d, r := range opts.BlobHints {
		hints[d] = r
	}
	for _, l := range rec.LeftOut {
		if !l.Manifest {
			hints[l.Digest] = l.Repository
		}
	}
	rep, err := mirror.Copy(ctx, pairs, mirror.Options{
		Remotes:     localRemotes{host: srv.host, next: opts.Remotes},
		Concurrency: opts.Concurrency,
		Retry:       opts.Retry,
		BlobHints:   hints,
		Reporter:    opts.Reporter,
		Log:         opts.Log,
	})
	if rep != nil {
		// Name images by where they came from, not by the local server.
		for i := range rep.Images {
			src := rec.Images[i].Source
			if src == "" {
				src = "built image in " + path
			}
			rep.Images[i].Source = src
			if e := rep.Images[i].Err; e != nil {
				e.Source = src
			}
		}
	}
	if missed := h.missing(); err != nil && len(missed) > 0 {
		err = &MissingError{Path: path, Since: rec.Since, Digests: missed, Err: err}
	}
	return rep, contents.files, err
}

// contents is what check learned of a sound archive.
type contents struct {
	blobs map[string]Blob
	files map[string][]byte
}

// check proves an archive sound before anything is pushed: oci-layout and
// index.json as the record says, every blob the record lists present with
// its size (and its digest, when verifyBlobs), every manifest hashed and
// parsed, every image complete with what the archive holds and what it
// says it left out, every file intact. It reports every problem at once.
func check(ctx context.Context, a *archive, rec *Record, verifyBlobs bool, workers int) (*contents, error) {
	var mu sync.Mutex
	var problems []Problem
	add := func(file, image, reason string) {
		mu.Lock()
		problems = append(problems, Problem{File: file, Image: image, Reason: reason})
		mu.Unlock()
	}
	if b, err := a.readSmall("oci-layout", 4096); err != nil {
		add("oci-layout", "", err.Error())
	} else {
		var l struct {
			Version string `json:"imageLayoutVersion"`
		}
		if json.Unmarshal(b, &l) != nil || l.Version == "" {
			add("oci-layout", "", "not an OCI layout marker")
		}
	}
	checkIndex(a, rec, add)

	c := &contents{blobs: map[string]Blob{}, files: map[string][]byte{}}
	refs := map[string][]v1.Descriptor{}
	var big []Blob
	for _, b := range rec.Blobs {
		if _, dup := c.blobs[b.Digest]; dup {
			add(RecordFile, "", "lists "+b.Digest+" twice")
			continue
		}
		c.blobs[b.Digest] = b
		if !b.Manifest {
			big = append(big, b)
			continue
		}
		raw, err := a.readSmall(blobName(b.Digest), manifestLimit)
		if err != nil {
			add(blobName(b.Digest), "", err.Error())
			continue
		}
		if problem := sum(raw, b); problem != "" {
			add(blobName(b.Digest), "", problem)
			continue
		}
		r, err := references(b.MediaType, raw)
		if err != nil {
			add(blobName(b.Digest), "", err.Error())
			continue
		}
		refs[b.Digest] = r
	}
	work := make(chan Blob)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for b := range work {
				if problem := checkBlob(a, b, verifyBlobs); problem != "" {
					add(blobName(b.Digest), "", problem)
				}
			}
		}()
	}
	for _, b := range big {
		if ctx.Err() != nil {
			break
		}
		work <- b
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	checkImages(rec, c.blobs, refs, add)

	for _, f := range rec.Files {
		raw, err := a.readSmall(FilesPrefix+f.Name, recordLimit)
		if err != nil {
			add(FilesPrefix+f.Name, "", err.Error())
			continue
		}
		if problem := sum(raw, Blob{Digest: f.Digest, Size: f.Size}); problem != "" {
			add(FilesPrefix+f.Name, "", problem)
			continue
		}
		c.files[f.Name] = raw
	}
	if len(problems) > 0 {
		sort.SliceStable(problems, func(i, j int) bool { return problems[i].File < problems[j].File })
		return nil, &ArchiveError{Path: a.path, Problems: problems}
	}
	return c, nil
}

// sum checks content in memory against its size and digest.
func sum(raw []byte, b Blob) string {
	if int64(len(raw)) != b.Size {
		return fmt.Sprintf("%d bytes, the record says %d", len(raw), b.Size)
	}
	s := sha256.Sum256(raw)
	if got := "sha256:" + hex.EncodeToString(s[:]); got != b.Digest {
		return "content hashes to " + got + ", not " + b.Digest
	}
	return ""
}

// checkBlob checks a blob's size, and its digest when verify is set, by
// streaming it: a layer is never read into memory.
func checkBlob(a *archive, b Blob, verify bool) string {
	m, err := a.open(blobName(b.Digest))
	if err != nil {
		return "missing"
	}
	defer m.Close()
	if m.Size() != b.Size {
		return fmt.Sprintf("%d bytes, the record says %d", m.Size(), b.Size)
	}
	if !verify {
		return ""
	}
	h := sha256.New()
	if _, err := io.Copy(h, m); err != nil {
		return "unreadable: " + err.Error()
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != b.Digest {
		return "content hashes to " + got + ", not " + b.Digest + " (corrupt)"
	}
	return ""
}

// checkIndex requires index.json to name the record's images.
func checkIndex(a *archive, rec *Record, add func(file, image, reason string)) {
	raw, err := a.readSmall("index.json", recordLimit)
	if err != nil {
		add("index.json", "", err.Error())
		return
	}
	var idx v1.IndexManifest
	if err := json.Unmarshal(raw, &idx); err != nil {
		add("index.json", "", "not an OCI index: "+err.Error())
		return
	}
	entries := map[string]int{}
	for _, d := range idx.Manifests {
		entries[d.Annotations[AnnotationRefName]+"@"+d.Digest.String()]++
	}
	for _, im := range rec.Images {
		k := im.Destination + "@" + im.Digest
		if entries[k] == 0 {
			add("index.json", im.Destination, "no entry for "+im.Digest+", which the record lists")
			continue
		}
		entries[k]--
	}
	for k, n := range entries {
		if n > 0 {
			add("index.json", "", "entry "+k+" is not in the record")
		}
	}
}

// checkImages requires every image the archive holds to be complete with
// what it holds and what the record says it left out.
func checkImages(rec *Record, blobs map[string]Blob, refs map[string][]v1.Descriptor, add func(file, image, reason string)) {
	left := map[string]LeftOut{}
	for _, l := range rec.LeftOut {
		left[l.Digest] = l
	}
	for _, im := range rec.Images {
		if im.Earlier {
			continue
		}
		seen := map[string]bool{}
		var walk func(digest string)
		walk = func(digest string) {
			if seen[digest] {
				return
			}
			seen[digest] = true
			for _, d := range refs[digest] {
				ds := d.Digest.String()
				b, held := blobs[ds]
				switch {
				case foreign(d):
				case held && b.Manifest && isManifestType(d.MediaType):
					walk(ds)
				case held && !b.Manifest && !isManifestType(d.MediaType):
				case left[ds].Digest != "" && left[ds].Manifest == isManifestType(d.MediaType):
				default:
					add(blobName(ds), im.Destination, "neither in the archive nor left out by the record")
				}
			}
		}
		b, ok := blobs[im.Digest]
		if !ok || !b.Manifest {
			add(blobName(im.Digest), im.Destination, "the image's manifest is not in the archive")
			continue
		}
		walk(im.Digest)
	}
}

// importHandler is the read-only registry serving an archive.
type importHandler struct {
	a      *archive
	prefix string
	blobs  map[string]Blob
	// expected are digests the archive left out, which the mirror should
	// hold; a request for one means it does not.
	expected map[string]bool

	mu     sync.Mutex
	missed map[string]bool
}

func (h *importHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		apiError(w, http.StatusMethodNotAllowed, codeUnsupported, "an archive is read-only")
		return
	}
	rt := parseRoute(r.URL.Path, h.prefix)
	switch rt.kind {
	case routePing:
		ping(w)
	case routeManifest:
		b, ok := h.blobs[rt.ref]
		if !ok || !b.Manifest {
			h.miss(rt.ref)
			apiError(w, http.StatusNotFound, codeManifestUnknown, "manifest "+rt.ref+" is not in the archive")
			return
		}
		h.serve(w, r, b, string(b.MediaType))
	case routeBlob:
		b, ok := h.blobs[rt.ref]
		if !ok {
			h.miss(rt.ref)
			apiError(w, http.StatusNotFound, codeBlobUnknown, "blob "+rt.ref+" is not in the archive")
			return
		}
		h.serve(w, r, b, "application/octet-stream")
	default:
		apiError(w, http.StatusNotFound, codeNameUnknown, "not found")
	}
}

func (h *importHandler) serve(w http.ResponseWriter, r *http.Request, b Blob, contentType string) {
	m, err := h.a.open(blobName(b.Digest))
	if err != nil {
		apiError(w, http.StatusNotFound, codeBlobUnknown, err.Error())
		return
	}
	defer m.Close()
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Docker-Content-Digest", b.Digest)
	// ServeContent answers HEAD and ranges from the section of the file;
	// a zero time sends no Last-Modified.
	http.ServeContent(w, r, "", time.Time{}, m)
}

func (h *importHandler) miss(d string) {
	if !h.expected[d] {
		return
	}
	h.mu.Lock()
	h.missed[d] = true
	h.mu.Unlock()
}

func (h *importHandler) missing() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]string, 0, len(h.missed))
	for d := range h.missed {
		out = append(out, d)
	}
	sort.Strings(out)
	return out
}
