package mirror

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Action is what a run did for one image.
type Action string

const (
	// ActionPresent: the image was in the mirror already (one HEAD).
	ActionPresent Action = "Present"
	// ActionCopied: what was missing was copied; the image is complete.
	ActionCopied Action = "Copied"
	// ActionFailed: the image is not (or not known to be) in the mirror.
	ActionFailed Action = "Failed"
)

// Complete is true when the image is in the mirror, all of it.
func (a Action) Complete() bool { return a == ActionPresent || a == ActionCopied }

// ImageResult is the outcome for one Pair.
type ImageResult struct {
	Pair
	// Digest is the manifest digest copied (the source's, preserved);
	// empty when a source tag could not be resolved.
	Digest string
	// Mirrored is the destination pinned by digest (repo@sha256:...), the
	// reference a cluster should pull; empty without Digest.
	Mirrored string
	Action   Action
	// Err says why, when Action is ActionFailed.
	Err *ImageError
}

// Report is what a Copy did.
type Report struct {
	// Images has one result per Pair, in input order.
	Images []ImageResult
	// Stats sums the run.
	Stats Stats
	// Registries has the requests each registry received, sorted by host.
	Registries []RegistryStats
	// Blobs is where this run saw or put blobs in the mirror, plus the
	// hints it was given and did not refute: the next run's BlobHints.
	Blobs BlobLocations
	// Duration is the wall time of the run.
	Duration time.Duration
}

// Failed returns the results of the images that failed.
func (r *Report) Failed() []ImageResult {
	var out []ImageResult
	for _, im := range r.Images {
		if im.Action == ActionFailed {
			out = append(out, im)
		}
	}
	return out
}

// Complete is true when every pair copying into destination (as given in
// Pair.Destination) completed: a caller pointing a cluster at images checks
// this before moving anything that depends on them.
func (r *Report) Complete(destination string) bool {
	seen := false
	for _, im := range r.Images {
		if im.Destination == destination {
			seen = true
			if !im.Action.Complete() {
				return false
			}
		}
	}
	return seen
}

// Registry returns the request counts of host; zero when it was not used.
func (r *Report) Registry(host string) RegistryStats {
	for _, s := range r.Registries {
		if s.Host == host {
			return s
		}
	}
	return RegistryStats{Host: host, Requests: map[string]int64{}}
}

// Stats sums a run. Blob counts are per blob of every manifest copied: the
// same base layer in ten new repositories is one upload and nine mounts,
// and a layer two copied images of one repository share is counted twice
// (the second time as present).
type Stats struct {
	Images, ImagesPresent, ImagesCopied, ImagesFailed int
	// Manifests is the number of manifests and indexes put.
	Manifests int
	// IndexesCompleted counts indexes that got every child although
	// Platforms selected fewer, because the registry refused the index
	// without them.
	IndexesCompleted int

	BlobsPresent, BlobsMounted, BlobsUploaded int
	BytesPresent, BytesMounted, BytesUploaded int64
	// UploadsRecovered counts uploads (included in BlobsUploaded) whose
	// answer was lost after every byte was sent, and which the next
	// attempt found committed in the destination repository instead of
	// sending them again.
	UploadsRecovered int
}

// RegistryStats are the requests one registry received (pings answered
// from the per-run cache are not requests).
type RegistryStats struct {
	Host string
	// Requests counts requests by method, retries included.
	Requests map[string]int64
	// Writes counts POST, PUT, PATCH and DELETE requests.
	Writes int64
	// Retries counts requests sent again after a failure.
	Retries int64
	// Pings counts capability probes (GET /v2/) that reached the registry.
	Pings int64
	// BytesSent and BytesReceived are body bytes, failed attempts included.
	BytesSent, BytesReceived int64
}

// ImageError says why one image failed. Its text names the image and the
// cause with credentials and signed URL parts removed.
type ImageError struct {
	Source, Destination string
	// Reason is the cause, redacted.
	Reason string
	// StatusCode is the HTTP status that failed the image, 0 for a
	// transport failure.
	StatusCode int
	// cause is kept for errors.Is (context.Canceled, say); it is never
	// printed, because its text may hold what Reason removed.
	cause error
}

func newImageError(p Pair, err error) *ImageError {
	e := &ImageError{Source: p.Source, Destination: p.Destination, Reason: registry.Redact(err.Error()), cause: err}
	var te *transport.Error
	if errors.As(err, &te) {
		e.StatusCode = te.StatusCode
	}
	return e
}

func (e *ImageError) Error() string {
	return fmt.Sprintf("copy %s to %s: %s", e.Source, e.Destination, e.Reason)
}

// Is lets callers test the cause (errors.Is(err, context.Canceled)) without
// the cause's unredacted text being reachable through Unwrap.
func (e *ImageError) Is(target error) bool {
	return errors.Is(e.cause, target)
}

// NotFound is true when the image failed on a 404: usually a source image
// or tag that does not exist.
func (e *ImageError) NotFound() bool { return e.StatusCode == http.StatusNotFound }

// IncompleteError is Copy's error when some images failed. The others are
// complete in the mirror; Report.Complete tells which destinations may be
// used.
type IncompleteError struct {
	Report *Report
	Failed []*ImageError
}

func (e *IncompleteError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d of %d images not mirrored", len(e.Failed), len(e.Report.Images))
	for i, f := range e.Failed {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Failed)-i)
			break
		}
		b.WriteString("; ")
		b.WriteString(f.Error())
	}
	return b.String()
}

// Complete is Report.Complete.
func (e *IncompleteError) Complete(destination string) bool { return e.Report.Complete(destination) }

// Is reports whether any failure is target (errors.Is(err,
// context.Canceled) after an interrupted run).
func (e *IncompleteError) Is(target error) bool {
	for _, f := range e.Failed {
		if f.Is(target) {
			return true
		}
	}
	return false
}
