package cluster

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/rest"

	"github.com/ferry-gitops/ferry/reconcile"
)

// kubeconfig writes a kubeconfig with one context per name, each pointing
// at https://NAME.example.com; current names the current context ("" for
// none).
func kubeconfig(t *testing.T, dir, file, current string, names ...string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Config\n")
	if current != "" {
		fmt.Fprintf(&b, "current-context: %s\n", current)
	}
	b.WriteString("clusters:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "- name: %s\n  cluster:\n    server: https://%s.example.com\n", n, n)
	}
	b.WriteString("users:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "- name: %s\n  user:\n    token: token-of-%s-0123456789\n", n, n)
	}
	b.WriteString("contexts:\n")
	for _, n := range names {
		fmt.Fprintf(&b, "- name: %s\n  context:\n    cluster: %s\n    user: %s\n", n, n, n)
	}
	path := filepath.Join(dir, file)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func notInCluster() (*rest.Config, error) { return nil, rest.ErrNotInCluster }

func inPod() (*rest.Config, error) {
	return &rest.Config{Host: "https://10.0.0.1:443", BearerTokenFile: "/var/run/secrets/kubernetes.io/serviceaccount/token"}, nil
}

// TestLoadConfig follows kubectl's rules: --kubeconfig alone, else the
// $KUBECONFIG list merged (first file to set a value wins, missing files
// skipped), else ~/.kube/config; --context overrides current-context; the
// pod's service account when no file says anything.
func TestLoadConfig(t *testing.T) {
	dir := t.TempDir()
	a := kubeconfig(t, dir, "a.yaml", "alpha", "alpha", "beta")
	b := kubeconfig(t, dir, "b.yaml", "gamma", "gamma")
	none := kubeconfig(t, dir, "none.yaml", "", "delta")
	home := filepath.Join(dir, "home")
	kubeconfig(t, home, ".kube/config", "home", "home")
	emptyHome := filepath.Join(dir, "empty-home")
	missing := filepath.Join(dir, "missing.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	// A token where a map belongs: the YAML error would quote it.
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Config\nusers: sha256~SECRETSECRETSECRET\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name       string
		opts       Options
		env        string // $KUBECONFIG
		home       string
		inCluster  func() (*rest.Config, error)
		wantHost   string
		wantSource string
		wantErr    string // substring; "" = success
		noConfig   bool   // the error wraps ErrNoConfig
	}{
		{name: "--kubeconfig", opts: Options{Kubeconfig: a}, env: b, home: home, wantHost: "https://alpha.example.com", wantSource: `context "alpha" of ` + a},
		{name: "--kubeconfig and --context", opts: Options{Kubeconfig: a, Context: "beta"}, wantHost: "https://beta.example.com", wantSource: `context "beta" of ` + a},
		{name: "--kubeconfig missing", opts: Options{Kubeconfig: missing}, home: home, wantErr: "--kubeconfig " + missing + ": no such file"},
		{name: "--context unknown", opts: Options{Kubeconfig: a, Context: "prod"}, wantErr: `--context "prod": not in ` + a + " (contexts: alpha, beta)"},
		{name: "KUBECONFIG list, first wins", env: missing + ":" + b + ":" + a, home: home, wantHost: "https://gamma.example.com"},
		{name: "KUBECONFIG list, context from the second file", env: b + ":" + a, opts: Options{Context: "beta"}, wantHost: "https://beta.example.com"},
		{name: "KUBECONFIG beats home", env: a, home: home, wantHost: "https://alpha.example.com"},
		{name: "home", home: home, wantHost: "https://home.example.com", wantSource: `context "home" of ` + filepath.Join(home, ".kube", "config")},
		{name: "KUBECONFIG all missing, not in a pod", env: missing, home: home, inCluster: notInCluster, noConfig: true, wantErr: "looked at " + missing},
		{name: "nothing at all", home: emptyHome, inCluster: notInCluster, noConfig: true, wantErr: "no cluster configured"},
		{name: "nothing, in a pod", home: emptyHome, inCluster: inPod, wantHost: "https://10.0.0.1:443", wantSource: "in-cluster service account"},
		{name: "a file wins over the pod", home: home, inCluster: inPod, wantHost: "https://home.example.com"},
		{name: "--context without any kubeconfig", opts: Options{Context: "prod"}, home: emptyHome, inCluster: inPod, wantErr: `--context "prod": no kubeconfig defines it`},
		{name: "no current-context", opts: Options{Kubeconfig: none}, inCluster: notInCluster, wantErr: "has no current-context; pass --context (contexts: delta)"},
		{name: "no current-context, --context given", opts: Options{Kubeconfig: none, Context: "delta"}, wantHost: "https://delta.example.com"},
		{name: "malformed kubeconfig", opts: Options{Kubeconfig: bad}, wantErr: "load kubeconfig"},
		{name: "Config and Kubeconfig", opts: Options{Kubeconfig: a, Config: &rest.Config{Host: "https://x"}}, wantErr: "Config excludes Kubeconfig and Context"},
		{name: "Config", opts: Options{Config: &rest.Config{Host: "https://given.example.com"}}, wantHost: "https://given.example.com", wantSource: "the given config"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := tc.opts
			opts.getenv = func(k string) string {
				if k == "KUBECONFIG" {
					return tc.env
				}
				return ""
			}
			opts.home = tc.home
			opts.inCluster = tc.inCluster
			if opts.inCluster == nil {
				opts.inCluster = func() (*rest.Config, error) {
					t.Error("in-cluster config consulted although a kubeconfig decides")
					return nil, rest.ErrNotInCluster
				}
			}
			cfg, source, err := loadConfig(opts)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v; want one containing %q", err, tc.wantErr)
				}
				if errors.Is(err, ErrNoConfig) != tc.noConfig {
					t.Errorf("errors.Is(err, ErrNoConfig) = %v; want %v (%v)", !tc.noConfig, tc.noConfig, err)
				}
				if strings.Contains(err.Error(), "SECRET") || strings.Contains(err.Error(), "token-of-") {
					t.Errorf("error leaks a credential: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != tc.wantHost {
				t.Errorf("host = %s; want %s", cfg.Host, tc.wantHost)
			}
			if tc.wantSource != "" && source != tc.wantSource {
				t.Errorf("source = %q; want %q", source, tc.wantSource)
			}
			if strings.Contains(source, "token") {
				t.Errorf("source %q names a credential", source)
			}
		})
	}
}

// TestNewNoConfig is what the CLI checks to skip the cluster step.
func TestNewNoConfig(t *testing.T) {
	_, err := New(Options{getenv: func(string) string { return "" }, home: t.TempDir(), inCluster: notInCluster})
	if !errors.Is(err, ErrNoConfig) {
		t.Fatalf("New = %v; want ErrNoConfig", err)
	}
}

// TestErrorsNeverCarryCredentials points a client with a token, a basic-auth
// password and a password in the server URL at a port nobody listens on,
// and reads every error it returns.
func TestErrorsNeverCarryCredentials(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // a port that refuses connections
	const (
		token    = "sha256~Ferry-Test-Token-0123456789"
		password = "Ferry-Test-Password-9876"
	)
	dir := t.TempDir()
	for _, tc := range []struct{ name, user string }{
		{"bearer token", "    token: " + token + "\n"},
		{"basic auth", "    username: admin\n    password: " + password + "\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfgPath := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
			content := "apiVersion: v1\nkind: Config\ncurrent-context: c\n" +
				"clusters:\n- name: c\n  cluster:\n    server: http://admin:" + password + "@" + addr + "\n" +
				"users:\n- name: u\n  user:\n" + tc.user +
				"contexts:\n- name: c\n  context:\n    cluster: c\n    user: u\n"
			if err := os.WriteFile(cfgPath, []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := New(Options{Kubeconfig: cfgPath, Retry: RetryPolicy{Attempts: 2, Initial: 1e6, Max: 1e6}})
			if err != nil {
				t.Fatal(err)
			}
			var errs []error
			_, err = c.List(t.Context(), reconcile.GVKCatalogSource)
			errs = append(errs, err)
			_, err = c.Apply(t.Context(), catalogSource("olm", "cs", "i@"+digest("1")), false)
			errs = append(errs, err)
			_, err = c.Get(t.Context(), reconcile.GVKIDMS, "", "x")
			errs = append(errs, err)
			for _, err := range errs {
				if err == nil {
					t.Fatal("a request to a closed port succeeded")
				}
				if msg := err.Error(); strings.Contains(msg, token) || strings.Contains(msg, password) {
					t.Errorf("error carries a credential: %s", msg)
				}
			}
			if strings.Contains(c.Host(), password) {
				t.Errorf("Host() = %s carries the password", c.Host())
			}
			if s := c.Stats(); s.Retries == 0 {
				t.Errorf("refused connections were not retried: %+v", s)
			}
		})
	}
}
