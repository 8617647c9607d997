package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// ErrNoConfig is wrapped by New when nothing says which cluster to use: no
// --kubeconfig, no file in $KUBECONFIG or at ~/.kube/config, not running in a
// pod. The caller skips the cluster step and says so; every other error of
// New is a misconfiguration to report.
var ErrNoConfig = errors.New("no cluster configured")

// Options says how to reach the cluster, with kubectl's flags and rules.
type Options struct {
	// Kubeconfig is --kubeconfig: this file only, which must exist. Empty
	// means the files listed in $KUBECONFIG (colon-separated, merged, the
	// first to set a value wins, missing ones skipped), else
	// ~/.kube/config.
	Kubeconfig string
	// Context is --context: the kubeconfig context to use instead of its
	// current-context.
	Context string
	// Config, when set, is used as is instead of loading a kubeconfig
	// (embedding callers, tests); Kubeconfig and Context must then be empty.
	Config *rest.Config
	// Retry is the retry policy of every request; the zero value means
	// DefaultRetryPolicy.
	Retry RetryPolicy
	// UserAgent is sent with every request; default "ferry".
	UserAgent string
	// Log receives a debug line per retried request; nil is silent.
	Log *slog.Logger

	// Tests replace how the environment is read.
	getenv    func(string) string
	home      string
	inCluster func() (*rest.Config, error)
}

// loadConfig resolves opts to a REST config as kubectl does, with a
// one-line description of where it came from (for a log line; it names
// files and a context, never credentials).
func loadConfig(opts Options) (*rest.Config, string, error) {
	if opts.Config != nil {
		if opts.Kubeconfig != "" || opts.Context != "" {
			return nil, "", errors.New("cluster options: Config excludes Kubeconfig and Context")
		}
		return rest.CopyConfig(opts.Config), "the given config", nil
	}
	getenv := opts.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	home := opts.home
	if home == "" && opts.getenv == nil {
		home, _ = os.UserHomeDir()
	}
	inCluster := opts.inCluster
	if inCluster == nil {
		inCluster = rest.InClusterConfig
	}

	rules := &clientcmd.ClientConfigLoadingRules{ExplicitPath: opts.Kubeconfig}
	var looked []string
	switch {
	case opts.Kubeconfig != "":
		looked = []string{opts.Kubeconfig}
		if _, err := os.Stat(opts.Kubeconfig); err != nil {
			return nil, "", fmt.Errorf("--kubeconfig %s: %w", opts.Kubeconfig, pathError(err))
		}
	case getenv("KUBECONFIG") != "":
		seen := map[string]bool{}
		for _, p := range filepath.SplitList(getenv("KUBECONFIG")) {
			if p != "" && !seen[p] {
				seen[p] = true
				rules.Precedence = append(rules.Precedence, p)
			}
		}
		looked = rules.Precedence
	case home != "":
		rules.Precedence = []string{filepath.Join(home, ".kube", "config")}
		looked = rules.Precedence
	}
	var found []string
	for _, p := range looked {
		if _, err := os.Stat(p); err == nil {
			found = append(found, p)
		}
	}

	raw, err := rules.Load()
	if err != nil {
		return nil, "", fmt.Errorf("load kubeconfig: %s", redactKubeconfigError(err.Error()))
	}
	if len(found) == 0 || isEmpty(raw) {
		if opts.Context != "" {
			return nil, "", fmt.Errorf("--context %q: no kubeconfig defines it (looked at %s)", opts.Context, describe(looked))
		}
		cfg, err := inCluster()
		if err == nil {
			return cfg, "in-cluster service account", nil
		}
		if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, "", fmt.Errorf("in-cluster config: %w", err)
		}
		return nil, "", fmt.Errorf("%w: no kubeconfig (looked at %s) and not running in a cluster", ErrNoConfig, describe(looked))
	}
	if opts.Context != "" {
		if _, ok := raw.Contexts[opts.Context]; !ok {
			return nil, "", fmt.Errorf("--context %q: not in %s (contexts: %s)", opts.Context, strings.Join(found, ", "), contextNames(raw))
		}
	}
	cc := clientcmd.NewNonInteractiveClientConfig(*raw, opts.Context, &clientcmd.ConfigOverrides{CurrentContext: opts.Context}, rules)
	cfg, err := cc.ClientConfig()
	if err != nil {
		if clientcmd.IsEmptyConfig(err) {
			// The files exist but choose no cluster: no current-context.
			if icc, icErr := inCluster(); icErr == nil {
				return icc, "in-cluster service account", nil
			}
			return nil, "", fmt.Errorf("kubeconfig %s has no current-context; pass --context (contexts: %s)", strings.Join(found, ", "), contextNames(raw))
		}
		return nil, "", fmt.Errorf("kubeconfig %s: %s", strings.Join(found, ", "), redactKubeconfigError(err.Error()))
	}
	ctx := opts.Context
	if ctx == "" {
		ctx = raw.CurrentContext
	}
	return cfg, fmt.Sprintf("context %q of %s", ctx, strings.Join(found, ", ")), nil
}

func isEmpty(c *clientcmdapi.Config) bool {
	return c == nil || (len(c.Clusters) == 0 && len(c.Contexts) == 0 && len(c.AuthInfos) == 0 && c.CurrentContext == "")
}

func contextNames(c *clientcmdapi.Config) string {
	var names []string
	for n := range c.Contexts {
		names = append(names, n)
	}
	if len(names) == 0 {
		return "none"
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

func describe(paths []string) string {
	if len(paths) == 0 {
		return "nothing: no $KUBECONFIG and no home directory"
	}
	return strings.Join(paths, ", ")
}

// pathError drops the repetition of the path in an *os.PathError.
func pathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// backquoted finds the values a YAML decoding error quotes (`abcdefg...`):
// in a kubeconfig such a value can be the start of a token.
var backquoted = regexp.MustCompile("`[^`]*`")

func redactKubeconfigError(msg string) string {
	return redactURLs(backquoted.ReplaceAllString(msg, "`REDACTED`"))
}
