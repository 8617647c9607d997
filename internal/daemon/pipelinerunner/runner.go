// Package pipelinerunner is the daemon's Runner: one reconcile is exactly
// the pipeline `ferry reconcile` runs (internal/pipeline), under the spec
// directory's file lock, its outcome turned into the daemon's Result and
// its invalid input into a StalledError.
package pipelinerunner

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"

	"github.com/ferry-gitops/ferry/internal/daemon"
	"github.com/ferry-gitops/ferry/internal/filelock"
	"github.com/ferry-gitops/ferry/internal/pipeline"
	"github.com/ferry-gitops/ferry/internal/renderdir"
	"github.com/ferry-gitops/ferry/reconcile"
	"github.com/ferry-gitops/ferry/spec"
)

// Runner reconciles a checkout with the shared pipeline.
type Runner struct {
	// Settings are the pipeline's; a checkout's Committer replaces
	// Settings.Committer.
	Settings pipeline.Settings
	// LockCacheDir is where the lock of a spec directory outside any git
	// work tree lives (filelock.PathFor).
	LockCacheDir string
	Log          *slog.Logger
}

var _ daemon.Runner = (*Runner)(nil)

// Run implements daemon.Runner.
func (r *Runner) Run(ctx context.Context, co daemon.Checkout) (*daemon.Result, error) {
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	path, err := filelock.PathFor(co.Dir, r.LockCacheDir)
	if err != nil {
		return nil, err
	}
	lock, err := filelock.Acquire(ctx, path, "ferry run "+co.Dir, func(holder string) {
		log.Info("waiting for the spec directory's lock", "lock", path, "holder", holder)
	})
	if err != nil {
		return nil, err
	}
	defer lock.Release()

	s := r.Settings
	if co.Committer != nil {
		s.Committer = co.Committer
	}
	if s.Log == nil {
		s.Log = log
	}
	diag := &logWriter{log: log}
	s.Diagnostics = diag
	_, out, err := pipeline.Reconcile(ctx, co.Dir, s, nil)
	res := result(out)
	var invalid *spec.InvalidError
	var unsafe *renderdir.UnsafePathError
	var usage *pipeline.UsageError
	switch {
	case errors.As(err, &invalid):
		return res, &daemon.StalledError{Reason: "InvalidSpec", Err: err}
	case errors.As(err, &unsafe):
		return res, &daemon.StalledError{Reason: "UnsafeRenderDirectory", Err: err}
	case errors.As(err, &usage):
		return res, &daemon.StalledError{Reason: "InvalidSettings", Err: err}
	}
	return res, err
}

// result turns the pipeline's outcome into the daemon's terms.
func result(out *reconcile.Outcome) *daemon.Result {
	if out == nil {
		return nil
	}
	res := &daemon.Result{Written: out.Written}
	if out.Copy != nil {
		res.ImagesCopied += out.Copy.Stats.ImagesCopied
		res.BytesCopied += out.Copy.Stats.BytesUploaded
	}
	if out.CatalogCopy != nil {
		res.ImagesCopied += out.CatalogCopy.Stats.ImagesCopied
		res.BytesCopied += out.CatalogCopy.Stats.BytesUploaded
	}
	res.Catalogs = []daemon.CatalogState{}
	for _, c := range out.Catalogs {
		if c.Pushed {
			res.CatalogsPushed++
		}
		res.Catalogs = append(res.Catalogs, daemon.CatalogState{Name: c.Name, Image: c.Image, Held: c.Held})
	}
	if out.Commit != nil {
		res.Commit = out.Commit.Hash
	}
	return res
}

// logWriter logs the pipeline's diagnostics (spec problems and warnings,
// one per line) as warnings.
type logWriter struct {
	log *slog.Logger
}

func (w *logWriter) Write(p []byte) (int, error) {
	sc := bufio.NewScanner(strings.NewReader(string(p)))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			w.log.Warn(l)
		}
	}
	return len(p), nil
}

var _ io.Writer = (*logWriter)(nil)
