package airgap

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// archive reads an archive in place: a layout directory, or a tar of one
// whose members are located by a scan of the tar headers and read with
// io.SectionReader, so a tar is never extracted and a blob is never held
// in memory.
type archive struct {
	path string
	dir  string          // a directory archive
	f    *os.File        // a tar archive
	size int64           // of the tar file
	mem  map[string]span // tar members
}

// span is where a tar member's data lies in the file.
type span struct{ off, size int64 }

func openArchive(p string) (*archive, error) {
	fi, err := os.Stat(p)
	if err != nil {
		return nil, err
	}
	if fi.IsDir() {
		return &archive{path: p, dir: p}, nil
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, err
	}
	a := &archive{path: p, f: f, size: fi.Size(), mem: map[string]span{}}
	if err := a.scan(); err != nil {
		f.Close()
		return nil, &ArchiveError{Path: p, Problems: []Problem{{Reason: err.Error()}}}
	}
	return a, nil
}

// scan indexes the tar's members. tar.Reader skips member data with Seek
// when the reader can, so scanning reads only the headers; the data of the
// member Next returned starts at the file's current offset.
func (a *archive) scan() error {
	tr := tar.NewReader(a.f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("not a readable tar archive (truncated?): %w", err)
		}
		off, err := a.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		n := memberName(h.Name)
		switch h.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			if n == RecordFile || n == "index.json" || n == "oci-layout" || strings.HasPrefix(n, "blobs/") || strings.HasPrefix(n, FilesPrefix) {
				return fmt.Errorf("%s: not a regular file in the tar", n)
			}
			continue
		}
		if _, dup := a.mem[n]; dup {
			return fmt.Errorf("%s: twice in the tar", n)
		}
		if off+h.Size > a.size {
			return fmt.Errorf("%s: truncated: its %d bytes end past the end of the file", n, h.Size)
		}
		a.mem[n] = span{off: off, size: h.Size}
	}
	return nil
}

// memberName normalises "./blobs/x" and "blobs/x" alike.
func memberName(n string) string {
	return strings.TrimPrefix(path.Clean("/"+n), "/")
}

// member is one file of an archive.
type member struct {
	*io.SectionReader
	close func() error
}

func (m member) Close() error { return m.close() }

// open opens a member by its slash-separated name; fs.ErrNotExist when the
// archive has none.
func (a *archive) open(name string) (member, error) {
	if a.f != nil {
		s, ok := a.mem[name]
		if !ok {
			return member{}, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
		}
		return member{SectionReader: io.NewSectionReader(a.f, s.off, s.size), close: func() error { return nil }}, nil
	}
	f, err := os.Open(filepath.Join(a.dir, filepath.FromSlash(name)))
	if err != nil {
		return member{}, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		f.Close()
		return member{}, fmt.Errorf("%s: not a regular file", name)
	}
	return member{SectionReader: io.NewSectionReader(f, 0, fi.Size()), close: f.Close}, nil
}

// readSmall reads a member expected to be small (index.json, a record, a
// manifest), refusing one larger than limit.
func (a *archive) readSmall(name string, limit int64) ([]byte, error) {
	m, err := a.open(name)
	if err != nil {
		return nil, err
	}
	defer m.Close()
	if m.Size() > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d expected", name, m.Size(), limit)
	}
	return io.ReadAll(m)
}

// recordLimit bounds a record read into memory: a record lists every
// digest carried, some hundred bytes each.
const recordLimit = 1 << 30

func (a *archive) record() (*Record, error) {
	m, err := a.open(RecordFile)
	if err != nil {
		return nil, &ArchiveError{Path: a.path, Problems: []Problem{{File: RecordFile, Reason: "missing: not a Ferry archive, or an export that did not finish"}}}
	}
	defer m.Close()
	rec, err := decodeRecord(io.LimitReader(m, recordLimit))
	if err != nil {
		return nil, &ArchiveError{Path: a.path, Problems: []Problem{{File: RecordFile, Reason: err.Error()}}}
	}
	return rec, nil
}

func (a *archive) Close() error {
	if a.f != nil {
		return a.f.Close()
	}
	return nil
}

func blobName(digest string) string {
	algo, hex, _ := strings.Cut(digest, ":")
	return "blobs/" + algo + "/" + hex
}
