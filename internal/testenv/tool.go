package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

const modulePath = "github.com/ferry-gitops/ferry"

var (
	rootOnce sync.Once
	rootDir  string
	rootErr  error
)

// RepoRoot returns the directory holding Ferry's go.mod. Tests run in their
// package directory, so this is how they find hack/ and testdata/ without
// counting "../".
func RepoRoot(t testing.TB) string {
	t.Helper()
	root, err := repoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func repoRoot() (string, error) {
	rootOnce.Do(func() { rootDir, rootErr = findRepoRoot() })
	return rootDir, rootErr
}

// findRepoRoot walks up from the working directory; it checks the module line
// because test/tools/* are separate modules with their own go.mod.
func findRepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("find repository root: %w", err)
	}
	for {
		if isFerryModule(filepath.Join(dir, "go.mod")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("find repository root: no go.mod declaring module %s above the working directory", modulePath)
		}
		dir = parent
	}
}

func isFerryModule(gomod string) bool {
	f, err := os.Open(gomod)
	if err != nil {
		return false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) == 2 && fields[0] == "module" {
			return fields[1] == modulePath
		}
	}
	return false
}

type toolResult struct {
	once sync.Once
	path string
	err  error
}

var tools sync.Map // name -> *toolResult

// Tool returns the absolute path of an external binary (kube-apiserver, etcd,
// opm, docker-registry, skopeo, htpasswd, git) as hack/tools.sh resolves it,
// so tests and developers use the same pinned, cached builds. The answer is
// memoised per process: concurrent callers wait for one build instead of
// starting their own. A cold kube-apiserver build takes minutes; run
// hack/tools.sh before go test.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := toolPath(name)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func toolPath(name string) (string, error) {
	v, _ := tools.LoadOrStore(name, new(toolResult))
	r := v.(*toolResult)
	r.once.Do(func() { r.path, r.err = runToolsScript(name) })
	return r.path, r.err
}

func runToolsScript(name string) (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", filepath.Join(root, "hack", "tools.sh"), "path", name)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("hack/tools.sh path %s: %w\n%s", name, err, stderr.String())
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	p := strings.TrimSpace(lines[len(lines)-1])
	if !filepath.IsAbs(p) {
		return "", fmt.Errorf("hack/tools.sh path %s: printed %q, not an absolute path\n%s", name, stdout.String(), stderr.String())
	}
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("hack/tools.sh path %s: %w", name, err)
	}
	return p, nil
}

// OPM returns the path of the opm binary built from operator-registry.
func OPM(t testing.TB) string {
	t.Helper()
	return Tool(t, "opm")
}

// RunOPM runs opm with args in the test's working directory. A non-zero exit
// is returned as err (an *exec.ExitError) rather than failing the test,
// because asserting that opm rejects bad input is half of its use.
func RunOPM(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return run(t, OPM(t), args...)
}

// Skopeo returns the path of Debian's skopeo, the independent judge of what
// a registry actually serves.
func Skopeo(t testing.TB) string {
	t.Helper()
	return Tool(t, "skopeo")
}

// RunSkopeo runs skopeo with args; like RunOPM, a non-zero exit is returned,
// not fatal.
func RunSkopeo(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return run(t, Skopeo(t), args...)
}

// run executes bin, stopping it when the test ends; output is captured rather
// than streamed so a caller can assert on it.
func run(t testing.TB, bin string, args ...string) (string, string, error) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.SysProcAttr = dieWithParent()
	err := cmd.Run()
	var exitErr *exec.ExitError
	if err != nil && !errors.As(err, &exitErr) {
		// Not starting at all is a broken environment, not a verdict.
		t.Fatalf("run %s: %v", filepath.Base(bin), err)
	}
	return stdout.String(), stderr.String(), err
}
