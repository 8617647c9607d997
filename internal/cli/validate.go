package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/catalogimage"
	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/filter"
	"github.com/ferry-gitops/ferry/internal/pipeline"
	"github.com/ferry-gitops/ferry/internal/safefs"
	"github.com/ferry-gitops/ferry/spec"
)

func newValidateCmd() *cobra.Command {
	a := validateAction{Output: outputText}
	var rf repoFlags
	var cacheDir string
	cmd := &cobra.Command{
		Use:   "validate [DIR | --repo URL]",
		Short: "Check a spec directory; exit 0 when valid, 2 when not",
		Long: `Reads every .yaml/.yml file under DIR (default: the current directory;
hidden directories and the render directory are skipped), decodes each
Catalog, Mirror, Samples and oc-mirror ImageSetConfiguration strictly, applies
defaults and validates the whole. Every problem is listed, one per line, as
file:line: Kind/name: field: message.

The directory is untrusted input: only regular files are read (a FIFO or
device is reported, never opened), a spec file may hold at most 1 MiB and
the spec files together 4 MiB, YAML aliases may add at most 100000 values
to a document, symbolic links are followed only while they stay inside DIR,
and credentials written into a reference are refused and never echoed.

With -o yaml or -o json it prints the effective objects, defaults applied:
what a reconcile would act on.

With --repo URL the spec is the tip of --branch (--path inside it), fetched
into the clone in --cache-dir; nothing is ever written to the repository.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := rf.check(cmd, args); err != nil {
				return err
			}
			src, err := rf.openSource(cmd.Context(), args, cacheDir, a.RenderDir, true, true)
			if err != nil {
				return err
			}
			defer src.Close()
			a.Dir, a.Display, a.Name, a.Out, a.Err = src.Dir, src.Display, src.Name, cmd.OutOrStdout(), cmd.ErrOrStderr()
			return a.Run(cmd.Context())
		},
	}
	cmd.Flags().VarP(&a.Output, "output", "o", "output format: text, json or yaml")
	cmd.Flags().StringVar(&a.RenderDir, "render-dir", spec.DefaultRenderDir, "directory (relative to DIR) holding rendered output, never read as spec")
	cmd.Flags().StringVar(&cacheDir, "cache-dir", defaultCacheDir(), "with --repo: where the repository's clone is kept between runs")
	rf.add(cmd)
	return cmd
}

// validateAction loads and validates one spec directory and reports it.
type validateAction struct {
	Dir string
	// Display names Dir in problem lines (default Dir); Name names the
	// source in the summary (default Dir).
	Display, Name string
	RenderDir     string
	Output        outputFormat
	Out, Err      io.Writer
}

// validateReport is the -o json|yaml shape of a validation.
type validateReport struct {
	Valid    bool            `json:"valid"`
	Files    []string        `json:"files"`
	Catalogs []*spec.Catalog `json:"catalogs,omitempty"`
	Mirror   *spec.Mirror    `json:"mirror,omitempty"`
	Samples  *spec.Samples   `json:"samples,omitempty"`
	Problems spec.Problems   `json:"problems,omitempty"`
}

func (a *validateAction) Run(ctx context.Context) error {
	if a.Display == "" {
		a.Display = a.Dir
	}
	if a.Name == "" {
		a.Name = a.Dir
	}
	cfg, err := loadSpec(ctx, a.Dir, a.RenderDir)
	var invalid *spec.InvalidError
	if err != nil && !errors.As(err, &invalid) {
		return err
	}
	if err == nil {
		if problems := checkLocalCatalogs(ctx, a.Dir, cfg); len(problems) > 0 {
			invalid = &spec.InvalidError{Problems: append(problems, cfg.Warnings...)}
			err, cfg = invalid, nil
		}
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	report := validateReport{Valid: err == nil}
	if cfg != nil {
		report.Files, report.Catalogs, report.Mirror, report.Samples, report.Problems = cfg.Files, cfg.Catalogs, cfg.Mirror, cfg.Samples, cfg.Warnings
	} else {
		report.Problems = invalid.Problems
	}
	for i := range report.Problems {
		report.Problems[i].File = displayPath(a.Display, report.Problems[i].File)
	}
	switch a.Output {
	case outputJSON, outputYAML:
		b, merr := json.MarshalIndent(report, "", "  ")
		if merr != nil {
			return merr
		}
		if a.Output == outputYAML {
			if b, merr = yaml.JSONToYAML(b); merr != nil {
				return merr
			}
		}
		fmt.Fprintf(a.Out, "%s\n", strings.TrimRight(string(b), "\n"))
	default:
		for _, p := range report.Problems {
			fmt.Fprintln(a.Err, p.String())
		}
		if report.Valid {
			writeSummary(a.Out, a.Name, a.Display, cfg)
		} else {
			fmt.Fprintf(a.Err, "%s: invalid: %d error(s), %d warning(s)\n", a.Name, len(invalid.Problems.Errors()), len(invalid.Problems.Warnings()))
		}
	}
	return err
}

// loadSpec loads the spec directory through a view that reads regular files
// only, within the spec size limit, and follows a symbolic link only while
// it stays inside dir: the config repository is untrusted input.
func loadSpec(ctx context.Context, dir, renderDir string) (*spec.Config, error) {
	return pipeline.LoadSpec(ctx, dir, renderDir)
}

// checkLocalCatalogs applies each Catalog's selection to its local FBC
// source, which needs no registry: a package, channel or version range the
// catalog does not have is reported here, at the line that names it, rather
// than by reconcile after every registry was read. Catalogs read from
// images are checked by reconcile, and extra bundles (spec.bundles), which
// come from registries, are not added here.
func checkLocalCatalogs(ctx context.Context, dir string, cfg *spec.Config) spec.Problems {
	var problems spec.Problems
	for _, c := range cfg.Catalogs {
		if ctx.Err() != nil || !spec.IsLocalSource(c.Spec.Source) {
			continue
		}
		root, rel := c.Spec.Source, "."
		if r, ok := c.SourceDir(); ok {
			root, rel = dir, r
		}
		kind, name := spec.KindCatalog, c.Metadata.Name
		if c.Origin.FromOCMirror {
			kind, name = spec.KindImageSetConfiguration, ""
		}
		at := func(field, format string, args ...any) {
			field, line := c.Origin.Locate(field)
			problems = append(problems, spec.Problem{Severity: spec.SeverityError, File: c.Origin.File, Line: line,
				Kind: kind, Name: name, Field: field, Message: spec.Redact(fmt.Sprintf(format, args...))})
		}
		source, err := loadLocalCatalog(ctx, root, rel)
		if err != nil {
			at("spec.source", "local catalog %q cannot be read: %v", c.Spec.Source, err)
			continue
		}
		_, _, err = filter.Filter(source, c.Spec)
		var ferr *filter.Error
		switch {
		case errors.As(err, &ferr):
			for _, p := range ferr.Problems {
				at(selectionField(c, p.Package, p.Channel), "%s", p.String())
			}
		case err != nil:
			at("spec.packages", "%v", err)
		}
	}
	return problems
}

// loadLocalCatalog reads a local FBC directory through the same view as
// reconcile: links only inside root, regular files only.
func loadLocalCatalog(ctx context.Context, root, rel string) (*fbc.DeclarativeConfig, error) {
	view, err := safefs.Open(root, safefs.Options{FollowSymlinks: true, MaxFileSize: catalogimage.DefaultLimits().MaxFileBytes})
	if err != nil {
		return nil, err
	}
	defer view.Close()
	sub, err := view.Sub(rel)
	if err != nil {
		return nil, err
	}
	return fbc.LoadFS(ctx, sub)
}

// selectionField is the spec field a filter problem is about: the channel
// or package entry that names it, or the package list.
func selectionField(c *spec.Catalog, pkg, channel string) string {
	for i, p := range c.Spec.Packages {
		if p.Name != pkg {
			continue
		}
		f := fmt.Sprintf("spec.packages[%d]", i)
		for j, ch := range p.Channels {
			if channel != "" && ch.Name == channel {
				return fmt.Sprintf("%s.channels[%d]", f, j)
			}
		}
		return f
	}
	return "spec.packages"
}

// displayPath shows problem files relative to where the user ran ferry, so
// they can be opened (and CI annotations land) without editing.
func displayPath(dir, file string) string {
	if file == "" || dir == "." {
		return file
	}
	return strings.TrimSuffix(dir, "/") + "/" + file
}

func writeSummary(w io.Writer, name, dir string, cfg *spec.Config) {
	mirrors, samples := 0, 0
	if cfg.Mirror != nil {
		mirrors = 1
	}
	if cfg.Samples != nil {
		samples = 1
	}
	fmt.Fprintf(w, "%s: valid: %d file(s), %d Catalog(s), %d Mirror, %d Samples, %d warning(s)\n",
		name, len(cfg.Files), len(cfg.Catalogs), mirrors, samples, len(cfg.Warnings))
	for _, c := range cfg.Catalogs {
		s := c.Spec
		fmt.Fprintf(w, "\nCatalog/%s  (%s:%d)\n", c.Metadata.Name, displayPath(dir, c.Origin.File), c.Origin.Line)
		fmt.Fprintf(w, "  source         %s (platform %s)\n", s.Source, s.Platform)
		fmt.Fprintf(w, "  target         %s\n", orNone(s.Target))
		fmt.Fprintf(w, "  base           %s\n", orNone(s.Base))
		fmt.Fprintf(w, "  catalogSource  %s/%s %q\n", s.CatalogSource.Namespace, s.CatalogSource.Name, s.CatalogSource.DisplayName)
		if len(s.Packages) == 0 {
			fmt.Fprintf(w, "  packages       all (whole catalog)\n")
		}
		for _, p := range s.Packages {
			fmt.Fprintf(w, "  package        %s: %s\n", p.Name, describePackage(p))
		}
		if s.IncludeDependencies {
			fmt.Fprintf(w, "  dependencies   included\n")
		}
		for _, b := range s.Bundles {
			fmt.Fprintf(w, "  add bundle     %s\n", b)
		}
	}
	if m := cfg.Mirror; m != nil {
		s := m.Spec
		fmt.Fprintf(w, "\nMirror/%s  (%s:%d)\n", m.Metadata.Name, displayPath(dir, m.Origin.File), m.Origin.Line)
		fmt.Fprintf(w, "  registry       %s\n", orNone(s.Registry))
		if s.MaxPathComponents > 0 {
			fmt.Fprintf(w, "  path depth     at most %d components\n", s.MaxPathComponents)
		}
		fmt.Fprintf(w, "  platforms      %s\n", listOr(s.Platforms, "all"))
		fmt.Fprintf(w, "  objects        %s\n", strings.Join(s.Objects, ", "))
		if s.MirrorSourcePolicy != "" {
			fmt.Fprintf(w, "  source policy  %s\n", s.MirrorSourcePolicy)
		}
		fmt.Fprintf(w, "  additional     %d image(s)\n", len(s.AdditionalImages))
		fmt.Fprintf(w, "  blocked        %s\n", listOr(s.BlockedImages, "none"))
	}
	if smp := cfg.Samples; smp != nil {
		s := smp.Spec
		fmt.Fprintf(w, "\nSamples/%s  (%s:%d)\n", smp.Metadata.Name, displayPath(dir, smp.Origin.File), smp.Origin.Line)
		fmt.Fprintf(w, "  state          %s\n", s.ManagementState)
		fmt.Fprintf(w, "  registry       %s\n", orNone(s.SamplesRegistry))
		fmt.Fprintf(w, "  architectures  %s\n", listOr(s.Architectures, "operator default"))
		if s.MirrorImages {
			fmt.Fprintf(w, "  mirror images  from %s; streams that cannot be copied are skipped\n", s.ImagesFrom)
		}
		fmt.Fprintf(w, "  skipped        %d imagestream(s), %d template(s)\n", len(s.SkippedImagestreams), len(s.SkippedTemplates))
	}
}

func describePackage(p spec.Package) string {
	var parts []string
	if p.MinVersion != "" || p.MaxVersion != "" {
		parts = append(parts, "versions "+versionRange(p.MinVersion, p.MaxVersion))
	}
	for _, c := range p.Channels {
		d := "channel " + c.Name
		if c.MinVersion != "" || c.MaxVersion != "" {
			d += " " + versionRange(c.MinVersion, c.MaxVersion)
		} else if !p.Full && p.MinVersion == "" && p.MaxVersion == "" {
			d += " (head)"
		}
		parts = append(parts, d)
	}
	if p.Full {
		parts = append(parts, "every bundle")
	}
	if len(parts) == 0 {
		parts = append(parts, "head of the default channel")
	}
	if p.DefaultChannel != "" {
		parts = append(parts, "default channel "+p.DefaultChannel)
	}
	return strings.Join(parts, "; ")
}

func versionRange(lo, hi string) string {
	switch {
	case lo != "" && hi != "":
		return ">=" + lo + " <=" + hi
	case lo != "":
		return ">=" + lo
	}
	return "<=" + hi
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func listOr(l []string, empty string) string {
	if len(l) == 0 {
		return empty
	}
	return strings.Join(l, ", ")
}
