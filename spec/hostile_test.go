package spec

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/ferry-gitops/ferry/internal/safefs"
)

// The hostile-input suite: what a config repo pushed by someone careless or
// hostile can hold, by class of issue 15. Every case must end in a clear
// problem naming the file (and line where there is one), in bounded time
// and memory, with nothing outside the spec directory read. Cases that fit
// in git are golden files under testdata/load (alias-bomb, strict-scalars,
// credentials, destination-collisions, ...); the ones below need a real
// file system: links, FIFOs, devices, sizes.

const mirrorDoc = "apiVersion: ferry.dev/v1alpha1\nkind: Mirror\nmetadata:\n  name: lab\nspec:\n  registry: mirror.example.com/olm\n"

// secretDoc is valid spec that lives outside the spec directory: reading it
// would load a Catalog and its name would show.
const secretDoc = "apiVersion: ferry.dev/v1alpha1\nkind: Catalog\nmetadata:\n  name: outside-secret\nspec:\n  source: registry.example.com/secret/index:v1\n"

func write(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func symlink(t *testing.T, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}

func mkfifo(t *testing.T, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(p, 0o644); err != nil {
		t.Fatal(err)
	}
}

// localCatalog is a Catalog built from ./fbc, whose files the cases vary.
const localCatalog = "apiVersion: ferry.dev/v1alpha1\nkind: Catalog\nmetadata:\n  name: local\nspec:\n  source: ./fbc\n  base: registry.example.com/opm/base:v1\n  target: mirror.example.com/olm/local:v1\n"

const fbcPackage = "schema: olm.package\nname: pkg\ndefaultChannel: stable\n"

func TestHostileSpecDirectories(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, dir, outside string)
		opts  LoadOptions
		// want are substrings of the problems; nil: the directory must
		// load. absent must not appear.
		want, absent []string
	}{
		{
			name: "FIFO named .yaml",
			build: func(t *testing.T, dir, _ string) {
				write(t, filepath.Join(dir, "mirror.yaml"), mirrorDoc)
				mkfifo(t, filepath.Join(dir, "catalog.yaml"))
			},
			want: []string{"catalog.yaml: is a named pipe (FIFO), not a regular file"},
		},
		{
			name: "FIFO behind a link inside",
			build: func(t *testing.T, dir, _ string) {
				mkfifo(t, filepath.Join(dir, "pipe"))
				symlink(t, "pipe", filepath.Join(dir, "catalog.yml"))
			},
			want: []string{"catalog.yml: is a named pipe (FIFO) (through a symbolic link), not a regular file"},
		},
		{
			name: "link to /dev/zero",
			build: func(t *testing.T, dir, _ string) {
				symlink(t, "/dev/zero", filepath.Join(dir, "zero.yaml"))
			},
			want: []string{"zero.yaml: cannot be read: symbolic link leads outside the directory"},
		},
		{
			name: "link to a spec file outside",
			build: func(t *testing.T, dir, outside string) {
				write(t, filepath.Join(outside, "secret.yaml"), secretDoc)
				symlink(t, filepath.Join(outside, "secret.yaml"), filepath.Join(dir, "abs.yaml"))
				symlink(t, "../outside/secret.yaml", filepath.Join(dir, "rel.yaml"))
			},
			want: []string{"abs.yaml: cannot be read: symbolic link leads outside the directory", "rel.yaml: cannot be read: symbolic link leads outside the directory"},
		},
		{
			name: "link to a directory outside is not walked",
			build: func(t *testing.T, dir, outside string) {
				write(t, filepath.Join(dir, "mirror.yaml"), mirrorDoc)
				write(t, filepath.Join(outside, "secret.yaml"), secretDoc)
				symlink(t, outside, filepath.Join(dir, "elsewhere"))
			},
		},
		{
			name: "link inside is followed",
			build: func(t *testing.T, dir, _ string) {
				write(t, filepath.Join(dir, "shared", "mirror.txt"), mirrorDoc)
				symlink(t, "shared/mirror.txt", filepath.Join(dir, "mirror.yaml"))
			},
		},
		{
			name: "dangling link",
			build: func(t *testing.T, dir, _ string) {
				symlink(t, "gone.yaml", filepath.Join(dir, "dangling.yaml"))
			},
			want: []string{"dangling.yaml: cannot be read: does not exist (a dangling symbolic link?)"},
		},
		{
			name: "link loop",
			build: func(t *testing.T, dir, _ string) {
				symlink(t, "b.yaml", filepath.Join(dir, "a.yaml"))
				symlink(t, "a.yaml", filepath.Join(dir, "b.yaml"))
			},
			want: []string{"a.yaml: cannot be read: too many levels of symbolic links", "b.yaml: cannot be read: too many levels of symbolic links"},
		},
		{
			name: "a file over the size limit",
			build: func(t *testing.T, dir, _ string) {
				write(t, filepath.Join(dir, "mirror.yaml"), mirrorDoc+strings.Repeat("# padding\n", 300))
			},
			opts: LoadOptions{MaxFileSize: 2 << 10},
			want: []string{"mirror.yaml: is 3.0 KiB, over the 2.0 KiB limit for a spec file"},
		},
		{
			name: "a sparse 3 GiB file is refused by its size, unread",
			build: func(t *testing.T, dir, _ string) {
				f, err := os.Create(filepath.Join(dir, "huge.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := f.Truncate(3 << 30); err != nil {
					t.Skipf("no sparse files here: %v", err)
				}
			},
			want: []string{"huge.yaml: is 3072 MiB, over the 1 MiB limit for a spec file"},
		},
		{
			name: "a big catalog file under a local source is catalog content",
			build: func(t *testing.T, dir, _ string) {
				write(t, filepath.Join(dir, "catalog.yaml"), localCatalog)
				write(t, filepath.Join(dir, "fbc", "pkg", "catalog.yaml"), fbcPackage+strings.Repeat("# padding\n", 300))
			},
			opts: LoadOptions{MaxFileSize: 2 << 10},
		},
		{
			name: "spec files over the directory limit",
			build: func(t *testing.T, dir, _ string) {
				for i := range 5 {
					write(t, filepath.Join(dir, fmt.Sprintf("c%d.yaml", i)), strings.Replace(secretDoc, "outside-secret", fmt.Sprintf("c%d", i), 1)+strings.Repeat("# padding\n", 40))
				}
			},
			opts:   LoadOptions{MaxTotalSize: 1 << 10},
			want:   []string{"c1.yaml: the spec files read up to this one weigh 1038 bytes, over the 1024-byte limit for a spec directory; the rest is not read"},
			absent: []string{"c2.yaml", "c3.yaml", "c4.yaml"},
		},
		{
			name: "local source linked outside",
			build: func(t *testing.T, dir, outside string) {
				write(t, filepath.Join(dir, "catalog.yaml"), localCatalog)
				write(t, filepath.Join(outside, "pkg", "catalog.yaml"), fbcPackage)
				symlink(t, outside, filepath.Join(dir, "fbc"))
			},
			want: []string{`catalog.yaml:6: Catalog/local: spec.source: local catalog directory "./fbc" (fbc in the spec tree) cannot be read: symbolic link leads outside the directory`},
		},
		{
			name: "local source holding a link outside",
			build: func(t *testing.T, dir, outside string) {
				write(t, filepath.Join(dir, "catalog.yaml"), localCatalog)
				write(t, filepath.Join(dir, "fbc", "pkg", "catalog.yaml"), fbcPackage)
				write(t, filepath.Join(outside, "shadow.json"), "{}")
				symlink(t, filepath.Join(outside, "shadow.json"), filepath.Join(dir, "fbc", "pkg", "extra.json"))
			},
			want: []string{`catalog.yaml:6: Catalog/local: spec.source: local catalog directory "./fbc": fbc/pkg/extra.json: symbolic link leads outside the directory`},
		},
		{
			name: "local source holding a FIFO",
			build: func(t *testing.T, dir, _ string) {
				write(t, filepath.Join(dir, "catalog.yaml"), localCatalog)
				write(t, filepath.Join(dir, "fbc", "pkg", "catalog.yaml"), fbcPackage)
				mkfifo(t, filepath.Join(dir, "fbc", "pkg", "bundles.json"))
			},
			want: []string{`catalog.yaml:6: Catalog/local: spec.source: local catalog directory "./fbc": fbc/pkg/bundles.json is a named pipe (FIFO), not a regular file`},
		},
		{
			name: "local source with a link inside the spec directory",
			build: func(t *testing.T, dir, _ string) {
				write(t, filepath.Join(dir, "catalog.yaml"), localCatalog)
				write(t, filepath.Join(dir, "shared", "catalog.yaml"), fbcPackage)
				symlink(t, "../../shared/catalog.yaml", filepath.Join(dir, "fbc", "pkg", "catalog.yaml"))
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			dir, outside := filepath.Join(top, "spec"), filepath.Join(top, "outside")
			for _, d := range []string{dir, outside} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			tc.build(t, dir, outside)
			view, err := safefs.Open(dir, safefs.Options{FollowSymlinks: true, MaxFileSize: DefaultMaxFileSize})
			if err != nil {
				t.Fatal(err)
			}
			defer view.Close()
			cfg, err := Load(view, tc.opts)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want a valid directory, got %v", err)
				}
				for _, c := range cfg.Catalogs {
					if c.Metadata.Name == "outside-secret" {
						t.Error("a spec file outside the directory was read")
					}
				}
				return
			}
			var invalid *InvalidError
			if !errors.As(err, &invalid) {
				t.Fatalf("want *InvalidError, got %v", err)
			}
			got := invalid.Error()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("problems lack %q:\n%s", w, got)
				}
			}
			if strings.Contains(got, "outside-secret") {
				t.Errorf("a file outside the directory was read:\n%s", got)
			}
			for _, a := range tc.absent {
				if strings.Contains(got, a) {
					t.Errorf("problems mention %s:\n%s", a, got)
				}
			}
		})
	}
}

// TestSpecRefusesDevicesWithoutSafefs: Load itself reads regular files
// only, whatever fs.FS it is handed, so even os.DirFS (which follows every
// link) cannot make it read /dev/zero or block on a FIFO.
func TestSpecRefusesDevicesWithoutSafefs(t *testing.T) {
	dir := t.TempDir()
	symlink(t, "/dev/zero", filepath.Join(dir, "zero.yaml"))
	mkfifo(t, filepath.Join(dir, "pipe.yaml"))
	_, err := Load(os.DirFS(dir), LoadOptions{})
	var invalid *InvalidError
	if !errors.As(err, &invalid) {
		t.Fatalf("want *InvalidError, got %v", err)
	}
	for _, w := range []string{"pipe.yaml: is a named pipe (FIFO), not a regular file", "zero.yaml: is a character device (through a symbolic link), not a regular file"} {
		if !strings.Contains(invalid.Error(), w) {
			t.Errorf("problems lack %q:\n%v", w, invalid)
		}
	}
}

// TestDeviceSpecFile reads a device node inside the spec directory, where
// the kernel lets the test create one.
func TestDeviceSpecFile(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mknod(filepath.Join(dir, "null.yaml"), syscall.S_IFCHR|0o644, 1<<8|3); err != nil {
		t.Skipf("cannot create a device node here: %v", err)
	}
	_, err := Load(os.DirFS(dir), LoadOptions{})
	if err == nil || !strings.Contains(err.Error(), "null.yaml: is a character device, not a regular file") {
		t.Fatalf("got %v", err)
	}
}

// TestProblemsAreCapped: a generated file with a million mistakes lists
// MaxProblems of them and counts the rest, instead of holding a million
// messages.
func TestProblemsAreCapped(t *testing.T) {
	var b strings.Builder
	b.WriteString(mirrorDoc + "  additionalImages:\n")
	for i := range 5000 {
		fmt.Fprintf(&b, "    - nope%d\n", i)
	}
	_, err := Load(fstest.MapFS{"m.yaml": {Data: []byte(b.String())}}, LoadOptions{})
	var invalid *InvalidError
	if !errors.As(err, &invalid) {
		t.Fatalf("want *InvalidError, got %v", err)
	}
	ps := invalid.Problems
	if len(ps) != MaxProblems+1 {
		t.Fatalf("%d problems listed, want %d and a count", len(ps), MaxProblems+1)
	}
	if last := ps[len(ps)-1]; last.File != "m.yaml" || !strings.Contains(last.Message, "4000 more problem(s) not listed") {
		t.Errorf("last problem = %s", last)
	}
}

// TestLoadStopsWhenCancelled: a cancelled load returns the context's error,
// not a half-read Config.
func TestLoadStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	cfg, err := LoadContext(ctx, os.DirFS("../examples"), DefaultLoadOptions())
	if !errors.Is(err, context.Canceled) || cfg != nil {
		t.Fatalf("got %v, %v; want context.Canceled and no Config", cfg, err)
	}
}

// TestCredentialsNeverEchoed loads every place a reference can carry
// credentials and checks no output, text or JSON field, holds them.
func TestCredentialsNeverEchoed(t *testing.T) {
	_, err := Load(os.DirFS("testdata/load/credentials"), LoadOptions{})
	var invalid *InvalidError
	if !errors.As(err, &invalid) {
		t.Fatalf("want *InvalidError, got %v", err)
	}
	if len(invalid.Problems) < 12 {
		t.Errorf("only %d problems: every credential should be refused", len(invalid.Problems))
	}
	for _, p := range invalid.Problems {
		s := fmt.Sprintf("%s %#v", p, p)
		if strings.Contains(s, "s3cret") || strings.Contains(s, "alice") || strings.Contains(s, "p@ss") {
			t.Errorf("credential echoed: %s", p)
		}
	}
}

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"alice:s3cret@mirror.example.com/olm" must start`, `"REDACTED@mirror.example.com/olm" must start`},
		{`"http://alice:s3cret@quay.io/a/b:1"`, `"http://REDACTED@quay.io/a/b:1"`},
		{`docker://alice@registry.example.com:5000`, `docker://REDACTED@registry.example.com:5000`},
		{`user:abc==@mirror.example.com/x`, `REDACTED@mirror.example.com/x`},
		// Unquoted, what precedes the user information may go with it:
		// too much hidden, never too little.
		{`(alice:p@ss@localhost/x)`, `REDACTED@localhost/x)`},
		{`token=abc@mirror.example.com`, `REDACTED@mirror.example.com`},
		// Not credentials: digests, placeholders, plain text.
		{`"quay.io/a/b@sha256:c1552f7934393b786a56d22fdddeb8cdeaefdfa81fa012c53efdf7a4933e9d61"`, `"quay.io/a/b@sha256:c1552f7934393b786a56d22fdddeb8cdeaefdfa81fa012c53efdf7a4933e9d61"`},
		{`"index@sha256:abc"`, `"index@sha256:abc"`},
		{`"NAMESPACE@CATALOG_DIGEST"`, `"NAMESPACE@CATALOG_DIGEST"`},
		{`(registry/repository[:tag]@sha256:<64 hex>)`, `(registry/repository[:tag]@sha256:<64 hex>)`},
		{`no at sign here`, `no at sign here`},
	} {
		if got := Redact(tc.in); got != tc.want {
			t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// TestValidFilesStillLoad: the limits leave real spec directories alone.
func TestValidFilesStillLoad(t *testing.T) {
	for _, dir := range []string{"../examples", "testdata/load/valid-minimal", "testdata/load/valid-aliases", "testdata/load/valid-empty-documents"} {
		view, err := safefs.Open(dir, safefs.Options{FollowSymlinks: true, MaxFileSize: DefaultMaxFileSize})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Load(view, DefaultLoadOptions()); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
		view.Close()
	}
}
