package fbc

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// The benchmarks run on the two catalogs of the acceptance target
// (certified-operators and community-operators-prod, v4.20). hack/bench-fbc.sh
// compares the whole program with opm; these isolate the phases.

func benchCatalogs(b *testing.B) []largeCatalog {
	var out []largeCatalog
	for _, lc := range largeCatalogs(b) {
		if filepath.Base(lc.Dir) == "v4.20" {
			out = append(out, lc)
		}
	}
	return out
}

func dirSize(b *testing.B, dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func BenchmarkLoadFS(b *testing.B) {
	for _, lc := range benchCatalogs(b) {
		b.Run(lc.Name, func(b *testing.B) {
			fsys := os.DirFS(lc.Dir)
			b.SetBytes(dirSize(b, lc.Dir))
			b.ReportAllocs()
			for b.Loop() {
				if _, err := LoadFS(context.Background(), fsys); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWrite(b *testing.B) {
	for _, lc := range benchCatalogs(b) {
		cfg := mustLoadDir(b, lc.Dir)
		for _, f := range []struct {
			name  string
			write func(io.Writer, *DeclarativeConfig) error
		}{{"yaml", WriteYAML}, {"json", WriteJSON}} {
			b.Run(lc.Name+"/"+f.name, func(b *testing.B) {
				b.SetBytes(dirSize(b, lc.Dir))
				b.ReportAllocs()
				for b.Loop() {
					if err := f.write(io.Discard, cfg); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkPipeline is the acceptance scenario in-process: load, filter,
// WriteDir (YAML).
func BenchmarkPipeline(b *testing.B) {
	for _, lc := range benchCatalogs(b) {
		b.Run(lc.Name, func(b *testing.B) {
			fsys := os.DirFS(lc.Dir)
			out := b.TempDir()
			b.SetBytes(dirSize(b, lc.Dir))
			b.ReportAllocs()
			for b.Loop() {
				cfg, err := LoadFS(context.Background(), fsys)
				if err != nil {
					b.Fatal(err)
				}
				cfg = filterPackages(cfg, func(string) bool { return true })
				if err := WriteDir(context.Background(), out, cfg, DefaultWriteOptions()); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkValidate(b *testing.B) {
	for _, lc := range benchCatalogs(b) {
		cfg := mustLoadDir(b, lc.Dir)
		b.Run(lc.Name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := Validate(cfg); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
