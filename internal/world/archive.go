package world

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
)

// maxArchiveFile bounds one extracted file; the largest real catalog.yaml is
// a few MiB, so anything near this is a broken or hostile archive.
const maxArchiveFile = 256 << 20

// ExtractTarGz unpacks a .tar.gz (such as testdata/fbc/large/*.tar.gz) into
// dir, refusing entries that would land outside it. Only directories and
// regular files are created.
func ExtractTarGz(r io.Reader, dir string) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return fmt.Errorf("extract: %w", err)
	}
	defer zr.Close()
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("extract: %w", err)
		}
		if slices.Contains(strings.Split(h.Name, "/"), "..") {
			return fmt.Errorf("extract: entry %q escapes the target directory", h.Name)
		}
		clean := path.Clean("/" + h.Name)
		if clean == "/" {
			continue
		}
		target := filepath.Join(dir, filepath.FromSlash(clean))
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(target, 0o755); err != nil {
				return fmt.Errorf("extract: %w", err)
			}
		case tar.TypeReg:
			if h.Size > maxArchiveFile {
				return fmt.Errorf("extract: entry %q is %d bytes, more than %d", h.Name, h.Size, maxArchiveFile)
			}
			if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
				return fmt.Errorf("extract: %w", err)
			}
			f, err := os.OpenFile(target, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
			if err != nil {
				return fmt.Errorf("extract: %w", err)
			}
			_, err = io.Copy(f, io.LimitReader(tr, maxArchiveFile))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return fmt.Errorf("extract %q: %w", h.Name, err)
			}
		default:
			// Links and devices have no place in a catalog archive.
		}
	}
}

// OpenCatalogArchive extracts the .tar.gz at file into dir and returns the
// catalog root inside it: the archives under testdata/fbc/large hold
// catalogs/v4.XX/<package>/catalog.yaml, and Build wants the directory whose
// children are packages. The root is found by descending while a directory
// holds exactly one sub-directory and no files.
func OpenCatalogArchive(file, dir string) (fs.FS, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if err := ExtractTarGz(f, dir); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	root := dir
	for {
		ents, err := os.ReadDir(root)
		if err != nil {
			return nil, err
		}
		if len(ents) != 1 || !ents[0].IsDir() {
			break
		}
		// Stop above a package directory: one holding catalog files.
		sub := filepath.Join(root, ents[0].Name())
		subEnts, err := os.ReadDir(sub)
		if err != nil {
			return nil, err
		}
		if hasCatalogFile(subEnts) {
			break
		}
		root = sub
	}
	return os.DirFS(root), nil
}

func hasCatalogFile(ents []os.DirEntry) bool {
	for _, e := range ents {
		if !e.IsDir() {
			switch path.Ext(e.Name()) {
			case ".json", ".yaml", ".yml":
				return true
			}
		}
	}
	return false
}
