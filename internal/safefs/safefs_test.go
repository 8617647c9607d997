package safefs

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
)

// tree builds, under a temporary directory, a root with every kind of entry
// a hostile repository can hold, and a sibling directory outside it.
func tree(t *testing.T) string {
	t.Helper()
	top := t.TempDir()
	root := filepath.Join(top, "root")
	outside := filepath.Join(top, "outside")
	for _, d := range []string{root, outside, filepath.Join(root, "sub"), filepath.Join(root, "rendered")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	link := func(target, p string) {
		if err := os.Symlink(target, filepath.Join(root, p)); err != nil {
			t.Fatal(err)
		}
	}
	write(filepath.Join(root, "a.yaml"), "a: 1\n")
	write(filepath.Join(root, "big.yaml"), strings.Repeat("x", 100))
	write(filepath.Join(root, "sub", "b.yaml"), "b: 2\n")
	write(filepath.Join(root, "rendered", "ferry.lock.yaml"), "lock\n")
	write(filepath.Join(outside, "secret"), "password\n")
	if err := syscall.Mkfifo(filepath.Join(root, "fifo.yaml"), 0o644); err != nil {
		t.Fatal(err)
	}
	link("a.yaml", "in.yaml")
	link("sub", "linkdir")
	link("sub/b.yaml", "sub-link.yaml")
	link("../outside/secret", "out.yaml")
	link(outside, "outdir")
	link(filepath.Join(outside, "secret"), "abs.yaml")
	link("/dev/zero", "zero.yaml")
	link("loop2", "loop1")
	link("loop1", "loop2")
	link("nope", "dangling.yaml")
	link(outside, "rendered-elsewhere")
	return root
}

func TestReadFile(t *testing.T) {
	root := tree(t)
	for _, tc := range []struct {
		name   string
		follow bool
		want   string // content, or
		err    error  // an error that errors.Is matches
	}{
		{"a.yaml", false, "a: 1\n", nil},
		{"sub/b.yaml", false, "b: 2\n", nil},
		{"big.yaml", false, "", ErrTooLarge},
		{"fifo.yaml", false, "", ErrNotRegular},
		{"fifo.yaml", true, "", ErrNotRegular},
		{"in.yaml", false, "", ErrSymlink},
		{"in.yaml", true, "a: 1\n", nil},
		{"sub-link.yaml", true, "b: 2\n", nil},
		{"linkdir/b.yaml", false, "", ErrSymlink},
		{"linkdir/b.yaml", true, "b: 2\n", nil},
		{"out.yaml", false, "", ErrSymlink},
		{"out.yaml", true, "", ErrEscapes},
		{"outdir/secret", true, "", ErrEscapes},
		{"abs.yaml", true, "", ErrEscapes},
		{"zero.yaml", false, "", ErrSymlink},
		{"zero.yaml", true, "", ErrEscapes},
		{"loop1", true, "", syscall.ELOOP},
		{"dangling.yaml", true, "", fs.ErrNotExist},
		{"missing.yaml", false, "", fs.ErrNotExist},
		{"../outside/secret", true, "", fs.ErrInvalid},
		{"/etc/passwd", true, "", fs.ErrInvalid},
		{"sub", false, "", syscall.EISDIR},
	} {
		f, err := Open(root, Options{MaxFileSize: 50, FollowSymlinks: tc.follow})
		if err != nil {
			t.Fatal(err)
		}
		got, err := fs.ReadFile(f, tc.name)
		f.Close()
		switch {
		case tc.err == nil && err != nil:
			t.Errorf("%s (follow %v): %v", tc.name, tc.follow, err)
		case tc.err == nil && string(got) != tc.want:
			t.Errorf("%s (follow %v) = %q, want %q", tc.name, tc.follow, got, tc.want)
		case tc.err != nil && !errors.Is(err, tc.err):
			t.Errorf("%s (follow %v): got %v (%q), want %v", tc.name, tc.follow, err, got, tc.err)
		case tc.err != nil && strings.Contains(string(got), "password"):
			t.Errorf("%s: read outside the root", tc.name)
		}
	}
}

// TestSub covers the render directory: a view that follows no link must
// refuse a render directory that is itself a link, before reading anything.
func TestSub(t *testing.T) {
	root := tree(t)
	f, err := Open(root, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sub, err := fs.Sub(f, "rendered")
	if err != nil {
		t.Fatal(err)
	}
	if b, err := fs.ReadFile(sub, "ferry.lock.yaml"); err != nil || string(b) != "lock\n" {
		t.Errorf("read through Sub: %q, %v", b, err)
	}
	if _, err := fs.Sub(f, "rendered-elsewhere"); !errors.Is(err, ErrSymlink) {
		t.Errorf("Sub of a linked directory: %v, want ErrSymlink", err)
	} else if !strings.Contains(err.Error(), "rendered-elsewhere") {
		t.Errorf("error does not name the link: %v", err)
	}
	// The same view following links still refuses the escape.
	g, err := Open(root, Options{FollowSymlinks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	sub, err = fs.Sub(g, "rendered-elsewhere")
	if err == nil {
		_, err = fs.ReadFile(sub, "secret")
	}
	if !errors.Is(err, ErrEscapes) {
		t.Errorf("read through a linked Sub: %v, want ErrEscapes", err)
	}
}

// TestWalk checks that WalkDir sees links and special files for what they
// are, and that the view passes the standard file system checks.
func TestWalk(t *testing.T) {
	root := tree(t)
	f, err := Open(root, Options{FollowSymlinks: true})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	types := map[string]fs.FileMode{}
	err = fs.WalkDir(f, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		types[p] = d.Type()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if types["fifo.yaml"]&fs.ModeNamedPipe == 0 || types["zero.yaml"]&fs.ModeSymlink == 0 || types["linkdir"]&fs.ModeSymlink == 0 {
		t.Errorf("entry types: %v", types)
	}
	if _, ok := types["linkdir/b.yaml"]; ok {
		t.Error("WalkDir descended into a linked directory")
	}
	clean, err := Open(filepath.Join(root, "sub"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer clean.Close()
	if err := fstest.TestFS(clean, "b.yaml"); err != nil {
		t.Error(err)
	}
}

// TestGrowingFile: a file that grows past the limit after it was opened
// stops at the limit.
func TestGrowingFile(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "grow.yaml")
	if err := os.WriteFile(p, []byte("0123456789"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := Open(dir, Options{MaxFileSize: 20})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	file, err := f.Open("grow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	w, err := os.OpenFile(p, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte(strings.Repeat("x", 100)))
	w.Close()
	b, err := io.ReadAll(file)
	if !errors.Is(err, ErrTooLarge) || len(b) != 20 {
		t.Errorf("read %d bytes, err %v; want 20 and ErrTooLarge", len(b), err)
	}
}

// TestDevice reads a character device inside the root, where the kernel
// allows creating one (root, not in a user namespace).
func TestDevice(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "null.yaml")
	if err := syscall.Mknod(p, syscall.S_IFCHR|0o644, 1<<8|3); err != nil { // /dev/null is 1:3
		t.Skipf("cannot create a device node here: %v", err)
	}
	f, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = fs.ReadFile(f, "null.yaml")
	if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), "character device") {
		t.Errorf("got %v, want a character device refused", err)
	}
}

// TestEscapeIsRecognised guards translate: os.Root's escape error has no
// exported sentinel, so its text is matched; a Go release that changes it
// fails here rather than turning escapes into generic errors.
func TestEscapeIsRecognised(t *testing.T) {
	root := tree(t)
	r, err := os.OpenRoot(root)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	_, err = r.Open("out.yaml")
	if !errors.Is(translate("open", "out.yaml", err), ErrEscapes) {
		t.Fatalf("os.Root's escape error %q is no longer recognised", err)
	}
}

func TestFormatSize(t *testing.T) {
	for n, want := range map[int64]string{12: "12 bytes", 1536: "1.5 KiB", 1 << 20: "1 MiB", 3<<20 + 1<<19: "3.5 MiB"} {
		if got := FormatSize(n); got != want {
			t.Errorf("FormatSize(%d) = %q, want %q", n, got, want)
		}
	}
}
