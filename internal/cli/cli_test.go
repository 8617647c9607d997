package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	code = ExitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

func TestValidateExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{
			name:   "examples are valid",
			args:   []string{"validate", "../../examples"},
			code:   ExitOK,
			stdout: []string{"valid: 5 file(s), 4 Catalog(s), 1 Mirror, 1 Samples", "Catalog/certified-operators", "Mirror/disconnected"},
		},
		{
			name:     "every problem listed with file and line",
			args:     []string{"validate", "../../spec/testdata/load/malformed-digest"},
			code:     ExitInvalid,
			stderr:   []string{"catalog.yaml:6: Catalog/digests: spec.source:", "catalog.yaml:13: Catalog/digests: spec.bundles[4]:", "invalid: 6 error(s)"},
			noStdout: true,
		},
		{
			name:   "unknown field",
			args:   []string{"validate", "../../spec/testdata/load/unknown-field"},
			code:   ExitInvalid,
			stderr: []string{`spec.pacakges: unknown field "pacakges" (did you mean "packages"?)`},
		},
		{
			name:   "missing directory is a usage error",
			args:   []string{"validate", "/nonexistent/dir"},
			code:   ExitInvalid,
			stderr: []string{"error: spec directory"},
		},
		{
			name:   "bad flag is a usage error",
			args:   []string{"validate", "--bogus"},
			code:   ExitInvalid,
			stderr: []string{"unknown flag: --bogus"},
		},
		{
			name:   "version",
			args:   []string{"version"},
			code:   ExitOK,
			stdout: []string{"ferry "},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := run(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tc.noStdout && stdout != "" {
				t.Errorf("invalid input printed to stdout:\n%s", stdout)
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	stdout, _, code := run(t, "validate", "-o", "json", "../../spec/testdata/load/invalid-regex")
	if code != ExitInvalid {
		t.Fatalf("exit %d", code)
	}
	var report struct {
		Valid    bool `json:"valid"`
		Problems []struct {
			File  string `json:"file"`
			Line  int    `json:"line"`
			Field string `json:"field"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if report.Valid || len(report.Problems) != 3 {
		t.Fatalf("got valid=%v with %d problems, want invalid with 3", report.Valid, len(report.Problems))
	}
	if p := report.Problems[1]; !strings.HasSuffix(p.File, "invalid-regex/mirror.yaml") || p.Line != 10 || p.Field != "spec.blockedImages[0]" {
		t.Errorf("problem location = %+v", p)
	}
}

// TestRenderDirectorySymlinkRefused: a render directory that is a symlink
// to a folder outside the repository is refused before anything is copied,
// pushed, deleted or written, by reconcile and by render -o.
func TestRenderDirectorySymlinkRefused(t *testing.T) {
	reg := testenv.StartMemRegistry(t)
	base, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg.Host + "/opm/base:v1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, base); err != nil {
		t.Fatal(err)
	}
	work, outside := t.TempDir(), t.TempDir()
	if err := os.CopyFS(filepath.Join(work, "okd"), os.DirFS("../../examples/okd")); err != nil {
		t.Fatal(err)
	}
	spec := fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: okd
spec:
  source: ./okd
  base: %s/opm/base:v1
  target: %s/catalogs/okd:v1
`, reg.Host, reg.Host)
	if err := os.WriteFile(filepath.Join(work, "catalog.yaml"), []byte(spec), 0o644); err != nil {
		t.Fatal(err)
	}
	victim := filepath.Join(outside, "catalogs", "okd", "catalogsource.yaml")
	if err := os.MkdirAll(filepath.Dir(victim), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victim, []byte("not Ferry's"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(work, "rendered")); err != nil {
		t.Fatal(err)
	}
	reg.Log.Reset()
	for _, args := range [][]string{
		{"reconcile", work, "--insecure-registry", reg.Host, "--progress", "never", "--cache-dir", t.TempDir()},
		{"render", work, "--insecure-registry", reg.Host, "-o", filepath.Join(work, "rendered")},
	} {
		stdout, stderr, code := run(t, args...)
		if code != ExitInvalid || !strings.Contains(stderr, "is a symlink") {
			t.Errorf("%s: exit %d, want %d naming the symlink\n%s\n%s", args[0], code, ExitInvalid, stdout, stderr)
		}
	}
	if b, err := os.ReadFile(victim); err != nil || string(b) != "not Ferry's" {
		t.Errorf("the file outside the repository was changed: %q, %v", b, err)
	}
	for _, l := range reg.Log.Lines() {
		if !strings.HasPrefix(l, "GET ") && !strings.HasPrefix(l, "HEAD ") {
			t.Errorf("the registry was written to: %s", l)
		}
	}
}
