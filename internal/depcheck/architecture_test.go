package depcheck

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// tableName is a package named in the first column of a table row of
// docs/architecture.md: | `internal/mirror` | ... |
var tableName = regexp.MustCompile("(?m)^\\| `([a-z0-9/._-]+)` \\|")

// TestArchitectureDoc keeps docs/architecture.md honest: every package it
// names in its tables exists as a directory, and every non-test package of
// the module is named there, so a new package cannot land without a line
// saying what it owns.
func TestArchitectureDoc(t *testing.T) {
	root := "../.."
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	named := map[string]bool{}
	for _, m := range tableName.FindAllStringSubmatch(string(doc), -1) {
		named[m[1]] = true
	}
	if len(named) < 10 {
		t.Fatalf("only %d packages named in docs/architecture.md's tables", len(named))
	}
	for p := range named {
		if fi, err := os.Stat(filepath.Join(root, filepath.FromSlash(p))); err != nil || !fi.IsDir() {
			t.Errorf("docs/architecture.md names %s, which is not a directory of the module", p)
		}
	}
	cmd := exec.Command("go", "list", "-f", "{{.ImportPath}}", "./...")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		if !named[rel] {
			t.Errorf("package %s is not in docs/architecture.md: add a row saying what it owns", rel)
		}
	}
}
