package pipeline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/internal/catalogimage"
	engine "github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/internal/safefs"
	"github.com/ferry-gitops/ferry/reconcile"
	"github.com/ferry-gitops/ferry/spec"
)

// Settings are how a reconcile reaches the outside world. The CLI fills
// them from its flags and the daemon from its own.
type Settings struct {
	// RenderDir is the render directory, relative to the spec directory;
	// it is never read as spec.
	RenderDir string
	// RegistryConfig is a docker config.json or podman auth.json; empty
	// uses $REGISTRY_AUTH_FILE and the default locations.
	RegistryConfig string
	// InsecureRegistry adds to the Mirror's insecureRegistries.
	InsecureRegistry []string
	// CacheDir keeps the blob locations seen in the mirror between runs
	// (an optimisation only); empty keeps nothing.
	CacheDir string
	// MaxPerRegistry bounds operations in flight per registry while
	// mirroring; 0 is the copy engine's default.
	MaxPerRegistry int
	// Commit commits the render directory (with Committer, or in the spec
	// directory's git work tree when Committer is nil).
	Commit    bool
	Committer reconcile.Committer
	// Cluster is the cluster the cluster step applies to; nil skips the
	// step, and ClusterSkipped says why in the plan.
	Cluster        reconcile.Cluster
	ClusterSkipped string
	// ClusterOptions are the cluster step's settings.
	ClusterOptions reconcile.ClusterOptions
	// Log receives the engine's log lines; nil is slog.Default().
	Log *slog.Logger
	// Diagnostics receives spec problems and warnings, one
	// `file:line: Kind/name: field: message` line each, and planning
	// warnings; nil discards them.
	Diagnostics io.Writer
	// DisplayDir is how the spec directory is named in those lines; empty
	// is the directory as given. A clone in the cache is shown by its
	// --path inside the repository, the path a user opens in a checkout.
	DisplayDir string
}

func (s Settings) display(dir string) string {
	if s.DisplayDir != "" {
		return s.DisplayDir
	}
	return dir
}

func (s Settings) log() *slog.Logger {
	if s.Log != nil {
		return s.Log
	}
	return slog.Default()
}

func (s Settings) diagnostics() io.Writer {
	if s.Diagnostics != nil {
		return s.Diagnostics
	}
	return io.Discard
}

// Planned is a computed plan with the Reconciler that computed it; Apply
// carries out exactly this plan.
type Planned struct {
	*reconcile.Planned
	Reconciler *reconcile.Reconciler
	settings   Settings
}

// LoadSpec reads the spec in dir through a bounded view (regular files
// only, size-capped, links kept inside dir), leaving out renderDir.
func LoadSpec(ctx context.Context, dir, renderDir string) (*spec.Config, error) {
	view, err := safefs.Open(dir, safefs.Options{FollowSymlinks: true, MaxFileSize: spec.DefaultMaxFileSize})
	if err != nil {
		return nil, &UsageError{fmt.Errorf("spec directory: %w", err)}
	}
	defer view.Close()
	return spec.LoadContext(ctx, view, spec.LoadOptions{Exclude: []string{renderDir}})
}

// Load reads the spec in dir, leaving out the render directory. Every
// problem and warning is written to s.Diagnostics with its path shown
// relative to how dir was given.
func Load(ctx context.Context, dir string, s Settings) (*spec.Config, error) {
	out := s.diagnostics()
	shown := s.display(dir)
	cfg, err := LoadSpec(ctx, dir, s.RenderDir)
	if err != nil {
		var invalid *spec.InvalidError
		if errors.As(err, &invalid) {
			for _, p := range invalid.Problems {
				p.File = DisplayPath(shown, p.File)
				fmt.Fprintln(out, p.String())
			}
		}
		return nil, err
	}
	for _, w := range cfg.Warnings {
		w.File = DisplayPath(shown, w.File)
		fmt.Fprintln(out, w.String())
	}
	return cfg, nil
}

// DisplayPath joins a spec-relative file to dir as the user gave it.
func DisplayPath(dir, file string) string {
	if file == "" || dir == "." {
		return file
	}
	return strings.TrimSuffix(dir, "/") + "/" + file
}

// UsageError is a setting the user must fix (an unreadable registry
// configuration); nothing was done.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// Plan loads the spec in dir and computes the plan against the previous
// render in dir's render directory. opts.CheckMirror asks the mirror what
// it lacks (diff and --dry-run); a mirror that cannot be asked is a
// warning: the catalog part of the plan still stands.
func Plan(ctx context.Context, dir string, s Settings, opts reconcile.Options) (*Planned, error) {
	cfg, err := Load(ctx, dir, s)
	if err != nil {
		return nil, err
	}
	insecure := append([]string(nil), s.InsecureRegistry...)
	if cfg.Mirror != nil {
		insecure = append(insecure, cfg.Mirror.Spec.InsecureRegistries...)
	}
	reg, err := registry.New(registry.Options{AuthFile: s.RegistryConfig, Insecure: insecure})
	if err != nil {
		return nil, &UsageError{err}
	}
	r := &reconcile.Reconciler{
		Observer:       &reconcile.Observer{Registry: reg, SpecDir: dir, Limits: catalogimage.DefaultLimits()},
		Cluster:        s.Cluster,
		ClusterSkipped: s.ClusterSkipped,
		Log:            s.log(),
	}
	if s.Commit {
		r.Committer = s.Committer
		if r.Committer == nil {
			r.Committer = gitsync.WorkTree{Dir: dir}
		}
	}
	opts.RenderDir = s.RenderDir
	opts.Cluster = s.ClusterOptions
	p, err := r.Plan(ctx, dir, cfg, opts)
	var bad *reconcile.PreviousRenderError
	if errors.As(err, &bad) {
		for _, problem := range bad.Problems {
			fmt.Fprintf(s.diagnostics(), "%s: %s\n", DisplayPath(s.display(dir), s.RenderDir), problem)
		}
		return nil, &UsageError{fmt.Errorf("render directory %s: fix or remove what is listed above (Ferry rewrites it on the next reconcile)", DisplayPath(s.display(dir), s.RenderDir))}
	}
	if err != nil {
		return nil, err
	}
	if p.Incomplete != nil {
		for _, f := range p.Incomplete.Failures {
			fmt.Fprintf(s.diagnostics(), "failed: %s\n", f)
		}
	}
	if c := p.Plan.Copy; c != nil && c.Unchecked != "" {
		fmt.Fprintf(s.diagnostics(), "warning: %s; images to copy are not counted as changes\n", c.Unchecked)
	}
	return &Planned{Planned: p, Reconciler: r, settings: s}, nil
}

// Apply carries out the plan in the safe order: registries, the cluster
// step, the render directory and the commit. reporter receives the copy
// engine's progress (nil: none). Blob locations learnt are kept in the
// cache directory for the next run, whatever the outcome.
func (p *Planned) Apply(ctx context.Context, reporter engine.Reporter) (*reconcile.Outcome, error) {
	s := p.settings
	opts := reconcile.Options{RenderDir: s.RenderDir, Cluster: s.ClusterOptions, Apply: reconcile.ApplyOptions{Copy: engine.DefaultOptions(nil)}}
	if opts.Cluster.PollInterval == 0 {
		opts.Cluster.PollInterval = reconcile.DefaultClusterOptions().PollInterval
	}
	if s.MaxPerRegistry > 0 {
		opts.Apply.Copy.Concurrency = s.MaxPerRegistry
	}
	opts.Apply.Copy.Log = s.log()
	hints := p.HintsFile()
	opts.Apply.Copy.BlobHints = loadHints(s.log(), hints)
	opts.Apply.Copy.Reporter = reporter
	out, err := p.Reconciler.Apply(ctx, p.Planned, opts)
	if out != nil {
		saveHints(s.log(), hints, out.Copy, out.CatalogCopy)
	}
	return out, err
}

// Reconcile is Plan then Apply: what one reconcile of dir does.
func Reconcile(ctx context.Context, dir string, s Settings, reporter engine.Reporter) (*Planned, *reconcile.Outcome, error) {
	p, err := Plan(ctx, dir, s, reconcile.Options{})
	if err != nil {
		return nil, nil, err
	}
	out, err := p.Apply(ctx, reporter)
	return p, out, err
}

// CopyPairs is how many images the plan's image set holds (the size of a
// progress bar); 0 without a Mirror.
func (p *Planned) CopyPairs() int {
	if p.Result.Mirror == nil {
		return 0
	}
	return len(p.Result.Mirror.CopyPairs())
}

// HintsFile is where blob locations in this Mirror's registry are kept,
// "" when there is no Mirror or no cache directory.
func (p *Planned) HintsFile() string {
	if p.settings.CacheDir == "" || p.Result.Mirror == nil {
		return ""
	}
	host, _, _ := strings.Cut(p.Result.Mirror.Mirror.Registry, "/")
	return filepath.Join(p.settings.CacheDir, "blobs", strings.NewReplacer(":", "_", "/", "_").Replace(host)+".json")
}

// loadHints reads the blob locations an earlier run saw. A missing or
// broken file is no hint: hints only save uploads.
func loadHints(log *slog.Logger, file string) engine.BlobLocations {
	if file == "" {
		return nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return nil
	}
	var h engine.BlobLocations
	if json.Unmarshal(b, &h) != nil {
		log.Warn("ignoring unreadable blob cache", "file", file)
		return nil
	}
	return h
}

// saveHints keeps what the runs learned for the next one.
func saveHints(log *slog.Logger, file string, reps ...*engine.Report) {
	if file == "" {
		return
	}
	h := engine.BlobLocations{}
	for _, r := range reps {
		if r == nil {
			continue
		}
		for d, repo := range r.Blobs {
			h[d] = repo
		}
	}
	if len(h) == 0 {
		return
	}
	b, err := json.Marshal(h)
	if err == nil {
		err = os.MkdirAll(filepath.Dir(file), 0o755)
	}
	if err == nil {
		tmp := file + ".tmp"
		if err = os.WriteFile(tmp, b, 0o644); err == nil {
			err = os.Rename(tmp, file)
		}
	}
	if err != nil {
		log.Warn("could not keep blob locations for the next run", "file", file, "err", err)
	}
}
