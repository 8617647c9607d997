package cli

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/spf13/cobra"

	"github.com/ferry-gitops/ferry/internal/bootstrap"
)

func newInitCmd() *cobra.Command {
	var cf clusterFlags
	var fromCluster bool
	var out, registry string
	cmd := &cobra.Command{
		Use:   "init --from-cluster -o DIR",
		Short: "Write a config repo that keeps exactly what the cluster runs",
		Long: `Reads the cluster's CatalogSources and ClusterCatalogs, the Subscriptions and
ClusterExtensions that install from them and the installed versions, and
writes a config repository: one Catalog per catalog in use keeping each
installed package on its subscribed channel from the installed version up to
the channel head, and a Mirror stub (--registry, or a placeholder to replace).
The first reconcile then mirrors what the cluster needs to keep running and
upgrading, and nothing else. DIR must not exist or be empty; it is only
written, never read.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !fromCluster {
				return &usageError{errors.New("only --from-cluster is supported: ferry init --from-cluster -o DIR")}
			}
			if out == "" {
				return &usageError{errors.New("-o DIR is required")}
			}
			if entries, err := os.ReadDir(out); err == nil && len(entries) > 0 {
				return &usageError{fmt.Errorf("%s is not empty; init writes a new config repository", out)}
			}
			kube, skipped, err := cf.connect()
			if err != nil {
				return err
			}
			if kube == nil {
				return &usageError{fmt.Errorf("no cluster to read: %s", skipped)}
			}
			res, err := bootstrap.FromCluster(cmd.Context(), kube, bootstrap.Options{Registry: registry})
			if err != nil {
				return err
			}
			paths := make([]string, 0, len(res.Files))
			for p := range res.Files {
				paths = append(paths, p)
			}
			sort.Strings(paths)
			for _, p := range paths {
				full := filepath.Join(out, filepath.FromSlash(p))
				if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
					return err
				}
				if err := os.WriteFile(full, res.Files[p], 0o644); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "wrote %s\n", full)
			}
			for _, n := range res.Notes {
				fmt.Fprintf(cmd.ErrOrStderr(), "note: %s\n", n)
			}
			_, err = fmt.Fprintf(cmd.OutOrStdout(), "Next: ferry validate %s, then ferry reconcile --dry-run %s against the same cluster.\n", out, out)
			return err
		},
	}
	cf.add(cmd)
	cmd.Flags().BoolVar(&fromCluster, "from-cluster", false, "read what the cluster runs")
	cmd.Flags().StringVarP(&out, "output-dir", "o", "", "directory to write the config repository to")
	cmd.Flags().StringVar(&registry, "registry", "", "the mirror registry[/namespace] for the Mirror (default: a placeholder to replace)")
	return cmd
}
