package reconcile

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"

	"github.com/ferry-gitops/ferry/internal/safefs"
	"github.com/ferry-gitops/ferry/spec"
)

// TestCheckPrevious: a previous render holding links, special files or
// oversized files is refused before anything in it is read, naming each
// path; a render Ferry wrote passes.
func TestCheckPrevious(t *testing.T) {
	for _, tc := range []struct {
		name  string
		build func(t *testing.T, render, outside string)
		want  []string // nil: passes
	}{
		{
			name: "what Ferry writes",
			build: func(t *testing.T, render, _ string) {
				writeFile(t, filepath.Join(render, "catalogs", "c", "catalogsource.yaml"), "kind: CatalogSource\n")
				writeFile(t, filepath.Join(render, "mirror", "mapping.txt"), "a=b\n")
				writeFile(t, filepath.Join(render, "ferry.lock.yaml"), "kind: Lock\n")
				writeFile(t, filepath.Join(render, "README.md"), "not Ferry's, not read\n")
			},
		},
		{
			name: "lock linked to /dev/zero",
			build: func(t *testing.T, render, _ string) {
				link(t, "/dev/zero", filepath.Join(render, "ferry.lock.yaml"))
			},
			want: []string{"ferry.lock.yaml: is a symbolic link"},
		},
		{
			name: "a catalog file linked outside",
			build: func(t *testing.T, render, outside string) {
				writeFile(t, filepath.Join(outside, "secret"), "password\n")
				link(t, filepath.Join(outside, "secret"), filepath.Join(render, "catalogs", "c", "configs", "p", "catalog.yaml"))
			},
			want: []string{"catalogs/c/configs/p/catalog.yaml: is a symbolic link"},
		},
		{
			name: "the mirror directory linked outside",
			build: func(t *testing.T, render, outside string) {
				link(t, outside, filepath.Join(render, "mirror"))
			},
			want: []string{"mirror: is a symbolic link"},
		},
		{
			name: "a FIFO among the mirror files",
			build: func(t *testing.T, render, _ string) {
				if err := os.MkdirAll(filepath.Join(render, "mirror"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(filepath.Join(render, "mirror", "mapping.txt"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			want: []string{"mirror/mapping.txt: is a named pipe (FIFO), not a regular file"},
		},
		{
			name: "a sparse lock over the size limit",
			build: func(t *testing.T, render, _ string) {
				f, err := os.Create(filepath.Join(render, "ferry.lock.yaml"))
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := f.Truncate(MaxPreviousFileSize + 1); err != nil {
					t.Skipf("no sparse files here: %v", err)
				}
			},
			want: []string{"ferry.lock.yaml: is 512.0 MiB, over the 512 MiB limit for a rendered file"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			top := t.TempDir()
			render, outside := filepath.Join(top, "repo", "rendered"), filepath.Join(top, "outside")
			for _, d := range []string{render, outside} {
				if err := os.MkdirAll(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			tc.build(t, render, outside)
			view, err := safefs.Open(filepath.Join(top, "repo"), safefs.Options{MaxFileSize: MaxPreviousFileSize})
			if err != nil {
				t.Fatal(err)
			}
			defer view.Close()
			previous, err := view.Sub("rendered")
			if err != nil {
				t.Fatal(err)
			}
			err = CheckPrevious(previous)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("want no problem, got %v", err)
				}
				return
			}
			var bad *PreviousRenderError
			if !errors.As(err, &bad) {
				t.Fatalf("want *PreviousRenderError, got %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			// Compute refuses it the same way, before observing anything.
			_, _, err = (&Observer{}).Compute(context.Background(), &spec.Config{}, previous)
			if !errors.As(err, &bad) {
				t.Errorf("Compute: want *PreviousRenderError, got %v", err)
			}
		})
	}
}

// TestDiffFilesReportsUnreadable: a previous file that cannot be read is
// an error, not a file to create (it would be overwritten unseen).
func TestDiffFilesReportsUnreadable(t *testing.T) {
	previous := unreadable{fstest.MapFS{"ferry.lock.yaml": {Data: []byte("x")}}}
	if _, err := diffPrevious(previous, map[string][]byte{"ferry.lock.yaml": []byte("y")}); err == nil || !strings.Contains(err.Error(), "ferry.lock.yaml") {
		t.Errorf("got %v, want an error naming the lock", err)
	}
}

// unreadable lists its files but fails every read.
type unreadable struct{ fstest.MapFS }

func (u unreadable) Open(name string) (fs.File, error) {
	if name == "." {
		return u.MapFS.Open(name)
	}
	fi, err := fs.Stat(u.MapFS, name)
	if err == nil && !fi.IsDir() {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrPermission}
	}
	return u.MapFS.Open(name)
}

func (u unreadable) ReadFile(name string) ([]byte, error) {
	return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrPermission}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

func link(t *testing.T, target, p string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(target, p); err != nil {
		t.Fatal(err)
	}
}
