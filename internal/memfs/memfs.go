// Package memfs is an in-memory fs.FS for a tree of files known up front,
// such as a rendered catalog on its way into an image.
//
// testing/fstest.MapFS, the usual choice, finds a directory's entries by
// scanning every path of the map on each directory it opens: walking a
// catalog of n packages, each in its own directory, costs n² (200,000
// package directories did not finish in 25 minutes). FS builds its
// directory index once, so a walk is linear in the number of files.
package memfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"time"
)

// FS is a read-only tree of files held in memory. It implements fs.FS,
// fs.ReadDirFS, fs.ReadFileFS and fs.StatFS.
type FS struct {
	files map[string][]byte
	dirs  map[string][]fs.DirEntry // sorted by name; "." is the root
}

var (
	_ fs.ReadDirFS  = (*FS)(nil)
	_ fs.ReadFileFS = (*FS)(nil)
	_ fs.StatFS     = (*FS)(nil)
)

// New builds an FS from slash-separated paths (fs.ValidPath) to contents.
// The contents are not copied. A path that is both a file and a directory
// is an error.
func New(files map[string][]byte) (*FS, error) {
	f := &FS{files: make(map[string][]byte, len(files)), dirs: map[string][]fs.DirEntry{".": nil}}
	var bad []string
	for p, data := range files {
		if !fs.ValidPath(p) || p == "." {
			bad = append(bad, fmt.Sprintf("%q is not a valid path", p))
			continue
		}
		f.files[p] = data
	}
	for p, data := range f.files {
		child := entry{name: path.Base(p), size: int64(len(data))}
		for dir := path.Dir(p); ; dir = path.Dir(dir) {
			if _, isFile := f.files[dir]; isFile {
				bad = append(bad, fmt.Sprintf("%q is a file and the directory of %q", dir, p))
				break
			}
			_, known := f.dirs[dir]
			f.dirs[dir] = append(f.dirs[dir], child)
			if known || dir == "." {
				break
			}
			child = entry{name: path.Base(dir), dir: true}
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return nil, errors.New("memfs: " + strings.Join(bad, "; "))
	}
	for d, es := range f.dirs {
		slices.SortFunc(es, func(a, b fs.DirEntry) int { return strings.Compare(a.Name(), b.Name()) })
		f.dirs[d] = es
	}
	return f, nil
}

// Open implements fs.FS.
func (f *FS) Open(name string) (fs.File, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrInvalid}
	}
	if data, ok := f.files[name]; ok {
		return &openFile{entry: entry{name: path.Base(name), size: int64(len(data))}, data: data}, nil
	}
	if es, ok := f.dirs[name]; ok {
		return &openDir{entry: entry{name: path.Base(name), dir: true}, entries: es}, nil
	}
	return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
}

// ReadDir implements fs.ReadDirFS.
func (f *FS) ReadDir(name string) ([]fs.DirEntry, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrInvalid}
	}
	es, ok := f.dirs[name]
	if !ok {
		if _, isFile := f.files[name]; isFile {
			return nil, &fs.PathError{Op: "readdir", Path: name, Err: errors.New("not a directory")}
		}
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(es), nil
}

// ReadFile implements fs.ReadFileFS.
func (f *FS) ReadFile(name string) ([]byte, error) {
	if !fs.ValidPath(name) {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrInvalid}
	}
	data, ok := f.files[name]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fs.ErrNotExist}
	}
	return slices.Clone(data), nil
}

// Stat implements fs.StatFS.
func (f *FS) Stat(name string) (fs.FileInfo, error) {
	file, err := f.Open(name)
	if err != nil {
		return nil, &fs.PathError{Op: "stat", Path: name, Err: err.(*fs.PathError).Err}
	}
	return file.Stat()
}

// entry is both the fs.DirEntry and the fs.FileInfo of a file or directory.
type entry struct {
	name string
	size int64
	dir  bool
}

func (e entry) Name() string { return e.name }
func (e entry) Size() int64  { return e.size }
func (e entry) IsDir() bool  { return e.dir }
func (e entry) Mode() fs.FileMode {
	if e.dir {
		return fs.ModeDir | 0o755
	}
	return 0o644
}
func (e entry) Type() fs.FileMode          { return e.Mode().Type() }
func (e entry) ModTime() time.Time         { return time.Time{} }
func (e entry) Sys() any                   { return nil }
func (e entry) Info() (fs.FileInfo, error) { return e, nil }

type openFile struct {
	entry
	data []byte
	off  int
}

func (f *openFile) Stat() (fs.FileInfo, error) { return f.entry, nil }
func (f *openFile) Close() error               { return nil }
func (f *openFile) Read(p []byte) (int, error) {
	if f.off >= len(f.data) {
		return 0, io.EOF
	}
	n := copy(p, f.data[f.off:])
	f.off += n
	return n, nil
}

type openDir struct {
	entry
	entries []fs.DirEntry
	off     int
}

func (d *openDir) Stat() (fs.FileInfo, error) { return d.entry, nil }
func (d *openDir) Close() error               { return nil }
func (d *openDir) Read([]byte) (int, error) {
	return 0, &fs.PathError{Op: "read", Path: d.name, Err: errors.New("is a directory")}
}

// ReadDir implements fs.ReadDirFile.
func (d *openDir) ReadDir(n int) ([]fs.DirEntry, error) {
	rest := d.entries[d.off:]
	if n <= 0 {
		d.off = len(d.entries)
		return slices.Clone(rest), nil
	}
	if len(rest) == 0 {
		return nil, io.EOF
	}
	n = min(n, len(rest))
	d.off += n
	return slices.Clone(rest[:n]), nil
}
