package safefs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"slices"
	"strings"
	"syscall"
)

// DefaultMaxFileSize bounds a file read through a view whose Options leave
// MaxFileSize unset. It matches the per-file limit on catalog images
// (internal/catalogimage.DefaultLimits): the largest real FBC file, a whole
// catalog in one catalog.json, is a few hundred MB.
const DefaultMaxFileSize = 512 << 20

// Options says what a view allows.
type Options struct {
	// MaxFileSize bounds every file read; 0 means DefaultMaxFileSize.
	MaxFileSize int64
	// FollowSymlinks follows symbolic links whose target stays inside the
	// root (a link anywhere else is refused with ErrEscapes). Without it
	// every link on the way to a file, the view's own directory included,
	// is refused with ErrSymlink.
	FollowSymlinks bool
}

func (o Options) maxFileSize() int64 {
	if o.MaxFileSize > 0 {
		return o.MaxFileSize
	}
	return DefaultMaxFileSize
}

// The reasons a view refuses a path. They arrive wrapped in *fs.PathError;
// test with errors.Is.
var (
	// ErrSymlink: a symbolic link in a view that follows none.
	ErrSymlink = errors.New("is a symbolic link, and links are not followed here")
	// ErrEscapes: a symbolic link whose target is outside the root.
	ErrEscapes = errors.New("symbolic link leads outside the directory")
	// ErrNotRegular: a named pipe, device, socket or other special file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge: a file over the view's size limit.
	ErrTooLarge = errors.New("file too large")
)

// NotRegularError is ErrNotRegular with the kind of file found.
type NotRegularError struct{ Mode fs.FileMode }

func (e *NotRegularError) Error() string {
	return fmt.Sprintf("is a %s, not a regular file", DescribeMode(e.Mode))
}

// Is makes errors.Is(err, ErrNotRegular) hold.
func (e *NotRegularError) Is(target error) bool { return target == ErrNotRegular }

// TooLargeError is ErrTooLarge with the numbers. Size is -1 when the file
// grew past the limit while it was read.
type TooLargeError struct{ Size, Limit int64 }

func (e *TooLargeError) Error() string {
	if e.Size < 0 {
		return fmt.Sprintf("grew past the %s limit while being read", FormatSize(e.Limit))
	}
	return fmt.Sprintf("is %s, over the %s limit", FormatSize(e.Size), FormatSize(e.Limit))
}

// Is makes errors.Is(err, ErrTooLarge) hold.
func (e *TooLargeError) Is(target error) bool { return target == ErrTooLarge }

// DescribeMode names the kind of a non-regular file for messages.
func DescribeMode(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "block device"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeSymlink != 0:
		return "symbolic link"
	case m.IsDir():
		return "directory"
	}
	return "special file"
}

// FormatSize prints a byte count the way the limits are documented.
func FormatSize(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d bytes", n)
}

// FS is a read-only view of a directory tree. It implements fs.FS,
// fs.StatFS, fs.ReadDirFS, fs.ReadFileFS and fs.SubFS.
type FS struct {
	root   *os.Root
	owner  bool   // Close closes root (false for views made by Sub)
	prefix string // slash path of this view inside root; "" for the root
	opts   Options
}

var (
	_ fs.StatFS     = (*FS)(nil)
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.SubFS      = (*FS)(nil)
)

// Open returns a view of dir. The directory itself may be reached through
// a symbolic link (it is the caller's choice); everything under it obeys
// opts. Close releases it; a view that is never closed is released when
// it is garbage collected.
func Open(dir string, opts Options) (*FS, error) {
	r, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	return &FS{root: r, owner: true, opts: opts}, nil
}

// Close releases the directory. Views made by Sub share it and do nothing.
func (f *FS) Close() error {
	if !f.owner {
		return nil
	}
	return f.root.Close()
}

// Sub returns the view of dir, with the same rules. Without FollowSymlinks,
// dir itself must not be a link either: a render directory that is a link
// to elsewhere is refused, not read.
func (f *FS) Sub(dir string) (fs.FS, error) {
	full, err := f.resolve("sub", dir)
	if err != nil {
		return nil, err
	}
	if full == "." {
		full = ""
	}
	return &FS{root: f.root, prefix: full, opts: f.opts}, nil
}

// resolve validates name and returns its path inside root. Without
// FollowSymlinks every component from the root down is checked, the view's
// prefix included, so a link anywhere on the way is refused.
func (f *FS) resolve(op, name string) (string, error) {
	if !fs.ValidPath(name) {
		return "", &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	full := path.Join(f.prefix, name)
	if f.opts.FollowSymlinks || full == "." {
		return full, nil
	}
	parts := strings.Split(full, "/")
	for i := range parts {
		fi, err := f.root.Lstat(strings.Join(parts[:i+1], "/"))
		if err != nil {
			return "", translate(op, name, err)
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			where := name
			if i < len(parts)-1 || f.prefix != "" {
				where = strings.Join(parts[:i+1], "/")
			}
			return "", &fs.PathError{Op: op, Path: where, Err: ErrSymlink}
		}
	}
	return full, nil
}

// translate turns os.Root's errors into the package's: an escape through a
// link becomes ErrEscapes. os.Root does not export its escape error, so it
// is recognised by its text; TestEscapeIsRecognised fails if Go changes it.
func translate(op, name string, err error) error {
	inner := err
	var pe *fs.PathError
	if errors.As(err, &pe) {
		inner = pe.Err
	}
	if inner != nil && inner.Error() == "path escapes from parent" {
		inner = ErrEscapes
	}
	return &fs.PathError{Op: op, Path: name, Err: inner}
}

// Stat returns what name is, following links the view allows.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	full, err := f.resolve("stat", name)
	if err != nil {
		return nil, err
	}
	fi, err := f.root.Stat(full)
	if err != nil {
		return nil, translate("stat", name, err)
	}
	return fi, nil
}

// Open opens a directory or a regular file within the size limit; anything
// else is refused without being opened, so a FIFO cannot block.
func (f *FS) Open(name string) (fs.File, error) {
	full, err := f.resolve("open", name)
	if err != nil {
		return nil, err
	}
	fi, err := f.root.Stat(full)
	if err != nil {
		return nil, translate("open", name, err)
	}
	limit := f.opts.maxFileSize()
	switch {
	case fi.IsDir():
	case !fi.Mode().IsRegular():
		return nil, &fs.PathError{Op: "open", Path: name, Err: &NotRegularError{Mode: fi.Mode()}}
	case fi.Size() > limit:
		return nil, &fs.PathError{Op: "open", Path: name, Err: &TooLargeError{Size: fi.Size(), Limit: limit}}
	}
	// Non-blocking, so a FIFO swapped in since the Stat cannot block the
	// open either; the descriptor's own Stat below then refuses it.
	file, err := f.root.OpenFile(full, os.O_RDONLY|nonBlock, 0)
	if err != nil {
		return nil, translate("open", name, err)
	}
	st, err := file.Stat()
	if err != nil {
		file.Close()
		return nil, translate("open", name, err)
	}
	if st.IsDir() {
		return &dir{File: file}, nil
	}
	if !st.Mode().IsRegular() {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: &NotRegularError{Mode: st.Mode()}}
	}
	if st.Size() > limit {
		file.Close()
		return nil, &fs.PathError{Op: "open", Path: name, Err: &TooLargeError{Size: st.Size(), Limit: limit}}
	}
	return &regular{File: file, name: name, limit: limit}, nil
}

// ReadDir lists a directory, sorted by name as fs.ReadDirFS requires.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	d, ok := file.(fs.ReadDirFile)
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	entries, err := d.ReadDir(-1)
	slices.SortFunc(entries, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
	return entries, err
}

// ReadFile reads a regular file within the size limit.
func (f *FS) ReadFile(name string) ([]byte, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, err
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: syscall.EISDIR}
	}
	buf := make([]byte, 0, fi.Size()+1)
	for {
		n, err := file.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
		if len(buf) == cap(buf) {
			buf = slices.Grow(buf, 64<<10)
		}
	}
}

// dir is an open directory; os.File already implements fs.ReadDirFile.
type dir struct{ *os.File }

// regular is an open regular file that stops at the limit even if the file
// grows after it was opened.
type regular struct {
	*os.File
	name  string
	limit int64
	read  int64
}

func (f *regular) Read(p []byte) (int, error) {
	if int64(len(p)) > f.limit-f.read+1 {
		p = p[:f.limit-f.read+1]
	}
	n, err := f.File.Read(p)
	f.read += int64(n)
	if f.read > f.limit {
		return n - int(f.read-f.limit), &fs.PathError{Op: "read", Path: f.name, Err: &TooLargeError{Size: -1, Limit: f.limit}}
	}
	return n, err
}
