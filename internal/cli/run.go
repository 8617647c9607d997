package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/client-go/kubernetes"

	"github.com/ferry-gitops/ferry/internal/daemon"
	"github.com/ferry-gitops/ferry/internal/daemon/gitsource"
	"github.com/ferry-gitops/ferry/internal/daemon/kube"
	"github.com/ferry-gitops/ferry/internal/daemon/localdir"
	"github.com/ferry-gitops/ferry/internal/daemon/pipelinerunner"
	"github.com/ferry-gitops/ferry/internal/daemon/webhook"
	engine "github.com/ferry-gitops/ferry/internal/mirror"
)

// runFlags are `ferry run`'s flags.
type runFlags struct {
	reconcileFlags
	Interval        time.Duration
	Jitter          float64
	CatalogInterval time.Duration
	Watch           bool
	WatchDebounce   time.Duration
	WebhookAddr     string
	WebhookSecret   string
	HealthAddr      string
	MetricsAddr     string
	BackoffInitial  time.Duration
	BackoffMax      time.Duration
	ShutdownTimeout time.Duration
	Apply           bool
	LeaderElect     bool
	LeaseNamespace  string
	LeaseID         string
	Namespace       string
	StatusConfigMap string
	StatusFile      string
}

func newRunCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run [DIR | --repo URL]",
		Short: "The daemon: keep the desired state converged (poll, webhook, file watch), with probes and metrics",
		Long: `Reconciles DIR, then again whenever its desired state may have changed, and
keeps the registries and the cluster converged on it. Each reconcile is the
whole pipeline ferry reconcile runs (registries, the cluster step, render,
commit), never two at once.

When: a poll every --interval (one revision lookup when nothing changed), a
file watch on DIR (debounced), an authenticated webhook at /hook on
--webhook-addr (GitHub X-Hub-Signature-256, GitLab X-Gitlab-Token, or
Authorization: Bearer, with the secret in --webhook-secret-file), and a full
reconcile every --catalog-interval, because upstream catalog tags move and
mirrors drift without any change of the spec. Failures are retried with
exponential backoff up to --backoff-max. SIGTERM stops within
--shutdown-timeout; a copy stopped half-way resumes on the next start.

Probes /healthz and /readyz on --health-addr (ready after the first
successful reconcile, or while standing by), /metrics on --metrics-addr.
With --leader-elect, replicas share a Lease and only the leader reconciles.
Status (conditions Ready / Reconciling / Stalled, revisions, last error) goes
to the --status-configmap ConfigMap and Events in a cluster, to a status
file otherwise; ferry status prints it.

--apply=false is the sidecar mode next to a GitOps tool: Ferry mirrors,
builds catalogs, holds back what is not mirrored and commits the render
directory; the GitOps tool applies it.

With --repo URL the desired state is the tip of --branch (--path inside it),
cloned into --cache-dir: a poll is one ref lookup (git ls-remote), a new tip
is fetched and reconciled, and the render directory is committed (with the
spec commit as a Ferry-Source-Revision trailer) and pushed fast-forward only
to --push-branch or --branch. A push rejected because someone pushed
meanwhile is re-planned on the new tip, at most --push-retries times; a new
tip that only changes the render directory (Ferry's own commit) is not new
desired state.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := f.repoFlags.check(cmd, args); err != nil {
				return err
			}
			return f.run(cmd, args)
		},
	}
	f.planFlags.add(cmd)
	f.applyFlags.add(cmd)
	f.repoFlags.addSignature(cmd)
	fl := cmd.Flags()
	fl.DurationVar(&f.Wait, "wait", 5*time.Minute, "how long each reconcile waits for a changed CatalogSource or ClusterCatalog to serve; 0 does not wait")
	fl.BoolVar(&f.Commit, "commit", true, "commit the render directory when DIR is in a git work tree")
	fl.IntVar(&f.MaxPerRegistry, "max-per-registry", engine.DefaultOptions(nil).Concurrency, "operations in flight per registry while mirroring")
	fl.StringVar(&f.CacheDir, "cache-dir", defaultCacheDir(), "the --repo clone, blob locations, locks and (outside a cluster) the status file")
	fl.DurationVar(&f.Interval, "interval", time.Minute, "how often to look up the source's revision (0: never; rely on the watch and webhooks)")
	fl.Float64Var(&f.Jitter, "interval-jitter", 0.1, "stretch each poll interval by a random fraction below this")
	fl.DurationVar(&f.CatalogInterval, "catalog-interval", 30*time.Minute, "how often to reconcile in full with no source change: moved catalog tags, mirror drift (0: never)")
	fl.BoolVar(&f.Watch, "watch", true, "watch DIR for changes (fsnotify); a --repo is polled instead")
	fl.DurationVar(&f.WatchDebounce, "watch-debounce", time.Second, "quiet time after a change before reconciling")
	fl.StringVar(&f.WebhookAddr, "webhook-addr", ":9292", "webhook receiver address (/hook); on only with --webhook-secret-file")
	fl.StringVar(&f.WebhookSecret, "webhook-secret-file", "", "file holding the webhook secret (GitHub secret, GitLab token or bearer token)")
	fl.StringVar(&f.HealthAddr, "health-addr", ":9440", "health probe address (/healthz, /readyz); empty: off")
	fl.StringVar(&f.MetricsAddr, "metrics-addr", ":8080", "Prometheus metrics address (/metrics); empty: off")
	fl.DurationVar(&f.BackoffInitial, "backoff-initial", daemon.DefaultBackoff().Initial, "wait after the first failure; doubled after each further one")
	fl.DurationVar(&f.BackoffMax, "backoff-max", daemon.DefaultBackoff().Max, "longest wait between retries")
	fl.IntVar(&f.PushRetries, "push-retries", 3, "with --repo: times a push rejected because the branch moved is re-planned on the new tip and retried")
	fl.DurationVar(&f.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long SIGTERM waits for the reconcile in flight to stop")
	fl.BoolVar(&f.Apply, "apply", true, "run the cluster step; false is the sidecar mode (a GitOps tool applies the render directory)")
	fl.BoolVar(&f.LeaderElect, "leader-elect", false, "take a Lease so only one replica reconciles")
	fl.StringVar(&f.LeaseNamespace, "leader-election-namespace", "", "the Lease's namespace (default: this pod's)")
	fl.StringVar(&f.LeaseID, "leader-election-id", "ferry-leader", "the Lease's name")
	fl.StringVar(&f.Namespace, "namespace", "", "namespace of the status ConfigMap and its Events (default: this pod's)")
	fl.StringVar(&f.StatusConfigMap, "status-configmap", kube.DefaultStatusName, "ConfigMap the status is published to in a cluster; empty: none")
	fl.StringVar(&f.StatusFile, "status-file", "", "status file outside a cluster (default: one per DIR or --repo and --branch under --cache-dir)")
	return cmd
}

// run starts the daemon and stops it on SIGTERM.
func (f *runFlags) run(cmd *cobra.Command, args []string) error {
	ctx := cmd.Context()
	log := slog.Default()
	if err := f.check(cmd); err != nil {
		return err
	}
	settings, err := f.settings(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if !f.Apply {
		settings.Cluster = nil
		settings.ClusterSkipped = "--apply=false: the GitOps tool applies the render directory"
	}
	// The source: DIR, watched, or the --repo clone, polled. The clone is
	// opened (and its cache locked) for the daemon's lifetime; the first
	// cycle fetches it.
	var source daemon.Source
	// statusDir names the status file outside a cluster: the spec
	// directory, or the clone's root (what ferry status --repo finds).
	var statusDir, sourceName string
	if f.Repo != "" {
		if !f.Commit {
			return &usageError{errNoCommit}
		}
		src, err := f.openSource(ctx, nil, f.CacheDir, f.RenderDir, false, false)
		if err != nil {
			return err
		}
		defer src.Close()
		source, statusDir, sourceName = gitsource.New(src.Repo), src.Repo.WorkTree(), src.Name
		settings.DisplayDir = src.Display
	} else {
		dir, err := dirArg(args)
		if err != nil {
			return err
		}
		source = &localdir.Source{Dir: dir, RenderDir: f.RenderDir, Debounce: f.WatchDebounce, NoWatch: !f.Watch}
		statusDir = dir
		sourceName, _ = filepath.Abs(dir)
	}
	runner := &pipelinerunner.Runner{Settings: settings, LockCacheDir: f.CacheDir, Log: log}
	metrics := daemon.NewMetrics()
	opts := daemon.Options{
		Interval: f.Interval, Jitter: f.Jitter, CatalogInterval: f.CatalogInterval,
		Backoff:        daemon.Backoff{Initial: f.BackoffInitial, Max: f.BackoffMax},
		PublishRetries: f.PushRetries,
		Metrics:        metrics,
		Log:            log,
		SourceName:     sourceName,
		Identity:       kube.Identity(),
	}

	// The cluster side: the Lease, the status ConfigMap and Events.
	var client kubernetes.Interface
	if f.LeaderElect || kube.InCluster() || f.Kubeconfig != "" {
		cfg, err := kube.Config(f.Kubeconfig, f.Context)
		if err != nil {
			return &usageError{fmt.Errorf("kubernetes client: %w", err)}
		}
		if client, err = kubernetes.NewForConfig(cfg); err != nil {
			return &usageError{fmt.Errorf("kubernetes client: %w", err)}
		}
	}
	ns := f.Namespace
	if ns == "" {
		ns = kube.Namespace()
	}
	if client != nil && f.StatusConfigMap != "" {
		if ns == "" {
			return &usageError{errors.New("--namespace is required for the status ConfigMap outside a pod (or --status-configmap='')")}
		}
		sink := &kube.StatusSink{Client: client, Namespace: ns, Name: f.StatusConfigMap}
		defer sink.Shutdown()
		opts.Sinks = append(opts.Sinks, sink)
	} else {
		file := f.StatusFile
		if file == "" {
			var err error
			if file, err = daemon.DefaultStatusFile(f.CacheDir, statusDir); err != nil {
				return err
			}
		}
		opts.Sinks = append(opts.Sinks, daemon.FileSink{Path: file})
		log.Info("status file", "path", file)
	}
	if f.LeaderElect {
		leaseNS := f.LeaseNamespace
		if leaseNS == "" {
			leaseNS = ns
		}
		if leaseNS == "" {
			return &usageError{errors.New("--leader-election-namespace is required outside a pod")}
		}
		opts.Elector = &kube.Elector{Client: client, Namespace: leaseNS, Name: f.LeaseID, Identity: opts.Identity,
			OnNewLeader: func(id string) { log.Info("leader", "identity", id) }}
	}
	d := daemon.New(source, runner, opts)

	listeners := []daemon.Listener{
		{Name: "health", Addr: f.HealthAddr, Handler: d.HealthHandler()},
		{Name: "metrics", Addr: f.MetricsAddr, Handler: metrics.Handler()},
	}
	if f.WebhookSecret != "" {
		secret, err := webhook.ReadSecret(f.WebhookSecret)
		if err != nil {
			return &usageError{fmt.Errorf("--webhook-secret-file: %w", err)}
		}
		mux := http.NewServeMux()
		mux.Handle("/hook", &webhook.Handler{
			Secret: secret,
			Accept: func(*http.Request) { d.Request(daemon.TriggerWebhook) },
			Count:  metrics.Webhook,
		})
		listeners = append(listeners, daemon.Listener{Name: "webhook", Addr: f.WebhookAddr, Handler: mux})
	} else {
		log.Info("webhook receiver off: no --webhook-secret-file")
	}
	servers, err := daemon.Serve(log, listeners...)
	if err != nil {
		return &usageError{err}
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		servers.Shutdown(sctx)
	}()

	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	log.Info("stopping", "timeout", f.ShutdownTimeout)
	t := time.NewTimer(f.ShutdownTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		if err == nil {
			log.Info("stopped")
		}
		return err
	case <-t.C:
		return fmt.Errorf("the reconcile in flight did not stop within --shutdown-timeout %s; exiting (the next start resumes)", f.ShutdownTimeout)
	}
}

// check refuses flag combinations that cannot work.
func (f *runFlags) check(cmd *cobra.Command) error {
	switch {
	case f.Interval < 0 || f.CatalogInterval < 0:
		return &usageError{errors.New("--interval and --catalog-interval must not be negative")}
	case f.Jitter < 0 || f.Jitter > 1:
		return &usageError{errors.New("--interval-jitter must be between 0 and 1")}
	case f.BackoffInitial <= 0 || f.BackoffMax < f.BackoffInitial:
		return &usageError{errors.New("--backoff-initial must be positive and at most --backoff-max")}
	case cmd.Flags().Changed("webhook-addr") && f.WebhookSecret == "" && f.WebhookAddr != "":
		return &usageError{errors.New("--webhook-addr needs --webhook-secret-file: unauthenticated webhooks are refused")}
	case f.PushRetries < 0:
		return &usageError{errors.New("--push-retries must not be negative")}
	case f.Interval == 0 && (!f.Watch || f.Repo != "") && f.WebhookSecret == "" && f.CatalogInterval == 0:
		return &usageError{errors.New("nothing would ever trigger a reconcile after the first: set --interval, --watch, a webhook or --catalog-interval")}
	}
	return nil
}
