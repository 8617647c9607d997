package cli

import (
	"errors"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/ferry-gitops/ferry/internal/cluster"
	"github.com/ferry-gitops/ferry/reconcile"
)

// clusterFlags are kubectl's cluster access flags, on every command that
// talks to a cluster.
type clusterFlags struct {
	Kubeconfig string
	Context    string
}

func (f *clusterFlags) add(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.Kubeconfig, "kubeconfig", "", "path to the kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then the in-cluster service account)")
	cmd.Flags().StringVar(&f.Context, "context", "", "the kubeconfig context to use")
}

// connect returns the cluster the flags name, or nil and why the cluster
// step is skipped when nothing names one. A kubeconfig that is named but
// broken is an error to fix, not a reason to skip.
func (f *clusterFlags) connect() (reconcile.Cluster, string, error) {
	c, err := cluster.New(cluster.Options{Kubeconfig: f.Kubeconfig, Context: f.Context, Log: slog.Default()})
	if errors.Is(err, cluster.ErrNoConfig) {
		return nil, "no kubeconfig and not in a cluster", nil
	}
	if err != nil {
		return nil, "", &usageError{err}
	}
	slog.Debug("cluster", "source", c.Source(), "host", c.Host())
	return c, "", nil
}

// applyFlags shape what the cluster step may do, as kubectl names them.
type applyFlags struct {
	ForceConflicts bool
	AllowBreaking  bool
	Prune          bool
}

func (f *applyFlags) add(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.ForceConflicts, "force-conflicts", false, "take over fields another field manager owns (a hand edit of spec.image, say), as kubectl apply --server-side --force-conflicts does")
	cmd.Flags().BoolVar(&f.AllowBreaking, "allow-breaking", false, "apply changes that strand a Subscription or ClusterExtension (package, channel or upgrade path gone), and prune CatalogSources in use")
	cmd.Flags().BoolVar(&f.Prune, "prune", false, "delete objects Ferry owns (its labels, this instance) that are no longer rendered")
}

func (f *applyFlags) options(wait time.Duration) reconcile.ClusterOptions {
	o := reconcile.DefaultClusterOptions()
	o.Wait, o.ForceConflicts, o.AllowBreaking, o.Prune = wait, f.ForceConflicts, f.AllowBreaking, f.Prune
	return o
}
