package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/internal/daemon"
	"github.com/ferry-gitops/ferry/internal/daemon/kube"
	"github.com/ferry-gitops/ferry/internal/pipeline"
)

func newStatusCmd() *cobra.Command {
	var (
		file, cacheDir, kubeconfig, kubeContext, namespace, configMap string
		repo, branch                                                  string
	)
	output := outputText
	cmd := &cobra.Command{
		Use:   "status [DIR | --repo URL [--branch B]]",
		Short: "What the daemon last did: conditions, revisions, last error, catalogs",
		Long: `Prints the status ferry run publishes: the Ready, Reconciling and Stalled
conditions with their reasons, the last applied and attempted source
revisions, the last reconcile's time and result, the last error and the
catalogs served.

In a cluster it reads the daemon's ConfigMap (--namespace, --kubeconfig,
--configmap); otherwise the status file ferry run DIR keeps for DIR, or
ferry run --repo URL for the repository and branch (or --status-file).`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var st *daemon.Status
			var where string
			if namespace != "" || kubeconfig != "" {
				cfg, err := kube.Config(kubeconfig, kubeContext)
				if err != nil {
					return &usageError{fmt.Errorf("kubernetes client: %w", err)}
				}
				client, err := kubernetes.NewForConfig(cfg)
				if err != nil {
					return &usageError{err}
				}
				if namespace == "" {
					return &usageError{errors.New("--namespace is required")}
				}
				where = fmt.Sprintf("ConfigMap %s/%s", namespace, configMap)
				if st, err = kube.ReadStatus(cmd.Context(), client, namespace, configMap); err != nil {
					return fmt.Errorf("read %s: %w", where, err)
				}
			} else {
				if file == "" {
					dir, err := statusDir(args, repo, branch, cacheDir)
					if err != nil {
						return err
					}
					if file, err = daemon.DefaultStatusFile(cacheDir, dir); err != nil {
						return err
					}
				}
				where = file
				var err error
				if st, err = daemon.ReadStatusFile(file); errors.Is(err, fs.ErrNotExist) {
					return &usageError{fmt.Errorf("no status at %s: is ferry run running on this directory (with the same --cache-dir)?", file)}
				} else if err != nil {
					return err
				}
			}
			return writeStatus(cmd.OutOrStdout(), st, where, output, time.Now())
		},
	}
	fl := cmd.Flags()
	fl.VarP(&output, "output", "o", "output format: text, json or yaml")
	fl.StringVar(&file, "status-file", "", "status file to read (default: the one ferry run DIR keeps)")
	fl.StringVar(&cacheDir, "cache-dir", defaultCacheDir(), "ferry run's --cache-dir, where it keeps the status file")
	fl.StringVar(&kubeconfig, "kubeconfig", "", "read the status ConfigMap with this kubeconfig")
	fl.StringVar(&kubeContext, "context", "", "kubeconfig context")
	fl.StringVarP(&namespace, "namespace", "n", "", "read the status ConfigMap in this namespace")
	fl.StringVar(&configMap, "configmap", kube.DefaultStatusName, "the status ConfigMap's name")
	fl.StringVar(&repo, "repo", "", "the status ferry run --repo URL keeps (no network access)")
	fl.StringVar(&branch, "branch", "main", "with --repo: ferry run's --branch")
	return cmd
}

// statusDir is what ferry run named its status file after: DIR, or the
// root of the --repo clone in the cache (found without the network).
func statusDir(args []string, repo, branch, cacheDir string) (string, error) {
	if repo == "" {
		return dirArg(args)
	}
	if len(args) > 0 {
		return "", &usageError{fmt.Errorf("give either DIR (%s) or --repo, not both", args[0])}
	}
	u, err := gitsync.ParseRepoURL(repo)
	if err != nil {
		return "", &usageError{fmt.Errorf("--repo: %w", err)}
	}
	return filepath.Join(pipeline.RepoCacheDir(cacheDir), gitsync.CacheKey(u, branch)), nil
}

// writeStatus prints st as text (kubectl describe style), JSON or YAML.
func writeStatus(w io.Writer, st *daemon.Status, where string, format outputFormat, now time.Time) error {
	switch format {
	case outputJSON, outputYAML:
		b, err := json.MarshalIndent(st, "", "  ")
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
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "Status of:\t%s\n", where)
	if st.Source != "" {
		fmt.Fprintf(tw, "Source:\t%s\n", st.Source)
	}
	if st.Role != "" {
		fmt.Fprintf(tw, "Role:\t%s %s\n", st.Role, st.Identity)
	}
	fmt.Fprintln(tw, "\nCONDITION\tSTATUS\tREASON\tSINCE\tMESSAGE")
	for _, t := range []string{daemon.ConditionReady, daemon.ConditionReconciling, daemon.ConditionStalled} {
		c := st.Condition(t)
		if c == nil {
			fmt.Fprintf(tw, "%s\tUnknown\t\t\t\n", t)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t, c.Status, c.Reason, ago(now, c.LastTransitionTime.Time), firstLineOf(c.Message))
	}
	fmt.Fprintln(tw)
	fmt.Fprintf(tw, "Applied revision:\t%s\n", orNone(st.LastAppliedRevision))
	fmt.Fprintf(tw, "Attempted revision:\t%s\n", orNone(st.LastAttemptedRevision))
	if st.LastReconcileTime != nil {
		fmt.Fprintf(tw, "Last reconcile:\t%s (%s ago), took %s\n", st.LastReconcileTime.UTC().Format(time.RFC3339), ago(now, st.LastReconcileTime.Time), orNone(st.LastDuration))
	} else {
		fmt.Fprintf(tw, "Last reconcile:\t(none)\n")
	}
	if st.LastSuccessTime != nil {
		fmt.Fprintf(tw, "Last success:\t%s (%s ago)\n", st.LastSuccessTime.UTC().Format(time.RFC3339), ago(now, st.LastSuccessTime.Time))
	}
	fmt.Fprintf(tw, "Last result:\t%s\n", orNone(st.LastResult))
	fmt.Fprintf(tw, "Last error:\t%s\n", orNone(firstLineOf(st.LastError)))
	if st.Failures > 0 {
		next := ""
		if st.NextRetry != nil {
			next = ", next retry at " + st.NextRetry.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "Failures:\t%d since the last success%s\n", st.Failures, next)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rest := strings.SplitN(st.LastError, "\n", 2); len(rest) == 2 {
		for _, l := range strings.Split(rest[1], "\n") {
			fmt.Fprintf(w, "  %s\n", l)
		}
	}
	if len(st.Catalogs) > 0 {
		fmt.Fprintln(w, "\nCatalogs:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, c := range st.Catalogs {
			held := ""
			if c.Held != "" {
				held = "held back: " + c.Held
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", c.Name, c.Image, held)
		}
		return tw.Flush()
	}
	return nil
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// ago is a coarse age, kubectl style.
func ago(now, t time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return d.Truncate(time.Second).String()
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
