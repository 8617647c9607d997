package airgap

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Names inside an archive, next to OCI's oci-layout, index.json and
// blobs/sha256/.
const (
	// RecordFile is the archive's record (see Record). It is written last,
	// so a directory without it is an export that did not finish.
	RecordFile = "ferry-archive.json"
	// FilesPrefix is where ExportOptions.Files are stored.
	FilesPrefix = "ferry-files/"
	// RecordVersion is the record format this package writes and reads.
	RecordVersion = 1

	// AnnotationRefName is OCI's annotation for an image's name in a
	// layout; Ferry puts the destination there (repo[:tag]).
	AnnotationRefName = "org.opencontainers.image.ref.name"
	// AnnotationSource carries the source the image was copied from.
	AnnotationSource = "io.github.ferry-gitops.ferry.source"
)

// Record describes an archive: what it holds, what it left out because an
// earlier archive carried it, and (cumulatively) everything carried so far,
// so that the next incremental export needs only the newest record.
type Record struct {
	Version int       `json:"version"`
	ID      string    `json:"id"`
	Created time.Time `json:"created"`
	// Registry is the mirror registry (host[:port]) the archive's images
	// go to; an incremental archive builds only on archives for the same
	// one, whose imports put the blobs it leaves out there.
	Registry string `json:"registry,omitempty"`
	// Since are the IDs of every earlier archive this one is incremental
	// to, transitively: they must be imported first.
	Since []string `json:"since,omitempty"`
	// Images are the archive's images, one per pair or built image, in the
	// order given to Export.
	Images []Image `json:"images"`
	// Blobs are the manifests and blobs the archive holds.
	Blobs []Blob `json:"blobs"`
	// LeftOut are the digests its images need that an earlier archive
	// carried, with the mirror repository that archive's import put each
	// in: Import mounts blobs from there.
	LeftOut []LeftOut `json:"leftOut,omitempty"`
	// Files are the extra files carried along (ExportOptions.Files).
	Files []File `json:"files,omitempty"`
	// Carried is everything this archive and the earlier ones carried.
	Carried Carried `json:"carried"`
}

// Image is one image of an archive.
type Image struct {
	// Source is where Export read the image; empty for a built image.
	Source string `json:"source,omitempty"`
	// Destination is the mirror repository, with an optional tag, that
	// Import pushes the image to.
	Destination string          `json:"destination"`
	Digest      string          `json:"digest"`
	MediaType   types.MediaType `json:"mediaType"`
	Size        int64           `json:"size"`
	// Earlier: an earlier archive carried this very image to this
	// destination; this archive holds none of it, and Import expects to
	// find it in the mirror (one HEAD).
	Earlier bool `json:"earlier,omitempty"`
}

// Blob is a manifest or blob the archive holds.
type Blob struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
	// Manifest is true for manifests and indexes, which Import serves
	// with MediaType as their Content-Type.
	Manifest  bool            `json:"manifest,omitempty"`
	MediaType types.MediaType `json:"mediaType,omitempty"`
}

// LeftOut is a digest an image of the archive needs and an earlier archive
// carried.
type LeftOut struct {
	Digest   string `json:"digest"`
	Size     int64  `json:"size"`
	Manifest bool   `json:"manifest,omitempty"`
	// Repository ("host/path") is where an earlier archive's image
	// holding it is imported.
	Repository string `json:"repository"`
}

// File is an extra file carried along.
type File struct {
	Name   string `json:"name"`
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// Carried is what a chain of archives carried into the mirror.
type Carried struct {
	// Blobs maps each layer or config digest to where it will be.
	Blobs map[string]Location `json:"blobs"`
	// Manifests maps "host/path@sha256:..." (every manifest, index
	// children included) and "host/path:tag" to what they resolve to.
	Manifests map[string]Descriptor `json:"manifests"`
}

// Location is a blob's size and a mirror repository ("host/path") holding
// it once its archive is imported.
type Location struct {
	Repository string `json:"repository"`
	Size       int64  `json:"size"`
}

// Descriptor is what a manifest reference resolves to.
type Descriptor struct {
	Digest    string          `json:"digest"`
	MediaType types.MediaType `json:"mediaType"`
	Size      int64           `json:"size"`
}

func newCarried() Carried {
	return Carried{Blobs: map[string]Location{}, Manifests: map[string]Descriptor{}}
}

// merge adds what o carried; an entry already known keeps its location.
func (c Carried) merge(o Carried) {
	for d, l := range o.Blobs {
		if _, ok := c.Blobs[d]; !ok {
			c.Blobs[d] = l
		}
	}
	for k, d := range o.Manifests {
		if _, ok := c.Manifests[k]; !ok {
			c.Manifests[k] = d
		}
	}
}

// check validates a record's own structure (not the archive around it).
func (r *Record) check() error {
	var errs []error
	if r.Version != RecordVersion {
		return fmt.Errorf("record version %d, this Ferry reads %d", r.Version, RecordVersion)
	}
	if r.ID == "" {
		errs = append(errs, errors.New("record has no id"))
	}
	digest := func(what, d string) {
		if h, err := v1.NewHash(d); err != nil || h.Algorithm != "sha256" {
			errs = append(errs, fmt.Errorf("%s: %q is not a sha256 digest", what, d))
		}
	}
	for _, im := range r.Images {
		digest("image "+im.Destination, im.Digest)
		if _, _, err := splitDestination(im.Destination); err != nil {
			errs = append(errs, fmt.Errorf("image %s: %w", im.Destination, err))
		}
	}
	for _, b := range r.Blobs {
		digest("blob", b.Digest)
		if b.Size < 0 {
			errs = append(errs, fmt.Errorf("blob %s: negative size", b.Digest))
		}
	}
	for _, l := range r.LeftOut {
		digest("left-out", l.Digest)
	}
	for _, f := range r.Files {
		digest("file "+f.Name, f.Digest)
		if err := checkFileName(f.Name); err != nil {
			errs = append(errs, err)
		}
	}
	if r.Carried.Blobs == nil || r.Carried.Manifests == nil {
		errs = append(errs, errors.New("record has no carried set"))
	}
	return errors.Join(errs...)
}

func decodeRecord(r io.Reader) (*Record, error) {
	var rec Record
	dec := json.NewDecoder(r)
	if err := dec.Decode(&rec); err != nil {
		return nil, fmt.Errorf("not a Ferry archive record: %w", err)
	}
	if err := rec.check(); err != nil {
		return nil, err
	}
	return &rec, nil
}

// ReadRecord reads the record of an archive: a directory, a .tar, or the
// record file itself (what ExportOptions.Since accepts).
func ReadRecord(path string) (*Record, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() || isTar(path) {
		a, err := openArchive(path)
		if err != nil {
			return nil, err
		}
		defer a.Close()
		return a.record()
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rec, err := decodeRecord(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

func isTar(path string) bool { return strings.HasSuffix(path, ".tar") }

// checkFileName accepts the names ExportOptions.Files may use: relative,
// slash-separated, no "." or ".." elements, so they stay under FilesPrefix
// wherever the archive is unpacked.
func checkFileName(n string) error {
	if n == "" || n != filepath.ToSlash(n) || strings.HasPrefix(n, "/") {
		return fmt.Errorf("file name %q: want a relative slash-separated path", n)
	}
	for _, el := range strings.Split(n, "/") {
		if el == "" || el == "." || el == ".." {
			return fmt.Errorf("file name %q: want a relative path without empty, . or .. elements", n)
		}
	}
	return nil
}

// splitDestination splits a destination "host/path[:tag][@digest]" into
// its repository ("host/path", normalised as go-containerregistry names
// it) and tag. A digest, if any, is dropped: the image's digest is known.
func splitDestination(dst string) (repo, tag string, err error) {
	if i := strings.LastIndex(dst, "@"); i >= 0 {
		dst = dst[:i]
	}
	if j := strings.LastIndex(dst, ":"); j > strings.LastIndex(dst, "/") {
		dst, tag = dst[:j], dst[j+1:]
	}
	ref, err := parseRepo(dst, tag)
	if err != nil {
		return "", "", err
	}
	return ref, tag, nil
}
