package daemon

import (
	"context"
	"errors"
	"fmt"
)

// Runner is one whole reconcile of a checked-out spec directory, the
// pipeline `ferry reconcile` runs: registries, the cluster step, render,
// commit.
type Runner interface {
	// Run reconciles co and says what it did. A partial failure returns
	// the Result so far and an error; invalid desired state is a
	// *StalledError.
	Run(ctx context.Context, co Checkout) (*Result, error)
}

// Result is what one reconcile did.
type Result struct {
	// Revision is the source revision reconciled.
	Revision string `json:"revision"`
	// ImagesCopied and BytesCopied count what reached the mirror.
	ImagesCopied int   `json:"imagesCopied"`
	BytesCopied  int64 `json:"bytesCopied"`
	// CatalogsPushed counts catalog images pushed.
	CatalogsPushed int `json:"catalogsPushed"`
	// Catalogs are the catalogs served, with their images.
	Catalogs []CatalogState `json:"catalogs,omitempty"`
	// Written is set when the render directory changed.
	Written bool `json:"written"`
	// Commit is the commit made, "" when none.
	Commit string `json:"commit,omitempty"`
	// Summary is one line for logs, events and status.
	Summary string `json:"summary"`
}

// CatalogState is one catalog after a reconcile.
type CatalogState struct {
	Name string `json:"name"`
	// Image is the catalog image, pinned by digest.
	Image string `json:"image"`
	// Held says why the catalog keeps its previous render; empty when it
	// moved forward.
	Held string `json:"held,omitempty"`
}

// StalledError is a failure retrying cannot fix: the desired state is
// invalid (a spec problem, a render directory Ferry must not write). The
// daemon stops retrying until the source changes, and reports Stalled.
type StalledError struct {
	// Reason is a CamelCase word for the condition (InvalidSpec).
	Reason string
	Err    error
}

func (e *StalledError) Error() string { return e.Err.Error() }
func (e *StalledError) Unwrap() error { return e.Err }

func stalled(err error) (*StalledError, bool) {
	var s *StalledError
	ok := errors.As(err, &s)
	return s, ok
}

// Summary formats a Result's one-line summary.
func (r *Result) summary() string {
	s := fmt.Sprintf("%d image(s) copied (%d bytes), %d catalog image(s) pushed", r.ImagesCopied, r.BytesCopied, r.CatalogsPushed)
	if r.Commit != "" {
		short := r.Commit
		if len(short) > 12 {
			short = short[:12]
		}
		s += ", committed " + short
	} else if r.Written {
		s += ", render written"
	} else {
		s += ", render unchanged"
	}
	return s
}
