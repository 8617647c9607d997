package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
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
	RenderDir        string
	RegistryConfig   string
	InsecureRegistry []string
}

func (f *planFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.RenderDir, "render-dir", spec.DefaultRenderDir, "directory (relative to DIR) holding rendered output, never read as spec")
	cmd.Flags().StringVarP(&f.RegistryConfig, "registry-config", "a", "", "registry credentials: a docker config.json or podman auth.json (default: $REGISTRY_AUTH_FILE, then the docker and podman defaults)")
	cmd.Flags().StringSliceVar(&f.InsecureRegistry, "insecure-registry", nil, "registry host[:port] reached over plain HTTP or without TLS verification (repeatable); adds to the Mirror's insecureRegistries")
}

// planned is a computed plan with the reconciler that computed it.
type planned = pipeline.Planned

// settings are the pipeline settings these flags describe.
func (f *planFlags) settings(errOut io.Writer) pipeline.Settings {
	cluster, skipped := clusterFor()
	return pipeline.Settings{
		RenderDir:        f.RenderDir,
		RegistryConfig:   f.RegistryConfig,
		InsecureRegistry: f.InsecureRegistry,
		Cluster:          cluster,
		ClusterSkipped:   skipped,
		Commit:           true,
		Log:              slog.Default(),
		Diagnostics:      errOut,
	}
}

// computePlan loads the spec in dir and computes the plan against the
// previous render in dir's render directory, as every command that plans
// does (pipeline.Plan).
func (f *planFlags) computePlan(ctx context.Context, dir string, errOut io.Writer, opts reconcile.Options) (*planned, error) {
	return f.plan(ctx, dir, f.settings(errOut), opts)
}

func (f *planFlags) plan(ctx context.Context, dir string, s pipeline.Settings, opts reconcile.Options) (*planned, error) {
	p, err := pipeline.Plan(ctx, dir, s, opts)
	var usage *pipeline.UsageError
	if errors.As(err, &usage) {
		return nil, &usageError{usage.Err}
	}
	return p, err
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
	output := outputText
	cmd := &cobra.Command{
		Use:   "diff [DIR]",
		Short: "Show what a reconcile would change; exit 0 no changes, 1 changes pending, >1 error",
		Long: `Computes the plan against the previous render (DIR's render directory) and prints
it in catalog terms: packages, channels and heads, bundles added and removed,
files that would change. Exit codes follow kubectl diff: 0 nothing to do,
1 changes pending, 2 invalid input, 3 failure.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := dirArg(args)
			if err != nil {
				return err
			}
			p, err := f.computePlan(cmd.Context(), dir, cmd.ErrOrStderr(), reconcile.Options{CheckMirror: true})
			if err != nil {
				return diffFailure(err)
			}
			if err := writePlan(cmd.OutOrStdout(), p.Plan, output); err != nil {
				return diffFailure(err)
			}
			if p.Plan.HasChanges() {
				return &exitError{code: 1}
			}
			return nil
		},
	}
	f.add(cmd)
	cmd.Flags().VarP(&output, "output", "o", "output format: text, json or yaml")
	return cmd
}

// diffFailure keeps diff's exit codes above 1 for errors: 2 for invalid
// input, 3 for anything else.
func diffFailure(err error) error {
	var invalid *spec.InvalidError
	var usage *usageError
	if errors.As(err, &invalid) || errors.As(err, &usage) {
		return err
	}
	return &failure{err: err, code: 3}
}

func newRenderCmd() *cobra.Command {
	var f planFlags
	var out string
	cmd := &cobra.Command{
		Use:   "render [DIR] -o OUTDIR",
		Short: "Write every output that can be computed (filtered FBC, CatalogSources) to OUTDIR",
		Long: `Reads the spec in DIR and the source registries, renders each Catalog
(filtered FBC, one directory per package, and a CatalogSource pinned to the
digest the built catalog image will have) and writes the files to OUTDIR.
It writes nowhere else: no registry, no cluster, no git.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := dirArg(args)
			if err != nil {
				return err
			}
			if out == "" {
				return &usageError{errors.New("-o OUTDIR is required")}
			}
			p, err := f.computePlan(cmd.Context(), dir, cmd.ErrOrStderr(), reconcile.Options{})
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
			return err
		},
	}
	f.add(cmd)
	cmd.Flags().StringVarP(&out, "output-dir", "o", "", "directory to write the rendered files to")
	return cmd
}
