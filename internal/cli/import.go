package cli

import (
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/ferry-gitops/ferry/internal/airgap"
	engine "github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/internal/registry"
	"github.com/ferry-gitops/ferry/spec"
)

func newImportCmd() *cobra.Command {
	var f reconcileFlags
	cmd := &cobra.Command{
		Use:   "import ARCHIVE [DIR]",
		Short: "Disk to mirror: push an archive written by reconcile --to-archive into the mirror",
		Long: `Checks the whole archive against its record, then pushes every image to its
recorded destination in the mirror (an image already there costs one HEAD;
blobs an incremental archive left out are mounted from where the earlier
import put them). It never contacts a source registry.

With DIR, the render the archive carries (CatalogSources, mirror sets,
mapping.txt, lock) is written into DIR's render directory once every image
is in the mirror, and committed when DIR is a git work tree.

Exit 0 done, 1 failed (every failed image listed; run it again to resume),
2 invalid input (a truncated or corrupt archive: nothing was pushed).`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkProgress(f.Progress); err != nil {
				return err
			}
			dir := ""
			if len(args) == 2 {
				d, err := dirArg(args[1:])
				if err != nil {
					return err
				}
				dir = d
			}
			reg, err := registry.New(registry.Options{AuthFile: f.RegistryConfig, Insecure: f.InsecureRegistry})
			if err != nil {
				return &usageError{err}
			}
			opts := airgap.ImportOptions{Remotes: reg, Concurrency: f.MaxPerRegistry, Log: slog.Default()}
			rec, err := airgap.ReadRecord(args[0])
			if err != nil {
				return &usageError{err}
			}
			bar := newProgress(cmd.ErrOrStderr(), len(rec.Images), f.Progress)
			if bar != nil {
				opts.Reporter = bar
			}
			rep, files, err := airgap.Import(cmd.Context(), args[0], opts)
			bar.stop()
			writeCopyReport(cmd.OutOrStdout(), rep)
			if err != nil {
				return importFailure(cmd, err)
			}
			if dir == "" {
				_, err := fmt.Fprintf(cmd.OutOrStdout(), "Render: not written (no DIR); the archive carries %d file(s).\n", len(files))
				return err
			}
			unlock, err := lockDir(cmd.Context(), cmd.ErrOrStderr(), dir, "", "ferry import")
			if err != nil {
				return err
			}
			defer unlock()
			return f.writeRender(cmd.OutOrStdout(), dir, files, fmt.Sprintf("ferry: import %s\n", filepath.Base(args[0])))
		},
	}
	cmd.Flags().StringVarP(&f.RegistryConfig, "registry-config", "a", "", "mirror credentials: a docker config.json or podman auth.json (default: $REGISTRY_AUTH_FILE, then the docker and podman defaults)")
	cmd.Flags().StringSliceVar(&f.InsecureRegistry, "insecure-registry", nil, "registry host[:port] reached over plain HTTP or without TLS verification (repeatable)")
	cmd.Flags().StringVar(&f.RenderDir, "render-dir", spec.DefaultRenderDir, "directory (relative to DIR) to write the carried render into")
	cmd.Flags().BoolVar(&f.Commit, "commit", true, "commit the render directory when DIR is in a git work tree")
	cmd.Flags().IntVar(&f.MaxPerRegistry, "max-per-registry", engine.DefaultOptions(nil).Concurrency, "operations in flight against the mirror")
	cmd.Flags().StringVar(&f.Progress, "progress", "auto", "progress: auto (bars on a terminal, log lines otherwise), always or never")
	return cmd
}

// importFailure lists what failed; a broken archive is bad input (exit 2).
func importFailure(cmd *cobra.Command, err error) error {
	var archive *airgap.ArchiveError
	if errors.As(err, &archive) {
		for _, p := range archive.Problems {
			fmt.Fprintf(cmd.ErrOrStderr(), "%s: %s\n", archive.Path, p)
		}
		return &usageError{err}
	}
	var missing *airgap.MissingError
	if errors.As(err, &missing) {
		fmt.Fprintf(cmd.ErrOrStderr(), "the mirror lacks what this incremental archive left out: import the earlier archive(s) %v first\n", missing.Since)
	}
	var incomplete *engine.IncompleteError
	if errors.As(err, &incomplete) {
		for _, e := range incomplete.Failed {
			fmt.Fprintf(cmd.ErrOrStderr(), "failed: %v\n", e)
		}
	}
	return err
}
