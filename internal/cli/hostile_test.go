package cli

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// mirrorOnly is a spec that computes a plan without any registry: a
// Mirror and nothing to copy.
const mirrorOnly = "apiVersion: ferry.dev/v1alpha1\nkind: Mirror\nmetadata:\n  name: lab\nspec:\n  registry: mirror.example.com/olm\n"

func specDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	for p, s := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// listing is every path under dir with its type, to prove a command wrote
// nothing.
func listing(t *testing.T, dir string) string {
	t.Helper()
	var out []string
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		out = append(out, p+" "+fi.Mode().Type().String())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return strings.Join(out, "\n")
}

// TestHostileRepositories runs the commands on spec and render directories
// holding FIFOs and links: each ends promptly (a FIFO that were opened
// would block the test until its timeout), exits 2 naming the path, and
// writes nothing.
func TestHostileRepositories(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   func(dir string) []string
		build  func(t *testing.T, dir string)
		stderr []string
	}{
		{
			name: "validate: a FIFO named catalog.yaml",
			args: func(dir string) []string { return []string{"validate", dir} },
			build: func(t *testing.T, dir string) {
				if err := syscall.Mkfifo(filepath.Join(dir, "catalog.yaml"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			stderr: []string{"catalog.yaml: is a named pipe (FIFO), not a regular file"},
		},
		{
			name: "validate: a spec file linked to /dev/zero",
			args: func(dir string) []string { return []string{"validate", dir} },
			build: func(t *testing.T, dir string) {
				if err := os.Symlink("/dev/zero", filepath.Join(dir, "zero.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			stderr: []string{"zero.yaml: cannot be read: symbolic link leads outside the directory"},
		},
		{
			name: "diff: the lock linked to /dev/zero",
			args: func(dir string) []string { return []string{"diff", dir} },
			build: func(t *testing.T, dir string) {
				if err := os.MkdirAll(filepath.Join(dir, "rendered"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink("/dev/zero", filepath.Join(dir, "rendered", "ferry.lock.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			stderr: []string{"rendered: ferry.lock.yaml: is a symbolic link", "error: render directory"},
		},
		{
			name: "diff: the render directory linked elsewhere",
			args: func(dir string) []string { return []string{"diff", dir} },
			build: func(t *testing.T, dir string) {
				elsewhere := filepath.Join(filepath.Dir(dir), "elsewhere")
				if err := os.MkdirAll(filepath.Join(elsewhere, "mirror"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Symlink(elsewhere, filepath.Join(dir, "rendered")); err != nil {
					t.Fatal(err)
				}
			},
			stderr: []string{"render directory", "rendered: is a symlink"},
		},
		{
			name: "reconcile --dry-run: a FIFO in the render directory",
			args: func(dir string) []string { return []string{"reconcile", "--dry-run", dir} },
			build: func(t *testing.T, dir string) {
				if err := os.MkdirAll(filepath.Join(dir, "rendered", "mirror"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(filepath.Join(dir, "rendered", "mirror", "mapping.txt"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			stderr: []string{"rendered: mirror/mapping.txt: is a named pipe (FIFO), not a regular file"},
		},
		{
			name: "render: -o inside the spec directory",
			args: func(dir string) []string { return []string{"render", dir, "-o", filepath.Join(dir, "out")} },
			build: func(t *testing.T, dir string) {
			},
			stderr: []string{"is inside the spec directory", "write to the render directory (-o ", filepath.Join("repo", "rendered") + ")"},
		},
		{
			name: "render: -o the spec directory itself",
			args: func(dir string) []string { return []string{"render", dir, "-o", dir} },
			build: func(t *testing.T, dir string) {
				if err := os.MkdirAll(filepath.Join(dir, "catalogs"), 0o755); err != nil {
					t.Fatal(err)
				}
			},
			stderr: []string{"is inside the spec directory"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := specDir(t, map[string]string{"mirror.yaml": mirrorOnly})
			tc.build(t, dir)
			before := listing(t, filepath.Dir(dir))
			stdout, stderr, code := run(t, tc.args(dir)...)
			if code != ExitInvalid {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, ExitInvalid, stdout, stderr)
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if after := listing(t, filepath.Dir(dir)); after != before {
				t.Errorf("files changed:\nbefore:\n%s\nafter:\n%s", before, after)
			}
		})
	}
}

// TestRenderOutputDirs: the render may go to the render directory, a
// hidden directory or outside the spec directory, and the next validate
// still reads only the spec.
func TestRenderOutputDirs(t *testing.T) {
	for _, out := range []func(dir string) string{
		func(dir string) string { return filepath.Join(dir, "rendered") },
		func(dir string) string { return filepath.Join(dir, ".preview") },
		func(dir string) string { return filepath.Join(filepath.Dir(dir), "outside") },
	} {
		dir := specDir(t, map[string]string{"mirror.yaml": mirrorOnly})
		o := out(dir)
		if stdout, stderr, code := run(t, "render", dir, "-o", o); code != ExitOK {
			t.Fatalf("render -o %s: exit %d\n%s\n%s", o, code, stdout, stderr)
		}
		if _, err := os.Stat(filepath.Join(o, "ferry.lock.yaml")); err != nil {
			t.Errorf("render -o %s wrote no lock: %v", o, err)
		}
		if _, stderr, code := run(t, "validate", dir); code != ExitOK {
			t.Errorf("validate after render -o %s: exit %d\n%s", o, code, stderr)
		}
	}
}

// TestValidateFiltersLocalCatalogs: a local catalog's selection needs no
// registry, so validate applies it and reports what the catalog lacks at
// the line that asks for it (reconcile used to find it after reading every
// registry, exit 1, no line).
func TestValidateFiltersLocalCatalogs(t *testing.T) {
	dir := specDir(t, map[string]string{
		"mirror.yaml": mirrorOnly,
		"catalog.yaml": `apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: okd
spec:
  source: ./okd
  base: quay.io/operator-framework/opm:v1.73.0
  packages:
    - name: lvms-operator
      channels:
        - name: stable-4.99
    - name: no-such-operator
`,
	})
	if err := os.CopyFS(filepath.Join(dir, "okd"), os.DirFS("../../examples/okd")); err != nil {
		t.Fatal(err)
	}
	_, stderr, code := run(t, "validate", dir)
	if code != ExitInvalid {
		t.Fatalf("exit %d, want %d\n%s", code, ExitInvalid, stderr)
	}
	for _, want := range []string{
		`catalog.yaml:11: Catalog/okd: spec.packages[0].channels[0]: package "lvms-operator" channel "stable-4.99":`,
		`catalog.yaml:12: Catalog/okd: spec.packages[1]: package "no-such-operator":`,
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	// The same selection, fixed, is valid.
	fixed := strings.NewReplacer("stable-4.99", "alpha", "    - name: no-such-operator\n", "").Replace(readFile(t, filepath.Join(dir, "catalog.yaml")))
	if err := os.WriteFile(filepath.Join(dir, "catalog.yaml"), []byte(fixed), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, stderr, code := run(t, "validate", dir); code != ExitOK {
		t.Errorf("fixed selection: exit %d\n%s", code, stderr)
	}
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
