package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"slices"
	"sort"
	"strings"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// Migration names the schema migration applied to a rendered bundle, with
// opm's names for them (`opm render --migrate-level`).
type Migration string

const (
	// MigrationNone keeps one olm.bundle.object property per manifest, as
	// `opm render` does without --migrate-level.
	MigrationNone Migration = "none"
	// MigrationCSVMetadata replaces the olm.bundle.object properties with
	// one olm.csv.metadata property, as `opm render
	// --migrate-level=bundle-object-to-csv-metadata` does; the
	// community-operators and Red Hat catalogs are built this way. A bundle
	// rendered without an image keeps its objects either way.
	MigrationCSVMetadata Migration = "bundle-object-to-csv-metadata"
)

// Options are the per-call settings of Render.
type Options struct {
	// Migration is applied after rendering; "" means MigrationNone.
	Migration Migration
}

// DefaultOptions renders bundles the way the catalogs Ferry adds them to
// carry theirs: with olm.csv.metadata.
func DefaultOptions() Options { return Options{Migration: MigrationCSVMetadata} }

// Placement is where a bundle goes in a catalog, as its metadata and CSV
// say: what `opm index add` used to read and a catalog maintainer now
// writes by hand into channel entries.
type Placement struct {
	// Package is the operators.operatorframework.io.bundle.package.v1
	// annotation.
	Package string
	// Channels are the channels.v1 annotation's comma-separated names,
	// trimmed, empty names dropped.
	Channels []string
	// DefaultChannel is the channel.default.v1 annotation, "" if unset.
	DefaultChannel string
	// Replaces, Skips and SkipRange are the CSV's spec.replaces,
	// spec.skips and metadata.annotations["olm.skipRange"]: the entry's
	// incoming edges in every channel.
	Replaces  string
	Skips     []string
	SkipRange string
	// Icon is the CSV's first icon, which Add gives a package it creates
	// (opm's SQLite conversion takes a package's icon from the CSV of its
	// default channel's head the same way); nil when the CSV has none or
	// its data is not base64.
	Icon *fbc.Icon
}

// Render converts the registry+v1 bundle in fsys (manifests/ and
// metadata/ at its root) into the olm.bundle blob `opm render <image>`
// prints for it, image being the reference to record ("" for none, as
// `opm render <bundle directory>` records), and says where it goes.
//
// It follows operator-registry v1.73.0: every file directly under
// manifests/ is read (first YAML document or JSON value; files that are not
// objects with a kind are skipped; only the first CSV counts) and metadata
// files are recognised by content, not name. The name is the CSV's; the
// properties are olm.package (annotations' package, CSV version and
// release), olm.gvk for each version of each CRD in the bundle and each
// owned API service, olm.gvk.required for the CSV's required CRDs and API
// services and the gvk dependencies, olm.package.required for package
// dependencies, any properties from metadata/properties.yaml and the CSV's
// olm.properties annotation, and one olm.bundle.object per manifest (or
// olm.csv.metadata, see Options), ordered as opm orders them. Related
// images are the CSV's spec.relatedImages, then the bundle image and the
// deployments' container images without a name, each image once beyond
// the CSV's own list, sorted by image.
func Render(fsys fs.FS, image string, opts Options) (fbc.Bundle, Placement, error) {
	switch opts.Migration {
	case "", MigrationNone, MigrationCSVMetadata:
	default:
		return fbc.Bundle{}, Placement{}, fmt.Errorf("render bundle: unknown migration %q", opts.Migration)
	}
	b, err := parseBundle(fsys)
	if err != nil {
		return fbc.Bundle{}, Placement{}, fmt.Errorf("render bundle: %w", err)
	}
	fail := func(err error) (fbc.Bundle, Placement, error) {
		return fbc.Bundle{}, Placement{}, fmt.Errorf("render bundle %q: %w", b.name, err)
	}
	props, err := b.bundleProperties()
	if err != nil {
		return fail(fmt.Errorf("get properties: %w", err))
	}
	if opts.Migration == MigrationCSVMetadata && image != "" {
		csvJSON, err := b.csvObject.marshal()
		if err != nil {
			return fail(err)
		}
		value, err := csvMetadataValue(csvJSON)
		if err != nil {
			return fail(fmt.Errorf("read csv: %w", err))
		}
		kept := props[:0]
		for _, p := range props {
			if p.Type != typeBundleObject {
				kept = append(kept, p)
			}
		}
		props = append(kept, property{Type: typeCSVMetadata, Value: value})
	}
	related, err := b.relatedImages(image)
	if err != nil {
		return fail(fmt.Errorf("get related images: %w", err))
	}
	out := fbc.Bundle{
		Schema:        fbc.SchemaBundle,
		Name:          b.name,
		Package:       b.pkg,
		Image:         image,
		RelatedImages: related,
	}
	for _, p := range props {
		var buf bytes.Buffer
		if err := json.Compact(&buf, p.Value); err != nil {
			return fail(fmt.Errorf("property %s: %w", p.Type, err))
		}
		out.Properties = append(out.Properties, fbc.Property{Type: p.Type, Value: buf.Bytes()})
	}
	place, err := b.placement()
	if err != nil {
		return fail(err)
	}
	return out, place, nil
}

// relatedImages lists the CSV's related images, then the bundle image and
// the operator images not already listed, sorted by image with opm's
// (unstable) sort.Slice: one image listed under two names keeps the order
// opm gives it, which only a different algorithm would change. (opm adds
// operator images in map order, so with two or more of them outside the CSV
// list its own order of such ties is not fixed either.)
func (b *parsed) relatedImages(image string) ([]fbc.RelatedImage, error) {
	csvImages, err := b.csv.relatedImages()
	if err != nil {
		return nil, err
	}
	var out []fbc.RelatedImage
	seen := map[string]bool{}
	for _, ri := range csvImages {
		out = append(out, fbc.RelatedImage{Name: ri.Name, Image: ri.Image})
		seen[ri.Image] = true
	}
	if image != "" && !seen[image] {
		out = append(out, fbc.RelatedImage{Image: image})
	}
	opImages, err := b.csv.operatorImages()
	if err != nil {
		return nil, err
	}
	for _, img := range opImages {
		if !seen[img] {
			out = append(out, fbc.RelatedImage{Image: img})
			seen[img] = true
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Image < out[j].Image })
	return out, nil
}

func (b *parsed) placement() (Placement, error) {
	p := Placement{
		Package:        b.pkg,
		DefaultChannel: strings.TrimSpace(b.defChannel),
		SkipRange:      b.csv.Annotations[annotationSkipRange],
	}
	for _, c := range b.channels {
		if c = strings.TrimSpace(c); c != "" && !slices.Contains(p.Channels, c) {
			p.Channels = append(p.Channels, c)
		}
	}
	var err error
	if p.Replaces, err = b.csv.replaces(); err != nil {
		return Placement{}, err
	}
	if p.Skips, err = b.csv.skips(); err != nil {
		return Placement{}, err
	}
	if data, mediaType, ok := b.csv.icon(); ok {
		if raw, ok := decodeBase64(data); ok && len(raw) > 0 {
			p.Icon = &fbc.Icon{Data: raw, MediaType: mediaType}
		}
	}
	return p, nil
}
