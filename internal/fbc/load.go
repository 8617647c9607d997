package fbc

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// maxLoadErrors caps how many broken files one LoadFS error lists.
const maxLoadErrors = 20

// LoadFS loads the file-based catalog rooted at fsys: every .json, .yaml and
// .yml file below the root that no .indexignore excludes, each a stream of
// JSON values or of "---"-separated YAML documents, one blob per document.
//
// Blobs are read as opm reads them: property values and blobs of other
// schemas keep their JSON (compact, keys sorted, as opm holds them), blob
// keys are matched without regard to case like encoding/json, and a blob
// without a schema is an error. Unlike opm, files with other extensions
// (README.md, Dockerfile) are skipped rather than rejected.
//
// Files are parsed concurrently (GOMAXPROCS at a time) but the result does
// not depend on it: blobs are in file-walk order, then document order. On
// failure LoadFS parses every file and returns the problems of all broken
// files (up to 20), each a *ParseError naming the file and line.
func LoadFS(ctx context.Context, fsys fs.FS) (*DeclarativeConfig, error) {
	if fsys == nil {
		return nil, errors.New("load catalog: no file system")
	}
	files, sizes, err := catalogFiles(fsys)
	if err != nil {
		return nil, fmt.Errorf("load catalog: %w", err)
	}
	// Parse the biggest files first so that no worker is left with a big
	// one at the end; results still go to their place in walk order.
	order := largestFirst(sizes)

	results := make([]blobs, len(files))
	errs := make([]error, len(files))
	var next atomic.Int64
	workers := min(runtime.GOMAXPROCS(0), len(files))
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sc := getScratch()
			defer putScratch(sc)
			var d decoder
			d.use(sc)
			defer d.keep(sc)
			for {
				k := int(next.Add(1) - 1)
				if k >= len(files) || ctx.Err() != nil {
					return
				}
				i := order[k]
				errs[i] = d.loadFile(fsys, files[i], sc, &results[i])
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	var failed []error
	for _, err := range errs {
		if err != nil {
			failed = append(failed, err)
		}
	}
	switch {
	case len(failed) == 1:
		return nil, failed[0]
	case len(failed) > maxLoadErrors:
		failed = append(failed[:maxLoadErrors], fmt.Errorf("and %d more broken files", len(failed)-maxLoadErrors))
		fallthrough
	case len(failed) > 1:
		return nil, errors.Join(failed...)
	}
	return merge(results), nil
}

// LoadReader loads one stream (a single catalog file's content).
func LoadReader(r io.Reader) (*DeclarativeConfig, error) {
	var d decoder
	var out blobs
	sc := getScratch()
	d.use(sc)
	defer putScratch(sc)
	defer d.keep(sc)
	var s docStream
	s.reset(r, sc.a)
	defer func() { sc.a = s.buf[:0] }()
	if derr := d.parseStream(&s, &out); derr != nil {
		return nil, &ParseError{File: "<stream>", Line: derr.line, Err: derr.err}
	}
	return merge([]blobs{out}), nil
}

// largestFirst returns the indexes of sizes, biggest first.
func largestFirst(sizes []int64) []int {
	order := make([]int, len(sizes))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(sizes[b], sizes[a]) })
	return order
}

// catalogFiles lists the files LoadFS reads, in fs.WalkDir order, with
// their sizes (0 when unknown).
func catalogFiles(fsys fs.FS) (files []string, sizes []int64, err error) {
	var ignore ignoreMatcher
	var all []int64
	err = fs.WalkDir(fsys, ".", func(name string, de fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if de.IsDir() {
			return nil
		}
		if de.Name() == indexIgnore {
			return ignore.addFile(fsys, name)
		}
		switch strings.ToLower(path.Ext(name)) {
		case ".json", ".yaml", ".yml":
			files = append(files, name)
			var size int64
			if info, err := de.Info(); err == nil {
				size = info.Size()
			}
			all = append(all, size)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	kept := files[:0]
	for i, f := range files {
		if !ignore.ignored(f) {
			kept = append(kept, f)
			sizes = append(sizes, all[i])
		}
	}
	return kept, sizes, nil
}

// loadFile parses one file into out, streaming it through the scratch
// buffer.
func (d *decoder) loadFile(fsys fs.FS, name string, sc *scratch, out *blobs) error {
	f, err := fsys.Open(name)
	if err != nil {
		return &ParseError{File: name, Err: err}
	}
	defer f.Close()
	var s docStream
	s.reset(f, sc.a)
	derr := d.parseStream(&s, out)
	sc.a = s.buf[:0]
	if derr != nil {
		return &ParseError{File: name, Line: derr.line, Err: derr.err}
	}
	return nil
}

// merge concatenates per-file results in file order.
func merge(results []blobs) *DeclarativeConfig {
	var n blobs
	var np, nc, nb, nd, no int
	for i := range results {
		np += len(results[i].Packages)
		nc += len(results[i].Channels)
		nb += len(results[i].Bundles)
		nd += len(results[i].Deprecations)
		no += len(results[i].Others)
	}
	n.Packages = make([]Package, 0, np)
	n.Channels = make([]Channel, 0, nc)
	n.Bundles = make([]Bundle, 0, nb)
	n.Deprecations = make([]Deprecation, 0, nd)
	n.Others = make([]Meta, 0, no)
	for i := range results {
		n.add(&results[i])
		results[i] = blobs{}
	}
	cfg := &DeclarativeConfig{
		Packages:     n.Packages,
		Channels:     n.Channels,
		Bundles:      n.Bundles,
		Deprecations: n.Deprecations,
		Others:       n.Others,
	}
	// Empty lists stay nil, as opm's loader leaves them.
	if np == 0 {
		cfg.Packages = nil
	}
	if nc == 0 {
		cfg.Channels = nil
	}
	if nb == 0 {
		cfg.Bundles = nil
	}
	if nd == 0 {
		cfg.Deprecations = nil
	}
	if no == 0 {
		cfg.Others = nil
	}
	return cfg
}
