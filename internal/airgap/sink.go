package airgap

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// sink is where an export writes: a layout directory, or a tar file.
// Uploads are staged as files in stageDir and committed once their digest
// is verified, so nothing unverified ever becomes part of an archive.
type sink interface {
	// stageDir is a directory on the archive's file system for uploads.
	stageDir() string
	// commit moves a verified staged file into the archive as name.
	commit(name, staged string, size int64) error
	// write puts small content into the archive as name.
	write(name string, b []byte) error
	// existing reports a blob left in a directory by an export that did
	// not finish; the caller verifies it before using it.
	existing(name string) (string, bool)
	// finish makes the archive complete; keep says which blobs/ members
	// belong to it (leftovers of an unfinished export do not).
	finish(keep func(name string) bool) error
	// abort gives up, keeping in a directory the blobs already verified.
	abort()
}

const (
	ociLayout     = `{"imageLayoutVersion":"1.0.0"}`
	stagePrefix   = ".ferry-staging"
	tarPartialExt = ".partial"
)

func newSink(path string, created time.Time) (sink, error) {
	if isTar(path) {
		return newTarSink(path, created)
	}
	return newDirSink(path)
}

// dirSink writes an OCI layout directory. The record is its completion
// mark: a directory with oci-layout but no record is an export that did not
// finish, and exporting into it again reuses the blobs it verified.
type dirSink struct {
	dir, stage string
}

func newDirSink(dir string) (*dirSink, error) {
	ents, err := os.ReadDir(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return nil, err
	case len(ents) > 0:
		if _, err := os.Stat(filepath.Join(dir, RecordFile)); err == nil {
			return nil, fmt.Errorf("%s holds a finished archive already; export into a new directory", dir)
		}
		if _, err := os.Stat(filepath.Join(dir, "oci-layout")); err != nil {
			return nil, fmt.Errorf("%s is not empty and not an unfinished export; export into a new directory", dir)
		}
	}
	s := &dirSink{dir: dir, stage: filepath.Join(dir, stagePrefix)}
	if err := os.MkdirAll(s.stage, 0o755); err != nil {
		return nil, err
	}
	if err := s.write("oci-layout", []byte(ociLayout)); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *dirSink) stageDir() string { return s.stage }

func (s *dirSink) commit(name, staged string, _ int64) error {
	dst := filepath.Join(s.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	return os.Rename(staged, dst)
}

func (s *dirSink) write(name string, b []byte) error {
	f, err := os.CreateTemp(s.stage, "write-")
	if err != nil {
		return err
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return err
	}
	return s.commit(name, f.Name(), int64(len(b)))
}

func (s *dirSink) existing(name string) (string, bool) {
	p := filepath.Join(s.dir, filepath.FromSlash(name))
	fi, err := os.Stat(p)
	return p, err == nil && fi.Mode().IsRegular()
}

func (s *dirSink) finish(keep func(string) bool) error {
	root := filepath.Join(s.dir, "blobs")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(s.dir, p)
		if err != nil {
			return err
		}
		if !keep(filepath.ToSlash(rel)) {
			return os.Remove(p)
		}
		return nil
	})
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return os.RemoveAll(s.stage)
}

func (s *dirSink) abort() { os.RemoveAll(s.stage) }

// tarSink writes a tar file. Uploads land in a staging directory next to
// it and are appended, one at a time, as soon as each is verified, so the
// disk holds the archive plus the blobs in flight, never the archive
// twice. The tar is written as path+".partial" and renamed when complete.
type tarSink struct {
	path, stage string
	mtime       time.Time

	mu sync.Mutex
	f  *os.File
	tw *tar.Writer
}

func newTarSink(path string, created time.Time) (*tarSink, error) {
	if _, err := os.Stat(path); err == nil {
		return nil, fmt.Errorf("%s exists already; export into a new file", path)
	}
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	stage, err := os.MkdirTemp(dir, stagePrefix+"-")
	if err != nil {
		return nil, err
	}
	f, err := os.Create(path + tarPartialExt)
	if err != nil {
		os.RemoveAll(stage)
		return nil, err
	}
	s := &tarSink{path: path, stage: stage, mtime: created.Truncate(time.Second), f: f, tw: tar.NewWriter(f)}
	if err := s.write("oci-layout", []byte(ociLayout)); err != nil {
		s.abort()
		return nil, err
	}
	return s, nil
}

func (s *tarSink) stageDir() string { return s.stage }

func (s *tarSink) header(name string, size int64) *tar.Header {
	return &tar.Header{Typeflag: tar.TypeReg, Name: name, Size: size, Mode: 0o644, ModTime: s.mtime}
}

func (s *tarSink) commit(name, staged string, size int64) error {
	defer os.Remove(staged)
	f, err := os.Open(staged)
	if err != nil {
		return err
	}
	defer f.Close()
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.tw.WriteHeader(s.header(name, size)); err != nil {
		return err
	}
	// A short copy leaves the tar writer refusing everything after, so
	// the export fails rather than write a broken archive.
	_, err = io.Copy(s.tw, f)
	return err
}

func (s *tarSink) write(name string, b []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.tw.WriteHeader(s.header(name, int64(len(b)))); err != nil {
		return err
	}
	_, err := s.tw.Write(b)
	return err
}

func (s *tarSink) existing(string) (string, bool) { return "", false }

func (s *tarSink) finish(func(string) bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.tw.Close()
	if err == nil {
		err = s.f.Sync()
	}
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	os.RemoveAll(s.stage)
	if err == nil {
		err = os.Rename(s.path+tarPartialExt, s.path)
	}
	if err != nil {
		os.Remove(s.path + tarPartialExt)
	}
	return err
}

func (s *tarSink) abort() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.f.Close()
	os.Remove(s.path + tarPartialExt)
	os.RemoveAll(s.stage)
}
