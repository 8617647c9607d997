package sqlite

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"

	"github.com/blang/semver/v4"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// Property types of the SQLite schema that are not FBC property types.
const (
	typeDeprecated = "olm.deprecated"
	kindCSV        = "ClusterServiceVersion"
)

// Load reads the SQLite index database at path (the /database/index.db of
// an index image, written to a file by the caller) and returns the catalog
// `opm render` makes of it:
//
//   - one olm.package per package, its default channel from the package
//     table and its icon from the CSV of the default channel's head (no
//     description: the schema has none);
//   - one olm.channel per channel, entries sorted by name, each bundle's
//     replaces and skips derived from channel_entry as opm's ListBundles
//     query derives them, and its skipRange from operatorbundle;
//   - one olm.bundle per bundle, image = bundlepath, properties from the
//     properties table plus olm.gvk.required and olm.package.required from
//     the dependencies table (other dependency types are dropped, as opm
//     drops them), olm.package built from the version column when the
//     properties have none, and one olm.bundle.object per manifest in the
//     bundle column; related images from the CSV's spec.relatedImages plus
//     the related_image table's other images (unnamed), sorted by image.
//
// Bundles without a version or bundlepath, and bundles with an
// olm.deprecated property, are left out, as opm leaves them out. Like opm,
// Load refuses a database whose content is not a valid catalog (a channel
// without bundles or with two heads, a default channel that does not
// exist, repeated versions...) and reports every problem at once.
// Property values are compacted JSON.
func Load(ctx context.Context, path string) (*fbc.DeclarativeConfig, error) {
	db, err := open(path)
	if err != nil {
		return nil, fmt.Errorf("load sqlite index: %w", err)
	}
	defer db.Close()
	version, err := schemaVersion(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("load sqlite index %s: %w", path, err)
	}
	if version < 0 {
		// An empty database is an empty catalog to opm, which creates the
		// schema in it first.
		if n, err := tableCount(ctx, db); err != nil {
			return nil, fmt.Errorf("load sqlite index %s: %w", path, err)
		} else if n == 0 {
			return &fbc.DeclarativeConfig{}, nil
		}
		return nil, fmt.Errorf("load sqlite index %s: no schema_migrations version: not an operator-registry index", path)
	}
	if version < MinSchemaVersion {
		return nil, fmt.Errorf("load sqlite index %s: schema version %d is older than %d; migrate it with opm first", path, version, MinSchemaVersion)
	}
	x, err := readIndex(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("load sqlite index %s: %w", path, err)
	}
	cfg, err := convert(x)
	if err != nil {
		return nil, fmt.Errorf("load sqlite index %s: %w", path, err)
	}
	return cfg, nil
}

// mPackage, mChannel and mBundle are opm's model, as much of it as the
// conversion needs.
type mPackage struct {
	name           string
	defaultChannel string // "" when the package table's default is not a channel
	channels       map[string]*mChannel
	icon           *fbc.Icon
}

type mChannel struct {
	name    string
	bundles map[string]*mBundle
}

type mBundle struct {
	name          string
	image         string
	replaces      string
	skips         []string
	skipRange     string
	version       semver.Version
	properties    []fbc.Property
	relatedImages []fbc.RelatedImage
	objects       int
}

// convert follows operator-registry's sqlite.ToModel, model validation and
// declcfg.ConvertFromModel, then render's related-image and property
// post-processing.
func convert(x *index) (*fbc.DeclarativeConfig, error) {
	pkgs := map[string]*mPackage{}
	var errs []error
	for _, p := range x.packages {
		m := &mPackage{name: p.name, channels: map[string]*mChannel{}}
		for _, c := range x.channels {
			if c.pkg.Valid && c.pkg.String == p.name {
				m.channels[c.name.String] = &mChannel{name: c.name.String, bundles: map[string]*mBundle{}}
			}
		}
		if len(m.channels) == 0 {
			errs = append(errs, fmt.Errorf("package %s not found", p.name))
			continue
		}
		if _, ok := m.channels[p.defaultChannel.String]; ok {
			m.defaultChannel = p.defaultChannel.String
		}
		pkgs[p.name] = m
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}

	for _, cb := range channelBundles(x) {
		props := x.properties[cb.bundle.name]
		if slices.ContainsFunc(props, func(p typedValue) bool { return p.Type == typeDeprecated }) {
			continue
		}
		pkg, ok := pkgs[cb.pkg]
		if !ok {
			return nil, fmt.Errorf("populate channels: unknown package %q for bundle %q", cb.pkg, cb.bundle.name)
		}
		ch, ok := pkg.channels[cb.channel]
		if !ok {
			return nil, fmt.Errorf("populate channels: unknown channel %q for bundle %q", cb.channel, cb.bundle.name)
		}
		b, err := modelBundle(cb, props, x.deps[cb.bundle.name])
		if err != nil {
			return nil, fmt.Errorf("populate channels: convert bundle %q: %w", cb.bundle.name, err)
		}
		ch.bundles[b.name] = b
	}

	for _, pkg := range pkgs {
		if pkg.defaultChannel == "" {
			// opm dereferences the missing default channel here and crashes.
			errs = append(errs, fmt.Errorf("package %q: default channel is not one of its channels", pkg.name))
			continue
		}
		icon, err := packageIcon(x, pkg)
		if err != nil {
			errs = append(errs, fmt.Errorf("populate package icons: %w", err))
			continue
		}
		pkg.icon = icon
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if err := validate(pkgs); err != nil {
		return nil, err
	}
	cfg := toDeclarativeConfig(pkgs)
	addRelatedImages(cfg, x.images)
	return cfg, nil
}

// modelBundle builds a bundle the way opm's ConvertAPIBundleToModelBundle
// does from one ListBundles row.
func modelBundle(cb channelBundle, props, deps []typedValue) (*mBundle, error) {
	b := &mBundle{
		name:      cb.bundle.name,
		image:     cb.bundle.bundlePath.String,
		replaces:  cb.replaces,
		skips:     cb.skips,
		skipRange: cb.bundle.skipRange.String,
	}
	var objects []string
	var csvJSON string
	if s := cb.bundle.bundle.String; s != "" {
		var err error
		if objects, csvJSON, err = splitObjects(s); err != nil {
			return nil, err
		}
	}
	b.objects = len(objects)

	props = uniqueValues(props)
	deps = uniqueValues(deps)
	var (
		out      []fbc.Property
		provided = map[fbc.GVK]bool{}
		required = map[fbc.GVK]bool{}
		hasPkg   bool
	)
	for i, p := range props {
		switch p.Type {
		case fbc.PropertyGVK:
			var v fbc.GVK
			if err := json.Unmarshal([]byte(p.Value), &v); err != nil {
				return nil, fmt.Errorf("convert properties: parse property[%d] of type %q: %w", i, p.Type, err)
			}
			provided[v] = true
		case fbc.PropertyPackage:
			hasPkg = true
			out = append(out, fbc.Property{Type: p.Type, Value: json.RawMessage(p.Value)})
		default:
			out = append(out, fbc.Property{Type: p.Type, Value: json.RawMessage(p.Value)})
		}
	}
	for i, d := range deps {
		switch d.Type {
		case fbc.PropertyGVK:
			var v fbc.GVK
			if err := json.Unmarshal([]byte(d.Value), &v); err != nil {
				return nil, fmt.Errorf("convert properties: parse property[%d] of type %q: %w", i, d.Type, err)
			}
			required[v] = true
		case fbc.PropertyPackage:
			// A package dependency's range is in its "version" field.
			var v fbc.PackageProperty
			if err := json.Unmarshal([]byte(d.Value), &v); err != nil {
				return nil, fmt.Errorf("convert properties: parse property[%d] of type %q: %w", i, d.Type, err)
			}
			out = append(out, mustProperty(fbc.PropertyPackageRequired, fbc.PackageRequired{PackageName: v.PackageName, VersionRange: v.Version}))
		}
	}
	if !hasPkg {
		out = append(out, mustProperty(fbc.PropertyPackage, struct {
			PackageName string `json:"packageName"`
			Version     string `json:"version"`
		}{cb.pkg, cb.bundle.version.String}))
	}
	for g := range provided {
		out = append(out, mustProperty(fbc.PropertyGVK, g))
	}
	for g := range required {
		out = append(out, mustProperty(fbc.PropertyGVKRequired, g))
	}
	for _, o := range objects {
		out = append(out, mustProperty(fbc.PropertyBundleObject, struct {
			Data []byte `json:"data"`
		}{[]byte(o)}))
	}
	b.properties = out

	if csvJSON != "" {
		var csv struct {
			Spec struct {
				RelatedImages []fbc.RelatedImage `json:"relatedImages"`
			} `json:"spec"`
		}
		if err := json.Unmarshal([]byte(csvJSON), &csv); err != nil {
			return nil, fmt.Errorf("get related images: unmarshal csv: %w", err)
		}
		b.relatedImages = csv.Spec.RelatedImages
	}

	v, err := semver.Parse(cb.bundle.version.String)
	if err != nil {
		return nil, fmt.Errorf("parse version %q: %w", cb.bundle.version.String, err)
	}
	b.version = v
	return b, nil
}

// splitObjects splits the bundle column (manifests as concatenated JSON
// objects) into its objects, byte for byte, and returns the first CSV.
// Every object must have a kind and one must be a CSV.
func splitObjects(s string) (objects []string, csv string, err error) {
	dec := json.NewDecoder(strings.NewReader(s))
	for dec.More() {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return nil, "", err
		}
		objects = append(objects, string(raw))
	}
	for _, o := range objects {
		var m map[string]any
		if err := json.Unmarshal([]byte(o), &m); err != nil {
			return nil, "", err
		}
		kind, _ := m["kind"].(string)
		if kind == "" {
			return nil, "", fmt.Errorf("object 'Kind' is missing in '%s'", o)
		}
		if kind == kindCSV {
			return objects, o, nil
		}
	}
	return nil, "", errors.New("no csv in bundle")
}

// uniqueValues drops repeated rows, keeping the first.
func uniqueValues(in []typedValue) []typedValue {
	var out []typedValue
	seen := map[typedValue]bool{}
	for _, v := range in {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// mustProperty encodes a property value as operator-registry's
// property.Build does: compact, no HTML escaping.
func mustProperty(typ string, v any) fbc.Property {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("encode %s property: %v", typ, err)) // only fixed struct types reach here
	}
	return fbc.Property{Type: typ, Value: bytes.TrimRight(buf.Bytes(), "\n")}
}

// packageIcon is the first icon of the CSV (csv column) of the default
// channel's head, decoded from base64 (retried without spaces, as opm
// does); nil when there is none or it does not decode.
func packageIcon(x *index, pkg *mPackage) (*fbc.Icon, error) {
	var head channelRow
	found := false
	for _, c := range x.channels {
		if c.pkg.String == pkg.name && c.name.String == pkg.defaultChannel && c.head.Valid {
			if _, ok := x.bundles[c.head.String]; ok {
				head, found = c, true
				break
			}
		}
	}
	if !found {
		return nil, fmt.Errorf("get default channel head for package %q: no entry found for %s %s", pkg.name, pkg.name, pkg.defaultChannel)
	}
	b := x.bundles[head.head.String]
	var csv struct {
		Spec struct {
			Icon []struct {
				Data      string `json:"base64data"`
				MediaType string `json:"mediatype"`
			} `json:"icon"`
		} `json:"spec"`
	}
	if err := json.Unmarshal([]byte(b.csv.String), &csv); err != nil {
		return nil, fmt.Errorf("unmarshal CSV json for bundle %q: %w", b.name, err)
	}
	if len(csv.Spec.Icon) == 0 {
		return nil, nil
	}
	icon := csv.Spec.Icon[0]
	data, err := base64.StdEncoding.DecodeString(icon.Data)
	if err != nil {
		if data, err = base64.StdEncoding.DecodeString(strings.ReplaceAll(icon.Data, " ", "")); err != nil {
			return nil, nil // opm logs a warning and goes on without an icon
		}
	}
	if len(data) == 0 {
		return nil, nil
	}
	return &fbc.Icon{Data: data, MediaType: icon.MediaType}, nil
}

// toDeclarativeConfig lays the model out as blobs (operator-registry's
// declcfg.ConvertFromModel): packages, channels and bundles sorted by name,
// entries sorted by name, a bundle's properties merged over its channels,
// compacted, deduplicated and sorted by type and value.
func toDeclarativeConfig(pkgs map[string]*mPackage) *fbc.DeclarativeConfig {
	cfg := &fbc.DeclarativeConfig{}
	for _, pkg := range pkgs {
		cfg.Packages = append(cfg.Packages, fbc.Package{
			Schema:         fbc.SchemaPackage,
			Name:           pkg.name,
			DefaultChannel: pkg.defaultChannel,
			Icon:           pkg.icon,
		})
		bundles := map[string]*fbc.Bundle{}
		for _, ch := range pkg.channels {
			c := fbc.Channel{Schema: fbc.SchemaChannel, Name: ch.name, Package: pkg.name, Entries: []fbc.ChannelEntry{}}
			for _, b := range ch.bundles {
				c.Entries = append(c.Entries, fbc.ChannelEntry{Name: b.name, Replaces: b.replaces, Skips: b.skips, SkipRange: b.skipRange})
				fb, ok := bundles[b.name]
				if !ok {
					fb = &fbc.Bundle{
						Schema:        fbc.SchemaBundle,
						Name:          b.name,
						Package:       pkg.name,
						Image:         b.image,
						RelatedImages: slices.Clone(b.relatedImages),
					}
					bundles[b.name] = fb
				}
				fb.Properties = append(fb.Properties, b.properties...)
			}
			sort.Slice(c.Entries, func(i, j int) bool { return c.Entries[i].Name < c.Entries[j].Name })
			cfg.Channels = append(cfg.Channels, c)
		}
		for _, fb := range bundles {
			fb.Properties = normalizeProperties(fb.Properties)
			cfg.Bundles = append(cfg.Bundles, *fb)
		}
	}
	sort.Slice(cfg.Packages, func(i, j int) bool { return cfg.Packages[i].Name < cfg.Packages[j].Name })
	sort.Slice(cfg.Channels, func(i, j int) bool {
		a, b := cfg.Channels[i], cfg.Channels[j]
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.Name < b.Name
	})
	sort.Slice(cfg.Bundles, func(i, j int) bool {
		a, b := cfg.Bundles[i], cfg.Bundles[j]
		if a.Package != b.Package {
			return a.Package < b.Package
		}
		return a.Name < b.Name
	})
	return cfg
}

// normalizeProperties compacts values, drops repeats and orders properties
// by type and value, bundle objects last (what opm's model normalisation,
// declcfg conversion and render do in turn).
func normalizeProperties(in []fbc.Property) []fbc.Property {
	var out []fbc.Property
	seen := map[string]bool{}
	for _, p := range in {
		var buf bytes.Buffer
		if err := json.Compact(&buf, p.Value); err == nil {
			p.Value = buf.Bytes()
		}
		k := p.Type + "\x00" + string(p.Value)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, p)
	}
	slices.SortStableFunc(out, func(a, b fbc.Property) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return bytes.Compare(a.Value, b.Value)
	})
	var rest, last []fbc.Property
	for _, p := range out {
		if p.Type == fbc.PropertyBundleObject || p.Type == fbc.PropertyCSVMetadata {
			last = append(last, p)
		} else {
			rest = append(rest, p)
		}
	}
	return append(rest, last...)
}

// addRelatedImages adds each bundle's related_image rows that its CSV does
// not list, unnamed and in table order, then sorts the related images by
// image (render's populateDBRelatedImages and sort). opm adds the rows in
// map order, so for a bundle with two or more such rows and an image its
// CSV lists under two names, opm's own order of those two is not fixed.
func addRelatedImages(cfg *fbc.DeclarativeConfig, images map[string][]string) {
	for i := range cfg.Bundles {
		b := &cfg.Bundles[i]
		have := map[string]bool{}
		for _, ri := range b.RelatedImages {
			have[ri.Image] = true
		}
		for _, img := range images[b.Name] {
			if !have[img] {
				have[img] = true
				b.RelatedImages = append(b.RelatedImages, fbc.RelatedImage{Image: img})
			}
		}
		// opm's sort.Slice, not a stable sort: for one image listed under
		// two names, the same input order gives the same (unstable) output
		// order only with the same algorithm.
		ris := b.RelatedImages
		sort.Slice(ris, func(i, j int) bool { return ris[i].Image < ris[j].Image })
		if len(b.RelatedImages) == 0 {
			b.RelatedImages = nil
		}
	}
}
