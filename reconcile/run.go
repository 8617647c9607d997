package reconcile

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"path/filepath"
	"strings"
	"time"

	"github.com/ferry-gitops/ferry/internal/renderdir"
	"github.com/ferry-gitops/ferry/internal/safefs"
	"github.com/ferry-gitops/ferry/spec"
)

// Options are the settings of one reconcile. The CLI fills them from flags
// and the daemon from its own; both run the same Reconciler, so they can
// never disagree about what a reconcile does.
type Options struct {
	// RenderDir is the render directory, relative to the spec directory.
	RenderDir string
	// CheckMirror asks the mirror which images it lacks while planning
	// (diff and --dry-run show them; Apply finds out by copying).
	CheckMirror bool
	// Apply configures the registry steps (copy engine, progress).
	Apply ApplyOptions
	// Cluster configures the cluster step.
	Cluster ClusterOptions
	// NoClusterPlan reads from the cluster only what rendering needs (the
	// samples operator's image list) and plans no cluster objects:
	// `ferry render`.
	NoClusterPlan bool
}

// ClusterOptions are the cluster step's settings, as kubectl names them.
type ClusterOptions struct {
	// Wait is how long to wait for each changed CatalogSource or
	// ClusterCatalog to serve its new image; 0 does not wait.
	Wait time.Duration
	// PollInterval is how often waits read the object again.
	PollInterval time.Duration
	// ForceConflicts takes over fields another manager owns.
	ForceConflicts bool
	// AllowBreaking applies changes that strand a Subscription or a
	// ClusterExtension, and prunes CatalogSources in use.
	AllowBreaking bool
	// Prune deletes objects Ferry owns that are no longer rendered (the
	// instance label names the owner: see Instance).
	Prune bool
}

// DefaultClusterOptions wait a few minutes for catalogs, like an
// administrator watching `oc get catalogsource -w` would.
func DefaultClusterOptions() ClusterOptions {
	return ClusterOptions{Wait: 5 * time.Minute, PollInterval: 2 * time.Second}
}

// Committer records the render directory in version control; gitsync
// implements it. A nil Committer leaves the render written, uncommitted.
type Committer interface {
	// Commit records every change under renderDir with message: one
	// commit, none when nothing changed (Commit.Hash is then "").
	Commit(ctx context.Context, renderDir, message string) (Commit, error)
}

// Commit is what a Committer recorded.
type Commit struct {
	Hash  string
	Files []string
	// Skipped says why nothing was committed ("not a git work tree");
	// empty when a commit was made or nothing changed.
	Skipped string
}

// Reconciler runs the whole pipeline: observe, plan, and apply in the safe
// order (copy → push catalog images → mirror sets → CatalogSources and
// ClusterCatalogs → samples → prune → render → commit).
type Reconciler struct {
	Observer *Observer
	// Cluster is nil when no cluster is configured: the cluster step is
	// skipped and the plan says so.
	Cluster Cluster
	// ClusterSkipped says why Cluster is nil, for the plan.
	ClusterSkipped string
	// Committer is nil when the spec directory is not under version
	// control.
	Committer Committer
	Log       *slog.Logger
}

// Planned is a computed plan together with what it was computed from;
// Apply carries out exactly this.
type Planned struct {
	Dir    string
	Config *spec.Config
	Plan   *Plan
	Result *Result
	// Previous is the previous render directory, nil when there is none.
	Previous fs.FS
	// Incomplete lists the parts that could not be planned (a catalog
	// whose source could not be read, a tag that could not be resolved):
	// the rest is applied, then the run fails with it.
	Incomplete *IncompleteError
	cluster    *clusterState
}

// Plan observes the registries (and the cluster, when there is one) and
// computes what a reconcile of cfg, loaded from dir, would do. It writes
// nothing anywhere.
func (r *Reconciler) Plan(ctx context.Context, dir string, cfg *spec.Config, opts Options) (*Planned, error) {
	previous, err := previousRender(dir, opts.RenderDir)
	if err != nil {
		return nil, err
	}
	plan, res, err := r.Observer.Compute(ctx, cfg, previous)
	var incomplete *IncompleteError
	if err != nil && !errors.As(err, &incomplete) {
		return nil, err
	}
	p := &Planned{Dir: dir, Config: cfg, Plan: plan, Result: res, Previous: previous, Incomplete: incomplete}
	if opts.CheckMirror && res.Mirror != nil {
		plan.Copy = r.Observer.CheckMirror(ctx, res.Mirror)
	}
	if err := r.planSamples(ctx, p); err != nil {
		return nil, err
	}
	if !opts.NoClusterPlan {
		if err := r.planCluster(ctx, p, opts); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// previousRender is the render directory to compare with, nil when there
// is none yet. It is read through a view that follows no symbolic link (the
// render directory itself included), reads regular files only and bounds
// their size: the render directory holds only what Ferry wrote, and a
// read-only diff must not read a lock linked to /dev/zero, block on a FIFO
// or read a render directory linked elsewhere. The view is released when it
// is garbage collected.
func previousRender(dir, renderDir string) (fs.FS, error) {
	view, err := safefs.Open(dir, safefs.Options{MaxFileSize: MaxPreviousFileSize})
	if err != nil {
		return nil, fmt.Errorf("render directory: %w", err)
	}
	where := filepath.Join(dir, renderDir)
	fi, err := view.Stat(renderDir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case errors.Is(err, safefs.ErrSymlink):
		return nil, &renderdir.UnsafePathError{Path: where, Reason: "is a symlink, or lies under one"}
	case err != nil:
		return nil, fmt.Errorf("render directory: %w", err)
	case !fi.IsDir():
		return nil, &renderdir.UnsafePathError{Path: where, Reason: "is not a directory"}
	}
	return view.Sub(renderDir)
}

// step is one stage of Apply. Steps run in order; a step that fails stops
// the ones after it, except that the render and commit steps always run
// once anything reached the mirror, so the repository describes it.
type step struct {
	name string
	run  func(ctx context.Context, p *Planned, opts Options, out *Outcome) error
}

// Apply carries out a plan in the safe order and returns what it did. A
// partial failure returns the Outcome and a *HeldError (or a cluster error);
// everything that succeeded stays done, and the next run resumes.
func (r *Reconciler) Apply(ctx context.Context, p *Planned, opts Options) (*Outcome, error) {
	renderPath := filepath.Join(p.Dir, opts.RenderDir)
	// A render directory Ferry must not write into is refused before
	// anything is copied or pushed.
	if err := renderdir.Check(renderPath); err != nil {
		return nil, err
	}
	out := &Outcome{}
	var failure error
	steps := []step{
		{"registries", r.applyRegistries},
		{"samples images", r.copySamples},
		{"cluster", r.applyCluster},
	}
	for _, s := range steps {
		if err := s.run(ctx, p, opts, out); err != nil {
			failure = errors.Join(failure, err)
			var held *HeldError
			var cluster *ClusterError
			if !errors.As(err, &held) && !errors.As(err, &cluster) {
				break
			}
		}
	}
	if out.Files == nil {
		// Nothing reached the point of rendering (bad input, cancelled).
		return out, failure
	}
	if err := r.writeRender(ctx, p, opts, out); err != nil {
		return out, errors.Join(failure, err)
	}
	if p.Incomplete != nil {
		failure = errors.Join(failure, p.Incomplete)
	}
	return out, failure
}

// applyRegistries copies the image set and pushes the catalog images. A
// catalog whose change the guard found breaking is held back like one
// whose images are missing.
func (r *Reconciler) applyRegistries(ctx context.Context, p *Planned, opts Options, out *Outcome) error {
	if c := p.Plan.Cluster; c != nil {
		for _, o := range c.Objects {
			if o.Action == ObjectBreaking && o.Catalog != "" && o.File != "" {
				if opts.Apply.Hold == nil {
					opts.Apply.Hold = map[string]string{}
				}
				opts.Apply.Hold[o.Catalog] = "breaking: " + strings.Join(o.Reasons, "; ")
			}
		}
	}
	o, err := r.Observer.Apply(ctx, p.Result, p.Previous, opts.Apply)
	if o != nil {
		out.Copy, out.CatalogCopy, out.Catalogs, out.Files = o.Copy, o.CatalogCopy, o.Catalogs, o.Files
	}
	return err
}

// writeRender writes the achieved render and commits it. A run that
// changed nothing leaves the render directory as it is.
func (r *Reconciler) writeRender(ctx context.Context, p *Planned, opts Options, out *Outcome) error {
	renderPath := filepath.Join(p.Dir, opts.RenderDir)
	if anyChange(diffFiles(p.Previous, out.Files)) {
		if err := renderdir.Write(renderPath, out.Files); err != nil {
			return err
		}
		out.Written = true
	}
	if r.Committer == nil {
		return nil
	}
	c, err := r.Committer.Commit(ctx, renderPath, out.CommitMessage(p.Plan, p.Previous))
	if err != nil {
		return fmt.Errorf("commit %s: %w", renderPath, err)
	}
	out.Commit = &c
	return nil
}

func anyChange(fc []FileChange) bool {
	for _, f := range fc {
		if f.Action.Changes() {
			return true
		}
	}
	return false
}
