package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/pipeline"
	"github.com/ferry-gitops/ferry/internal/renderdir"
	"github.com/ferry-gitops/ferry/reconcile"
	"github.com/ferry-gitops/ferry/spec"
)

// planFlags are the flags of every command that computes a plan.
type planFlags struct {
	clusterFlags
	repoFlags
	RenderDir        string
	RegistryConfig   string
	InsecureRegistry []string
}

func (f *planFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.RenderDir, "render-dir", spec.DefaultRenderDir, "directory (relative to DIR) holding rendered output, never read as spec")
	cmd.Flags().StringVarP(&f.RegistryConfig, "registry-config", "a", "", "registry credentials: a docker config.json or podman auth.json (default: $REGISTRY_AUTH_FILE, then the docker and podman defaults)")
	cmd.Flags().StringSliceVar(&f.InsecureRegistry, "insecure-registry", nil, "registry host[:port] reached over plain HTTP or without TLS verification (repeatable); adds to the Mirror's insecureRegistries")
	f.clusterFlags.add(cmd)
	f.repoFlags.add(cmd)
}

// planned is a computed plan with the Reconciler that computed it.
type planned = pipeline.Planned

// finish is a command's result once it did what it could: err if it
// failed itself, else the parts of the plan that failed, if any.
func finish(p *planned, err error) error {
	if err != nil || p.Incomplete == nil {
		return err
	}
	return p.Incomplete
}

// settings are the pipeline settings these flags describe: the registry
// credentials, and the cluster the flags (or the environment) name.
func (f *planFlags) settings(errOut io.Writer) (pipeline.Settings, error) {
	kube, skipped, err := f.connect()
	if err != nil {
		return pipeline.Settings{}, err
	}
	return pipeline.Settings{
		RenderDir:        f.RenderDir,
		RegistryConfig:   f.RegistryConfig,
		InsecureRegistry: f.InsecureRegistry,
		Cluster:          kube,
		ClusterSkipped:   skipped,
		Commit:           true,
		Log:              slog.Default(),
		Diagnostics:      errOut,
	}, nil
}

// computePlan loads the spec of src and computes the plan against the
// previous render in its render directory, as every command that plans
// does (pipeline.Plan). opts.Cluster carries the cluster step's flags.
func (f *planFlags) computePlan(ctx context.Context, src *specSource, errOut io.Writer, opts reconcile.Options) (*planned, error) {
	s, err := f.settings(errOut)
	if err != nil {
		return nil, err
	}
	s.ClusterOptions = opts.Cluster
	s.DisplayDir = src.Display
	return f.plan(ctx, src.Dir, s, opts)
}

func (f *planFlags) plan(ctx context.Context, dir string, s pipeline.Settings, opts reconcile.Options) (*planned, error) {
	return pipeline.Plan(ctx, dir, s, opts)
}

func writePlan(w io.Writer, plan *reconcile.Plan, format outputFormat) error {
	switch format {
	case outputJSON, outputYAML:
		b, err := json.MarshalIndent(plan, "", "  ")
		if err != nil {
			return err
		}
		if format == outputYAML {
			if b, err = yaml.JSONToYAML(b); err != nil {
				return err
			}
		}
		_, err = fmt.Fprintf(w, "%s\n", strings.TrimRight(string(b), "\n"))
		return err
	}
	return plan.WriteText(w)
}

func newDiffCmd() *cobra.Command {
	var f planFlags
	var af applyFlags
	var cacheDir string
	output := outputText
	cmd := &cobra.Command{
		Use:   "diff [DIR | --repo URL]",
		Short: "Show what a reconcile would change; exit 0 no changes, 1 changes pending, >1 error",
		Long: `Computes the plan against the previous render (DIR's render directory) and prints
it in catalog terms: packages, channels and heads, bundles added and removed,
files that would change; with a cluster (--kubeconfig, $KUBECONFIG, in-cluster),
each object as create / configure / unchanged / conflict / breaking /
prunable, computed by server-side dry-run against the live objects. Exit codes follow kubectl diff: 0 nothing to do,
1 changes pending, 2 invalid input, 3 failure (also when a catalog or an
image could not be planned: the rest of the plan is printed).

With --repo URL the spec and the previous render are the tip of --branch,
fetched into the clone in --cache-dir; nothing is ever pushed.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.repoFlags.check(cmd, args); err != nil {
				return err
			}
			src, err := f.openSource(cmd.Context(), args, cacheDir, f.RenderDir, true, true)
			if err != nil {
				return diffFailure(err)
			}
			defer src.Close()
			p, err := f.computePlan(cmd.Context(), src, cmd.ErrOrStderr(), reconcile.Options{CheckMirror: true, Cluster: af.options(0)})
			if err != nil {
				return diffFailure(err)
			}
			if err := writePlan(cmd.OutOrStdout(), p.Plan, output); err != nil {
				return diffFailure(err)
			}
			if p.Incomplete != nil {
				return diffFailure(p.Incomplete)
			}
			if p.Plan.HasChanges() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f.add(cmd)
	af.add(cmd)
	cmd.Flags().VarP(&output, "output", "o", "output format: text, json or yaml")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", defaultCacheDir(), "with --repo: where the repository's clone is kept between runs")
	return cmd
}

// diffFailure keeps diff's exit codes above 1 for errors: 2 for invalid
// input, 3 for anything else.
func diffFailure(err error) error {
	var invalid *spec.InvalidError
	var usage *usageError
	var pipelineUsage *pipeline.UsageError
	var unsafe *renderdir.UnsafePathError
	if errors.As(err, &invalid) || errors.As(err, &usage) || errors.As(err, &pipelineUsage) || errors.As(err, &unsafe) {
		return err
	}
	return &failure{err: err, code: 3}
}

func newRenderCmd() *cobra.Command {
	var f planFlags
	var out, cacheDir string
	cmd := &cobra.Command{
		Use:   "render [DIR | --repo URL] -o OUTDIR",
		Short: "Write every output that can be computed (filtered FBC, CatalogSources) to OUTDIR",
		Long: `Reads the spec in DIR and the source registries, renders each Catalog
(filtered FBC, one directory per package, and a CatalogSource pinned to the
digest the built catalog image will have) and writes the files to OUTDIR.
It writes nowhere else: no registry, no cluster, no git.

OUTDIR must be outside DIR, DIR's render directory (or below it) or a
hidden directory: anywhere else in DIR the next validate would read the
rendered manifests as spec.

With --repo URL the spec is the tip of --branch, fetched into the clone in
--cache-dir; nothing is ever written to the repository.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.repoFlags.check(cmd, args); err != nil {
				return err
			}
			if out == "" {
				return &usageError{errors.New("-o OUTDIR is required")}
			}
			src, err := f.openSource(cmd.Context(), args, cacheDir, f.RenderDir, true, true)
			if err != nil {
				return err
			}
			defer src.Close()
			if err := checkOutputDir(src.Dir, out, f.RenderDir); err != nil {
				return err
			}
			p, err := f.computePlan(cmd.Context(), src, cmd.ErrOrStderr(), reconcile.Options{NoClusterPlan: true})
			if err != nil {
				return err
			}
			if err := renderdir.Write(out, p.Result.Files); err != nil {
				return err
			}
			if err := p.Plan.WriteText(cmd.OutOrStdout()); err != nil {
				return err
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Wrote %d file(s) to %s.\n", len(p.Result.Files), out)
			return finish(p, err)
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&out, "output-dir", "o", "", "directory to write the rendered files to")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", defaultCacheDir(), "with --repo: where the repository's clone is kept between runs")
	return cmd
}

// checkOutputDir refuses a render OUTDIR inside the spec directory, where
// the next validate would read the rendered manifests as spec (and where
// replacing catalogs/ could delete the administrator's own catalogs/
// folder), unless it is the render directory itself (or below it) or a
// hidden directory, neither of which is ever read as spec.
func checkOutputDir(dir, out, renderDir string) error {
	absDir, err := realPath(dir)
	if err != nil {
		return &usageError{fmt.Errorf("spec directory: %w", err)}
	}
	absOut, err := realPath(out)
	if err != nil {
		return &usageError{fmt.Errorf("-o %s: %w", out, err)}
	}
	rel, err := filepath.Rel(absDir, absOut)
	if err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return nil // outside the spec directory
	}
	render := filepath.Clean(filepath.FromSlash(renderDir))
	if rel == render || strings.HasPrefix(rel, render+string(filepath.Separator)) {
		return nil
	}
	for _, part := range strings.Split(rel, string(filepath.Separator)) {
		if strings.HasPrefix(part, ".") && part != "." {
			return nil // hidden: never read as spec
		}
	}
	return &usageError{fmt.Errorf("-o %s is inside the spec directory %s, so the next validate would read the rendered files as spec: "+
		"write to the render directory (-o %s), a hidden directory (-o %s), or outside %s",
		out, dir, filepath.Join(dir, render), filepath.Join(dir, ".render"), dir)}
}

// realPath is p made absolute with symbolic links resolved, as far as p
// exists (an OUTDIR is created by the render).
func realPath(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	var rest []string
	for cur := abs; ; cur = filepath.Dir(cur) {
		if real, err := filepath.EvalSymlinks(cur); err == nil {
			return filepath.Join(append([]string{real}, rest...)...), nil
		}
		if filepath.Dir(cur) == cur {
			return abs, nil
		}
		rest = append([]string{filepath.Base(cur)}, rest...)
	}
}
