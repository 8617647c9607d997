package depcheck

import (
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/ferry-gitops/ferry"

// deps lists every package pkg imports, directly or not (tests excluded).
func deps(t *testing.T, pkg string) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}{{if eq .ImportPath \"net/http\" \"os/exec\"}}{{.ImportPath}}{{end}}", pkg)
	cmd.Dir = "../.." // the module root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list %s: %v", pkg, err)
	}
	return strings.Fields(string(out))
}

func TestImportRules(t *testing.T) {
	for _, tc := range []struct {
		pkg       string
		forbidden []string // prefixes
		why       string
	}{
		{"./spec", []string{module + "/"}, "spec is the bottom layer: it imports nothing of Ferry's"},
		{"./spec", []string{"k8s.io/client-go", "github.com/go-git/", "github.com/google/go-containerregistry/pkg/v1/remote", "net/http", "github.com/spf13/cobra"}, "spec only reads an fs.FS"},
		{"./render/...", []string{"k8s.io/client-go", "github.com/go-git/", "github.com/google/go-containerregistry/pkg/v1/remote", "net/http", "os/exec", "github.com/spf13/cobra"}, "render is pure: no network, cluster or git"},
		{"./reconcile/...", []string{"github.com/spf13/cobra", module + "/internal/cli"}, "only the CLI knows cobra"},
		{"./reconcile", []string{"k8s.io/client-go", "github.com/go-git/", module + "/internal/cluster", module + "/gitsync", module + "/internal/daemon", module + "/internal/pipeline"}, "reconcile declares the Cluster and Committer interfaces; their implementations import it, never the other way"},
		{"./internal/cluster/...", []string{"github.com/go-git/", module + "/gitsync", module + "/internal/daemon"}, "the cluster client knows nothing of git or the daemon"},
		{"./gitsync/...", []string{"k8s.io/client-go", module + "/internal/cluster", module + "/internal/daemon"}, "the git layer knows nothing of the cluster or the daemon"},
		{"./internal/daemon", []string{module + "/gitsync", module + "/internal/cluster", "github.com/go-git/"}, "the daemon loop owns when, through its Source and Runner interfaces; adapters live in its subpackages"},
		{"./gitsync/...", []string{"github.com/spf13/cobra", module + "/internal/cli"}, "only the CLI knows cobra"},
		{"./cmd/...", []string{module + "/internal/testenv", module + "/internal/world"}, "test helpers never ship in the binary"},
	} {
		self := module + strings.TrimPrefix(strings.TrimSuffix(tc.pkg, "/..."), ".")
		for _, d := range deps(t, tc.pkg) {
			if strings.HasPrefix(d, self) {
				continue // the package under test itself
			}
			for _, f := range tc.forbidden {
				if d == f || strings.HasPrefix(d, f) {
					t.Errorf("%s imports %s: %s", tc.pkg, d, tc.why)
				}
			}
		}
	}
}
