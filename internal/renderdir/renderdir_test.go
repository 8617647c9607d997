package renderdir

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// tree lists every path under dir (not following links) with its content
// or kind, to prove a refused write touched nothing.
func tree(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		fi, err := d.Info()
		if err != nil {
			return err
		}
		switch m := fi.Mode(); {
		case m&fs.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			out[rel] = "-> " + target
		case m.IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		case m.IsDir():
			out[rel] = "dir"
		default:
			out[rel] = m.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func write(t *testing.T, p, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestWrite(t *testing.T) {
	files := map[string][]byte{
		"catalogs/a/catalogsource.yaml": []byte("new cs"),
		"mirror/mapping.txt":            []byte("a=b\n"),
		"ferry.lock.yaml":               []byte("lock"),
	}
	tests := []struct {
		name string
		// setup prepares base (the repository) and outside (a folder
		// elsewhere); the render directory is base/rendered.
		setup func(t *testing.T, base, outside string)
		files map[string][]byte
		// wantErr is the error Write must return; "" for success.
		wantErr string
	}{
		{
			name: "fresh",
			setup: func(t *testing.T, base, outside string) {
				write(t, filepath.Join(outside, "keep"), "outside")
			},
			files: files,
		},
		{
			name: "replaces owned entries, keeps the user's",
			setup: func(t *testing.T, base, outside string) {
				write(t, filepath.Join(base, "rendered/catalogs/old/catalogsource.yaml"), "old")
				write(t, filepath.Join(base, "rendered/README.md"), "mine")
				write(t, filepath.Join(outside, "keep"), "outside")
			},
			files: files,
		},
		{
			name: "render directory is a symlink",
			setup: func(t *testing.T, base, outside string) {
				write(t, filepath.Join(outside, "catalogs/x/catalogsource.yaml"), "outside")
				if err := os.Symlink(outside, filepath.Join(base, "rendered")); err != nil {
					t.Fatal(err)
				}
			},
			files:   files,
			wantErr: "is a symlink",
		},
		{
			name: "owned entry is a symlink",
			setup: func(t *testing.T, base, outside string) {
				write(t, filepath.Join(outside, "catalogs/x/catalogsource.yaml"), "outside")
				write(t, filepath.Join(base, "rendered/README.md"), "mine")
				if err := os.Symlink(filepath.Join(outside, "catalogs"), filepath.Join(base, "rendered/catalogs")); err != nil {
					t.Fatal(err)
				}
			},
			files:   files,
			wantErr: "is a symlink",
		},
		{
			name: "a file deep inside is a symlink",
			setup: func(t *testing.T, base, outside string) {
				write(t, filepath.Join(outside, "secret"), "outside")
				write(t, filepath.Join(base, "rendered/catalogs/a/configs/p/catalog.yaml"), "old")
				if err := os.Symlink(filepath.Join(outside, "secret"), filepath.Join(base, "rendered/catalogs/a/catalogsource.yaml")); err != nil {
					t.Fatal(err)
				}
			},
			files:   files,
			wantErr: "is a symlink",
		},
		{
			name: "a FIFO in an owned entry",
			setup: func(t *testing.T, base, outside string) {
				if err := os.MkdirAll(filepath.Join(base, "rendered/mirror"), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := syscall.Mkfifo(filepath.Join(base, "rendered/mirror/mapping.txt"), 0o644); err != nil {
					t.Fatal(err)
				}
			},
			files:   files,
			wantErr: "is not a regular file",
		},
		{
			name: "render directory is a file",
			setup: func(t *testing.T, base, outside string) {
				write(t, filepath.Join(base, "rendered"), "not a dir")
			},
			files:   files,
			wantErr: "is not a directory",
		},
		{
			name:    "a path leaving the directory",
			setup:   func(t *testing.T, base, outside string) {},
			files:   map[string][]byte{"catalogs/../../x": []byte("x")},
			wantErr: "not a clean relative path",
		},
		{
			name:    "a path outside the owned entries",
			setup:   func(t *testing.T, base, outside string) {},
			files:   map[string][]byte{"README.md": []byte("x")},
			wantErr: "outside the entries Ferry owns",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			base, outside := t.TempDir(), t.TempDir()
			tc.setup(t, base, outside)
			beforeBase, beforeOutside := tree(t, base), tree(t, outside)
			dir := filepath.Join(base, "rendered")
			err := Write(dir, tc.files)
			if !cmp.Equal(tree(t, outside), beforeOutside) {
				t.Errorf("the folder outside changed:\n%s", cmp.Diff(beforeOutside, tree(t, outside)))
			}
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				var unsafe *UnsafePathError
				if strings.Contains(tc.wantErr, "symlink") && !errors.As(err, &unsafe) {
					t.Errorf("error %T, want *UnsafePathError", err)
				}
				if diff := cmp.Diff(beforeBase, tree(t, base)); diff != "" {
					t.Errorf("a refused write changed the repository (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := tree(t, dir)
			for p, want := range tc.files {
				if got[filepath.FromSlash(p)] != string(want) {
					t.Errorf("%s: %q, want %q", p, got[p], want)
				}
			}
			var stale []string
			for p := range got {
				if filepath.Base(p) == "catalogsource.yaml" && got[p] == "old" {
					stale = append(stale, p)
				}
			}
			sort.Strings(stale)
			if len(stale) > 0 {
				t.Errorf("files of the previous render linger: %v", stale)
			}
			if beforeBase["rendered/README.md"] != "" && got["README.md"] != "mine" {
				t.Error("the user's file in the render directory was removed")
			}
		})
	}
}
