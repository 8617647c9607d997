package world

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Options says what world to build and where to push it.
type Options struct {
	// Registry is the host[:port] every image is pushed to. Loopback and
	// private addresses are spoken to over plain HTTP (go-containerregistry's
	// rule); set Insecure for any other plain-HTTP registry.
	Registry string
	// Prefix is an optional repository namespace below Registry: images land
	// in <Registry>/<Prefix>/<original host>/<original path>.
	Prefix string
	// Insecure forces plain HTTP.
	Insecure bool
	// Remote options (auth, transport) for every push.
	Remote []remote.Option

	// Seed makes the world: the same seed and catalog give the same images,
	// byte for byte.
	Seed int64
	// BaseLayers is the size of the shared base-layer pool per platform.
	// Each image stacks one to three of them, so most blobs are shared.
	BaseLayers int
	// BaseLayerSize is the payload of each base layer in bytes.
	BaseLayerSize int64
	// LayerSize is the payload of each image's unique top layer in bytes;
	// raise it for benchmarks that need bytes, not just requests.
	LayerSize int64
	// MultiArchEvery makes about one related image in N a multi-arch index
	// over Platforms (chosen by hash, so the same images every time);
	// 0 or less means never.
	MultiArchEvery int
	// Platforms are the children of multi-arch images.
	Platforms []v1.Platform

	// CatalogRepository is the catalog image's repository below
	// Registry/Prefix.
	CatalogRepository string
	// CatalogTag is the tag pushed for the catalog image.
	CatalogTag string
	// CatalogPlatforms: more than one makes the catalog image a multi-arch
	// index, one child per platform, as Red Hat's catalogs are.
	CatalogPlatforms []v1.Platform
	// CatalogFormat is how configs are written in an FBC catalog image.
	CatalogFormat Format

	// Concurrency bounds concurrent image pushes.
	Concurrency int

	// Log receives progress (phase, counts, durations); nil is silent.
	Log *slog.Logger
}

// DefaultPlatforms are the architectures of the multi-arch images.
var DefaultPlatforms = []v1.Platform{
	{OS: "linux", Architecture: "amd64"},
	{OS: "linux", Architecture: "arm64"},
	{OS: "linux", Architecture: "ppc64le"},
}

// DefaultOptions returns the settings tests and `make demo` use: small
// layers, a pool of six base layers, one image in four multi-arch, a
// single-arch YAML catalog at <registry>/catalog:latest.
func DefaultOptions(registry string) Options {
	return Options{
		Registry:          registry,
		Seed:              1,
		BaseLayers:        6,
		BaseLayerSize:     8 << 10,
		LayerSize:         2 << 10,
		MultiArchEvery:    4,
		Platforms:         DefaultPlatforms,
		CatalogRepository: "catalog",
		CatalogTag:        "latest",
		CatalogPlatforms:  []v1.Platform{{OS: "linux", Architecture: "amd64"}},
		CatalogFormat:     FormatYAML,
		Concurrency:       8,
	}
}

// withDefaults fills zero fields from DefaultOptions, except the knobs whose
// zero value means something (MultiArchEvery, Seed, Prefix).
func (o Options) withDefaults() (Options, error) {
	if o.Registry == "" {
		return o, errors.New("options: Registry is required")
	}
	if strings.Contains(o.Registry, "/") {
		return o, fmt.Errorf("options: Registry %q must be host[:port]; use Prefix for a namespace", o.Registry)
	}
	d := DefaultOptions(o.Registry)
	if o.BaseLayers <= 0 {
		o.BaseLayers = d.BaseLayers
	}
	if o.BaseLayerSize <= 0 {
		o.BaseLayerSize = d.BaseLayerSize
	}
	if o.LayerSize <= 0 {
		o.LayerSize = d.LayerSize
	}
	if len(o.Platforms) == 0 {
		o.Platforms = d.Platforms
	}
	if o.CatalogRepository == "" {
		o.CatalogRepository = d.CatalogRepository
	}
	if o.CatalogTag == "" {
		o.CatalogTag = d.CatalogTag
	}
	if len(o.CatalogPlatforms) == 0 {
		o.CatalogPlatforms = d.CatalogPlatforms
	}
	if o.CatalogFormat == "" {
		o.CatalogFormat = d.CatalogFormat
	}
	if o.CatalogFormat != FormatYAML && o.CatalogFormat != FormatJSON {
		return o, fmt.Errorf("options: CatalogFormat %q is neither yaml nor json", o.CatalogFormat)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = d.Concurrency
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return o, nil
}

// World is what Build pushed.
type World struct {
	// Catalog is the catalog image by digest, CatalogTag the same image by
	// tag.
	Catalog    string
	CatalogTag string
	// Images lists every reference pushed for the catalog's images (the
	// rewritten references, as the catalog spells them), sorted; the
	// catalog image is not among them.
	Images []string
	// Rewritten maps each reference of the input catalog to the reference
	// the rewritten catalog carries instead.
	Rewritten map[string]string
	// Configs is the rewritten catalog as the FBC image serves it under
	// /configs (<package>/catalog.yaml). For a SQLite index it is the FBC
	// the index was built from.
	Configs fs.FS
	// Stats counts what was pushed.
	Stats Stats
}

// Stats counts a world's registry content. Blobs and Bytes count each
// distinct blob once, however many images share it, which is what a mirror
// has to copy.
type Stats struct {
	Images    int   // top-level references pushed (catalog image included)
	Indexes   int   // of which multi-arch indexes
	Manifests int   // image manifests and indexes, children included
	Blobs     int   // distinct layers and configs
	Bytes     int64 // distinct blob bytes
}
