package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/internal/airgap"
	"github.com/ferry-gitops/ferry/internal/filelock"
	engine "github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/internal/pipeline"
	"github.com/ferry-gitops/ferry/internal/renderdir"
	"github.com/ferry-gitops/ferry/reconcile"
)

// reconcileFlags are reconcile's own flags.
type reconcileFlags struct {
	planFlags
	applyFlags
	Wait           time.Duration
	DryRun         bool
	Commit         bool
	MaxPerRegistry int
	CacheDir       string
	Progress       string
	ToArchive      string
	Since          []string
	PushRetries    int
}

func newReconcileCmd() *cobra.Command {
	var f reconcileFlags
	output := outputText
	cmd := &cobra.Command{
		Use:   "reconcile [DIR | --repo URL]",
		Short: "Converge catalogs, mirror and cluster on the spec (--dry-run: print the plan only)",
		Long: `Computes the plan — source catalogs read, filtered, extended with extra
bundles, built into catalog images; the mirror's image set resolved; the
cluster's objects compared (server-side dry-run) — and applies it in a safe
order:

  1. copy every image of the image set the mirror lacks, by digest;
  2. push each built catalog image whose images are all in the mirror;
  3. copy the sample images (Samples mirrorImages);
  4. with a cluster (--kubeconfig, $KUBECONFIG, ~/.kube/config or in-cluster):
     server-side apply as field manager "ferry" the mirror sets, OperatorHub,
     then the CatalogSources / ClusterCatalogs of catalogs whose images are all
     in the mirror (waiting --wait for each to serve), then the samples Config
     (an architecture change goes Removed -> edit -> Managed), then prune
     (--prune); a change that strands a Subscription or ClusterExtension is
     not applied without --allow-breaking, a field another manager owns not
     without --force-conflicts;
  5. write the render directory (a catalog whose images are not all in the
     mirror keeps its previous render, and mirror files list only what the
     mirror holds);
  6. commit the render directory when DIR is in a git work tree.

With --repo URL the spec is the tip of --branch (--path inside it), fetched
into the clone in --cache-dir; the render directory is committed there (one
commit, none when nothing changed, with the spec commit as a
Ferry-Source-Revision trailer, signed by --git-author) and pushed to
--push-branch or --branch, fast-forward only, never forced. When the push is
rejected because someone pushed meanwhile, Ferry fetches, plans and applies
again on the new tip (only what is still missing is copied) and pushes on top,
at most --push-retries more times; if the new tip's spec is invalid it stops
there (exit 2) and pushes nothing. --dry-run never writes to the repository.

Exit 0 when converged, 1 when anything failed (every failure is listed;
the next run picks up where this one stopped), 2 for invalid input (nothing
is done). With --dry-run it prints the plan and changes nothing anywhere.

Air gap: --to-archive PATH (a directory, or a tar when PATH ends in .tar)
writes the images the mirror would receive, the built catalog images and the
render into an OCI layout instead, touching neither the mirror nor DIR;
--since EARLIER leaves out what an earlier archive carried. On the
disconnected side, ferry import PATH pushes it into the mirror.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.repoFlags.check(cmd, args); err != nil {
				return err
			}
			if len(f.Since) > 0 && f.ToArchive == "" {
				return &usageError{errors.New("--since needs --to-archive")}
			}
			if err := checkProgress(f.Progress); err != nil {
				return err
			}
			writes := !f.DryRun && f.ToArchive == ""
			if f.Repo != "" && writes {
				if !f.Commit {
					return &usageError{errNoCommit}
				}
				return f.reconcileRepo(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr())
			}
			src, err := f.openSource(cmd.Context(), args, f.CacheDir, f.RenderDir, true, true)
			if err != nil {
				return err
			}
			defer src.Close()
			if writes {
				// Writing the render directory: one ferry at a time.
				unlock, err := lockDir(cmd.Context(), cmd.ErrOrStderr(), src.Dir, f.CacheDir, "ferry reconcile")
				if err != nil {
					return err
				}
				defer unlock()
			}
			s, err := f.settings(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			s.DisplayDir = src.Display
			p, err := f.plan(cmd.Context(), src.Dir, s, reconcile.Options{CheckMirror: f.DryRun})
			if err != nil {
				return err
			}
			if f.DryRun {
				return finish(p, writePlan(cmd.OutOrStdout(), p.Plan, output))
			}
			if f.ToArchive != "" {
				return finish(p, f.export(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), p))
			}
			return finish(p, f.apply(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), src.Display, p))
		},
	}
	f.planFlags.add(cmd)
	f.applyFlags.add(cmd)
	f.repoFlags.addSignature(cmd)
	cmd.Flags().IntVar(&f.PushRetries, "push-retries", 3, "with --repo: times a push rejected because the branch moved is re-planned on the new tip and retried")
	cmd.Flags().DurationVar(&f.Wait, "wait", 5*time.Minute, "how long to wait for each changed CatalogSource (READY) or ClusterCatalog (Serving) to serve its new catalog; 0 does not wait")
	cmd.Flags().BoolVar(&f.DryRun, "dry-run", false, "print the plan; change nothing anywhere")
	cmd.Flags().VarP(&output, "output", "o", "plan output format with --dry-run: text, json or yaml")
	cmd.Flags().BoolVar(&f.Commit, "commit", true, "commit the render directory when DIR is in a git work tree")
	cmd.Flags().IntVar(&f.MaxPerRegistry, "max-per-registry", engine.DefaultOptions(nil).Concurrency, "operations in flight per registry while mirroring")
	cmd.Flags().StringVar(&f.CacheDir, "cache-dir", defaultCacheDir(), "where blob locations seen in the mirror (an optimisation only) and the --repo clone are kept between runs")
	cmd.Flags().StringVar(&f.ToArchive, "to-archive", "", "mirror to disk: write the image set, catalog images and render to this OCI layout directory or .tar instead of the mirror")
	cmd.Flags().StringSliceVar(&f.Since, "since", nil, "with --to-archive: an earlier archive whose content is left out (incremental; the newest is enough)")
	cmd.Flags().StringVar(&f.Progress, "progress", "auto", "mirroring progress: auto (bars on a terminal, log lines otherwise), always (bars) or never")
	return cmd
}

// checkProgress validates --progress.
func checkProgress(mode string) error {
	switch mode {
	case "auto", "always", "never":
		return nil
	}
	return &usageError{fmt.Errorf("--progress %q: use auto, always or never", mode)}
}

func defaultCacheDir() string {
	if d, err := os.UserCacheDir(); err == nil {
		return filepath.Join(d, "ferry")
	}
	return ""
}

// settings are the pipeline settings of reconcile's flags.
func (f *reconcileFlags) settings(errOut io.Writer) (pipeline.Settings, error) {
	s, err := f.planFlags.settings(errOut)
	if err != nil {
		return s, err
	}
	s.Commit = f.Commit
	s.CacheDir = f.CacheDir
	s.MaxPerRegistry = f.MaxPerRegistry
	s.ClusterOptions = f.applyFlags.options(f.Wait)
	return s, nil
}

// apply executes the plan and reports what it did.
func (f *reconcileFlags) apply(ctx context.Context, stdout, stderr io.Writer, dir string, p *planned) error {
	out, err := f.applyPlanned(ctx, stdout, stderr, p)
	if out != nil {
		writeRenderOutcome(stdout, filepath.Join(dir, f.RenderDir), out)
	}
	return err
}

// applyPlanned prints the plan, executes it with progress and prints what
// it copied, pushed and applied, and every failure.
func (f *reconcileFlags) applyPlanned(ctx context.Context, stdout, stderr io.Writer, p *planned) (*reconcile.Outcome, error) {
	if err := p.Plan.WriteText(stdout); err != nil {
		return nil, err
	}
	var reporter engine.Reporter
	var bar *progress
	if p.Result.Mirror != nil {
		if bar = newProgress(stderr, p.CopyPairs(), f.Progress); bar != nil {
			reporter = bar
		}
	}
	out, err := p.Apply(ctx, reporter)
	bar.stop()
	if out != nil {
		writeOutcome(stdout, out)
	}
	var held *reconcile.HeldError
	if errors.As(err, &held) {
		for _, e := range held.Failed {
			fmt.Fprintf(stderr, "failed: %v\n", e)
		}
		for _, e := range held.PushErrors {
			fmt.Fprintf(stderr, "failed: %v\n", e)
		}
		for _, c := range held.Catalogs {
			fmt.Fprintf(stderr, "held back: Catalog/%s keeps its previous render: %s\n", c.Name, c.Held)
		}
	}
	return out, err
}

// reconcileRepo is reconcile --repo: the shared pipeline over the clone,
// then the render published (pipeline.ReconcileRepo), printing each run's
// plan and outcome as a local reconcile does.
func (f *reconcileFlags) reconcileRepo(ctx context.Context, stdout, stderr io.Writer) error {
	rs, err := f.repoFlags.settings(f.CacheDir, f.RenderDir, false)
	if err != nil {
		return err
	}
	if f.PushRetries < 0 {
		return &usageError{errors.New("--push-retries must not be negative")}
	}
	rs.PushAttempts = f.PushRetries + 1
	repo, err := pipeline.OpenRepo(ctx, rs)
	if err != nil {
		return err
	}
	defer repo.Close()
	s, err := f.settings(stderr)
	if err != nil {
		return err
	}
	s.DisplayDir = displayRepoPath(f.Path)
	runs := 0
	var last *planned
	run := func(ctx context.Context, dir string, s pipeline.Settings) (*pipeline.Planned, *reconcile.Outcome, error) {
		if runs++; runs > 1 {
			fmt.Fprintf(stdout, "\nPush rejected: %s %s moved meanwhile. Planning again on its new tip %s.\n", repo.URL(), repo.Branch(), shortRev(repo.Revision()))
		}
		p, err := pipeline.Plan(ctx, dir, s, reconcile.Options{})
		if err != nil {
			return nil, nil, err
		}
		last = p
		out, err := f.applyPlanned(ctx, stdout, stderr, p)
		return p, out, err
	}
	res, err := pipeline.ReconcileRepo(ctx, repo, s, run)
	renderPath := repo.RenderPath()
	var stale *gitsync.RerenderError
	switch pub := res.Published; {
	case errors.As(err, &stale):
		fmt.Fprintf(stderr, "Push rejected: %s %s moved to %s, which cannot be reconciled; nothing was pushed.\n", repo.URL(), repo.Branch(), shortRev(stale.Revision))
		return stale.Err
	case pub == nil:
	case pub.Commit == "":
		fmt.Fprintf(stdout, "Render: %s unchanged at %s; nothing to push.\n", renderPath, shortRev(pub.Base))
	default:
		fmt.Fprintf(stdout, "Render: pushed %d file(s) in %s as %s to %s %s (spec %s", len(pub.Files), renderPath, shortRev(pub.Commit), repo.URL(), pub.Branch, shortRev(pub.Base))
		if pub.Attempts > 1 {
			fmt.Fprintf(stdout, ", after %d push attempts", pub.Attempts)
		}
		fmt.Fprintln(stdout, ").")
	}
	if err == nil && last != nil {
		return finish(last, nil)
	}
	return err
}

// shortRev is a commit as messages show it.
func shortRev(rev string) string {
	if len(rev) > 12 {
		return rev[:12]
	}
	return rev
}

// lockDir takes the lock that keeps two ferry processes from writing one
// spec directory at once, waiting (and saying so, once) while another
// holds it; Ctrl-C ends the wait.
func lockDir(ctx context.Context, stderr io.Writer, dir, cacheDir, who string) (func(), error) {
	path, err := filelock.PathFor(dir, cacheDir)
	if err != nil {
		return nil, err
	}
	l, err := filelock.Acquire(ctx, path, who+" "+dir, func(holder string) {
		if holder == "" {
			holder = "another ferry"
		}
		fmt.Fprintf(stderr, "waiting: %s is being reconciled by %s (lock %s)\n", dir, holder, path)
	})
	if err != nil {
		return nil, err
	}
	return func() { l.Release() }, nil
}

// writeRenderOutcome says what happened to the render directory.
func writeRenderOutcome(w io.Writer, renderDir string, out *reconcile.Outcome) {
	switch c := out.Commit; {
	case c == nil && out.Written:
		fmt.Fprintf(w, "Render: %s written; not committed (--commit=false).\n", renderDir)
	case c == nil:
		fmt.Fprintf(w, "Render: %s unchanged.\n", renderDir)
	case c.Skipped != "":
		fmt.Fprintf(w, "Render: %s written; %s, nothing committed.\n", renderDir, c.Skipped)
	case c.Hash == "":
		fmt.Fprintf(w, "Render: %s unchanged; nothing to commit.\n", renderDir)
	default:
		fmt.Fprintf(w, "Render: committed %d file(s) in %s as %s.\n", len(c.Files), renderDir, c.Hash[:12])
	}
}

// writeRender writes files into DIR's render directory and commits it when
// DIR is in a git work tree (ferry import).
func (f *reconcileFlags) writeRender(stdout io.Writer, dir string, files map[string][]byte, message string) error {
	renderDir := filepath.Join(dir, f.RenderDir)
	if err := renderdir.Write(renderDir, files); err != nil {
		return err
	}
	out := &reconcile.Outcome{Written: true}
	if f.Commit {
		c, err := gitsync.WorkTree{Dir: dir}.Commit(context.Background(), renderDir, message)
		if err != nil {
			return fmt.Errorf("commit %s: %w", renderDir, err)
		}
		out.Commit = &c
	}
	writeRenderOutcome(stdout, renderDir, out)
	return nil
}

// export is mirror-to-disk: the plan's images, catalogs and render go into
// an archive; nothing else is written.
func (f *reconcileFlags) export(ctx context.Context, stdout, stderr io.Writer, p *planned) error {
	if err := p.Plan.WriteText(stdout); err != nil {
		return err
	}
	a := airgap.ExportOptions{Path: f.ToArchive, Since: f.Since, Concurrency: f.MaxPerRegistry, Log: slog.Default()}
	if p.Result.Mirror != nil {
		if bar := newProgress(stderr, p.CopyPairs(), f.Progress); bar != nil {
			a.Reporter = bar
			defer bar.stop()
		}
	}
	rep, err := p.Reconciler.Observer.Export(ctx, p.Result, reconcile.ExportOptions{Archive: a})
	if err != nil {
		var ee *airgap.ExportError
		if errors.As(err, &ee) {
			for _, e := range ee.Failed {
				fmt.Fprintf(stderr, "failed: %v\n", e)
			}
		}
		return err
	}
	st := rep.Stats
	fmt.Fprintf(stdout, "Archive: %s: %d image(s) (%d carried whole by an earlier archive); holds %d manifest(s) and %d blob(s), %s; left out %d blob(s), %s, carried before; %s.\n",
		f.ToArchive, st.Images, st.Earlier, st.Manifests, st.Blobs, reconcile.FormatBytes(st.ManifestBytes+st.BlobBytes),
		st.LeftOut, reconcile.FormatBytes(st.LeftOutBytes), rep.Duration.Round(1e7))
	fmt.Fprintf(stdout, "Carry it across and run: ferry import %s [DIR]\n", filepath.Base(f.ToArchive))
	return nil
}

// writeOutcome prints what was copied, pushed and applied.
func writeOutcome(w io.Writer, out *reconcile.Outcome) {
	for _, rep := range []*engine.Report{out.Copy, out.CatalogCopy} {
		writeCopyReport(w, rep)
	}
	if so := out.Samples; so != nil && so.Copy != nil {
		s := so.Copy.Stats
		fmt.Fprintf(w, "Samples: %d image(s): %d present, %d copied, %d failed.\n", s.Images, s.ImagesPresent, s.ImagesCopied, s.ImagesFailed)
		streams := make([]string, 0, len(so.Skipped))
		for st := range so.Skipped {
			streams = append(streams, st)
		}
		sort.Strings(streams)
		for _, st := range streams {
			fmt.Fprintf(w, "Samples: imagestream %s added to skippedImagestreams: %s\n", st, so.Skipped[st])
		}
	}
	if out.Cluster != nil {
		_ = out.Cluster.WriteText(w)
	}
	for _, c := range out.Catalogs {
		switch {
		case c.Held != "":
			fmt.Fprintf(w, "Catalog/%s: held back (%s)\n", c.Name, c.Held)
		case c.Pushed:
			fmt.Fprintf(w, "Catalog/%s: pushed %s\n", c.Name, c.Image)
		default:
			fmt.Fprintf(w, "Catalog/%s: %s already pushed\n", c.Name, c.Image)
		}
	}
}

// writeCopyReport prints a copy engine report's summary line.
func writeCopyReport(w io.Writer, rep *engine.Report) {
	if rep == nil {
		return
	}
	s := rep.Stats
	fmt.Fprintf(w, "Mirror: %d image(s): %d present, %d copied, %d failed; blobs %d uploaded (%s), %d mounted, %d present; %s.\n",
		s.Images, s.ImagesPresent, s.ImagesCopied, s.ImagesFailed,
		s.BlobsUploaded, reconcile.FormatBytes(s.BytesUploaded), s.BlobsMounted, s.BlobsPresent, rep.Duration.Round(1e7))
}
