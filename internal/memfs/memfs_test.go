package memfs

import (
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

func TestFS(t *testing.T) {
	files := map[string][]byte{
		"a/catalog.yaml":        []byte("a"),
		"b/catalog.json":        []byte("bb"),
		"b/nested/deep/x.yaml":  []byte("x"),
		"top.yaml":              []byte("top"),
		"c/.indexignore":        []byte("*.md"),
		"c/README.md":           nil,
		"d/e/f/g/h/catalog.yml": []byte("h"),
	}
	f, err := New(files)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for p := range files {
		want = append(want, p)
	}
	if err := fstest.TestFS(f, want...); err != nil {
		t.Fatal(err)
	}
	// The same walk as fstest.MapFS, which the catalog code used before.
	m := fstest.MapFS{}
	for p, b := range files {
		m[p] = &fstest.MapFile{Data: b}
	}
	if diff := cmp.Diff(walk(t, m), walk(t, f)); diff != "" {
		t.Errorf("walk differs from fstest.MapFS (-MapFS +memfs):\n%s", diff)
	}
}

func TestNewRefusesBadTrees(t *testing.T) {
	for _, tc := range []struct {
		name  string
		files map[string][]byte
		want  string
	}{
		{"file and directory", map[string][]byte{"a": nil, "a/b": nil}, `"a" is a file and the directory of "a/b"`},
		{"absolute", map[string][]byte{"/etc/passwd": nil}, "not a valid path"},
		{"dot-dot", map[string][]byte{"../x": nil}, "not a valid path"},
		{"root", map[string][]byte{".": nil}, "not a valid path"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.files)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

func walk(t *testing.T, fsys fs.FS) []string {
	t.Helper()
	var out []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s dir=%v", p, d.IsDir()))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// BenchmarkWalkPackageDirs walks a catalog laid out one directory per
// package, as catalog images are: linear in the number of packages.
//
//	go test -run '^$' -bench WalkPackageDirs ./internal/memfs
func BenchmarkWalkPackageDirs(b *testing.B) {
	for _, n := range []int{10_000, 200_000} {
		files := make(map[string][]byte, n)
		for i := range n {
			files[fmt.Sprintf("pkg-%06d/catalog.json", i)] = []byte("{}")
		}
		f, err := New(files)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			for b.Loop() {
				count := 0
				_ = fs.WalkDir(f, ".", func(string, fs.DirEntry, error) error { count++; return nil })
				if count != 2*n+1 {
					b.Fatalf("walked %d entries, want %d", count, 2*n+1)
				}
			}
		})
	}
}
