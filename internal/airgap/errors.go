package airgap

import (
	"fmt"
	"strings"

	"github.com/ferry-gitops/ferry/internal/mirror"
)

// ArchiveError says an archive cannot be imported as it is: truncated,
// corrupt, or not matching its record. Import returns it before anything
// is pushed.
type ArchiveError struct {
	Path     string
	Problems []Problem
}

// Problem is one thing wrong with an archive.
type Problem struct {
	// File is the member of the archive ("blobs/sha256/...", "index.json",
	// RecordFile); empty for the archive as a whole.
	File string
	// Image is the destination of the image concerned, if one is.
	Image  string
	Reason string
}

func (p Problem) String() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Image != "" {
		if b.Len() > 0 {
			b.WriteString(" ")
		}
		fmt.Fprintf(&b, "(image %s)", p.Image)
	}
	if b.Len() > 0 {
		b.WriteString(": ")
	}
	b.WriteString(p.Reason)
	return b.String()
}

func (e *ArchiveError) Error() string {
	parts := make([]string, 0, min(len(e.Problems), 5)+1)
	for i, p := range e.Problems {
		if i == 5 {
			parts = append(parts, fmt.Sprintf("and %d more problems", len(e.Problems)-i))
			break
		}
		parts = append(parts, p.String())
	}
	return fmt.Sprintf("archive %s: %s", e.Path, strings.Join(parts, "; "))
}

// MissingError is Import's error when images failed because the mirror
// lacks what this incremental archive left out: the earlier archives it
// builds on were not imported (or not completely) into this mirror.
type MissingError struct {
	Path string
	// Since are the earlier archives' IDs (Record.Since).
	Since []string
	// Digests are the left-out blobs and manifests the mirror did not have.
	Digests []string
	// Err is the copy engine's *mirror.IncompleteError.
	Err error
}

func (e *MissingError) Error() string {
	return fmt.Sprintf("archive %s left out %d blobs or manifests that earlier archives (%s) carried and the mirror does not have: import those first: %v",
		e.Path, len(e.Digests), strings.Join(e.Since, ", "), e.Err)
}

func (e *MissingError) Unwrap() error { return e.Err }

// ExportError is Export's error when some images could not be read from
// their sources. No archive is produced (a directory keeps the blobs it
// verified, so exporting again into it fetches only the rest).
type ExportError struct {
	Path string
	// Failed names each image that failed and why, redacted by the copy
	// engine; Destination is the image's mirror destination.
	Failed []*mirror.ImageError
}

func (e *ExportError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "export %s: %d images not exported", e.Path, len(e.Failed))
	for i, f := range e.Failed {
		if i == 3 {
			fmt.Fprintf(&b, "; and %d more", len(e.Failed)-i)
			break
		}
		fmt.Fprintf(&b, "; %s (to %s): %s", f.Source, f.Destination, f.Reason)
	}
	return b.String()
}

// Is reports whether any failure is target (context.Canceled, say).
func (e *ExportError) Is(target error) bool {
	for _, f := range e.Failed {
		if f.Is(target) {
			return true
		}
	}
	return false
}
