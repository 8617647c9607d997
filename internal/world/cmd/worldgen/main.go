// Command worldgen pushes a synthetic source registry built from a real
// file-based catalog, for `make demo`, manual end-to-end runs and
// benchmarks:
//
//	worldgen -registry 127.0.0.1:5000 -catalog testdata/fbc/small/community-operators-prod/v4.20
//	worldgen -registry 127.0.0.1:5000 -archive testdata/fbc/large/certified-operators-catalogs-v4.20.tar.gz
//	worldgen -registry 127.0.0.1:5000 -catalog DIR -sqlite -catalog-repo legacy/index
//
// It prints the world (catalog references, counts, timing) as JSON on
// stdout; -images also lists every pushed reference.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-gitops/ferry/internal/world"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "worldgen:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	d := world.DefaultOptions("")
	fl := flag.NewFlagSet("worldgen", flag.ContinueOnError)
	var (
		registry   = fl.String("registry", "", "registry host[:port] to push to (required)")
		catalogDir = fl.String("catalog", "", "FBC directory (one sub-directory per package)")
		archive    = fl.String("archive", "", "catalog .tar.gz to extract and use instead of -catalog")
		sqlite     = fl.Bool("sqlite", false, "push a SQLite index image instead of an FBC image")
		listImages = fl.Bool("images", false, "list every pushed image reference")
		platforms  = fl.String("catalog-platforms", "linux/amd64", "comma-separated platforms of the catalog image")
		verbose    = fl.Bool("v", false, "log progress to stderr")
	)
	o := d
	fl.StringVar(&o.Prefix, "prefix", "", "repository namespace below the registry")
	fl.BoolVar(&o.Insecure, "insecure", false, "plain HTTP even for non-loopback registries")
	fl.Int64Var(&o.Seed, "seed", d.Seed, "world seed")
	fl.IntVar(&o.BaseLayers, "base-layers", d.BaseLayers, "shared base layers per platform")
	fl.Int64Var(&o.BaseLayerSize, "base-layer-size", d.BaseLayerSize, "bytes per base layer")
	fl.Int64Var(&o.LayerSize, "layer-size", d.LayerSize, "bytes of each image's unique layer")
	fl.IntVar(&o.MultiArchEvery, "multi-arch-every", d.MultiArchEvery, "one image in N is multi-arch (0: none)")
	fl.StringVar(&o.CatalogRepository, "catalog-repo", d.CatalogRepository, "catalog image repository")
	fl.StringVar(&o.CatalogTag, "catalog-tag", d.CatalogTag, "catalog image tag")
	format := fl.String("format", string(d.CatalogFormat), "catalog file format: yaml or json")
	fl.IntVar(&o.Concurrency, "concurrency", d.Concurrency, "concurrent pushes")
	if err := fl.Parse(args); err != nil {
		return err
	}
	o.Registry = *registry
	if *verbose {
		o.Log = slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	o.CatalogFormat = world.Format(*format)
	o.CatalogPlatforms = nil
	for _, p := range strings.Split(*platforms, ",") {
		pl, err := v1.ParsePlatform(strings.TrimSpace(p))
		if err != nil {
			return fmt.Errorf("-catalog-platforms: %w", err)
		}
		o.CatalogPlatforms = append(o.CatalogPlatforms, *pl)
	}

	var fsys = os.DirFS(*catalogDir)
	switch {
	case *archive != "":
		dir, err := os.MkdirTemp("", "worldgen-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		if fsys, err = world.OpenCatalogArchive(*archive, dir); err != nil {
			return err
		}
	case *catalogDir == "":
		return fmt.Errorf("one of -catalog or -archive is required")
	}

	start := time.Now()
	build := world.Build
	if *sqlite {
		build = world.BuildSQLiteIndex
	}
	w, err := build(ctx, fsys, o)
	if err != nil {
		return err
	}
	out := struct {
		Catalog    string      `json:"catalog"`
		CatalogTag string      `json:"catalogTag"`
		Stats      world.Stats `json:"stats"`
		Seconds    float64     `json:"seconds"`
		Images     []string    `json:"images,omitempty"`
	}{w.Catalog, w.CatalogTag, w.Stats, time.Since(start).Seconds(), nil}
	if *listImages {
		out.Images = w.Images
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
