package fbc

import (
	"encoding/json"
	"fmt"
	"slices"
)

// The schemas Ferry interprets. Every other schema is carried as a Meta.
const (
	SchemaPackage      = "olm.package"
	SchemaChannel      = "olm.channel"
	SchemaBundle       = "olm.bundle"
	SchemaDeprecations = "olm.deprecations"
)

// Property types Ferry reads.
const (
	PropertyPackage         = "olm.package"
	PropertyPackageRequired = "olm.package.required"
	PropertyGVK             = "olm.gvk"
	PropertyGVKRequired     = "olm.gvk.required"
	PropertyBundleObject    = "olm.bundle.object"
	PropertyCSVMetadata     = "olm.csv.metadata"
)

// DeclarativeConfig is a whole catalog, blob by blob.
type DeclarativeConfig struct {
	Packages     []Package
	Channels     []Channel
	Bundles      []Bundle
	Deprecations []Deprecation
	Others       []Meta
}

// Package is an olm.package blob.
type Package struct {
	Schema         string     `json:"schema"`
	Name           string     `json:"name"`
	DefaultChannel string     `json:"defaultChannel"`
	Icon           *Icon      `json:"icon,omitempty"`
	Description    string     `json:"description,omitempty"`
	Properties     []Property `json:"properties,omitempty"`
}

// Icon is a package's icon.
type Icon struct {
	Data      []byte `json:"base64data"`
	MediaType string `json:"mediatype"`
}

// Channel is an olm.channel blob: the upgrade graph of one channel.
type Channel struct {
	Schema     string         `json:"schema"`
	Name       string         `json:"name"`
	Package    string         `json:"package"`
	Entries    []ChannelEntry `json:"entries"`
	Properties []Property     `json:"properties,omitempty"`
}

// ChannelEntry is one bundle in a channel with its incoming edges.
type ChannelEntry struct {
	Name      string   `json:"name"`
	Replaces  string   `json:"replaces,omitempty"`
	Skips     []string `json:"skips,omitempty"`
	SkipRange string   `json:"skipRange,omitempty"`
}

// Bundle is an olm.bundle blob.
type Bundle struct {
	Schema        string         `json:"schema"`
	Name          string         `json:"name,omitempty"`
	Package       string         `json:"package,omitempty"`
	Image         string         `json:"image"`
	Properties    []Property     `json:"properties,omitempty"`
	RelatedImages []RelatedImage `json:"relatedImages,omitempty"`
}

// Property is a typed bundle, package or channel property. Value stays raw
// so unknown property types round-trip byte for byte.
type Property struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// RelatedImage is an image a bundle's operator uses.
type RelatedImage struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

// Deprecation is an olm.deprecations blob: at most one per package.
type Deprecation struct {
	Schema  string             `json:"schema"`
	Package string             `json:"package"`
	Entries []DeprecationEntry `json:"entries"`
}

// DeprecationEntry deprecates the package, a channel or a bundle.
type DeprecationEntry struct {
	Reference PackageScopedReference `json:"reference"`
	Message   string                 `json:"message"`
}

// PackageScopedReference names what a deprecation entry is about; Name is
// empty for the package itself.
type PackageScopedReference struct {
	Schema string `json:"schema"`
	Name   string `json:"name,omitempty"`
}

// Meta is a blob of a schema Ferry does not interpret, kept verbatim.
type Meta struct {
	Schema  string
	Package string
	Name    string
	Blob    json.RawMessage
}

// MarshalJSON returns the blob itself, as opm's declcfg.Meta does, so that a
// Meta encodes as the document it came from.
func (m Meta) MarshalJSON() ([]byte, error) { return m.Blob, nil }

// UnmarshalJSON keeps the blob (compact, keys sorted, as LoadFS keeps it)
// and picks schema, package and name out of it the way opm does.
func (m *Meta) UnmarshalJSON(b []byte) error {
	var d decoder
	root, err := parseJSON(&d.t, b)
	if err != nil {
		return err
	}
	if d.t.nodes[root].kind != kindMap {
		return fmt.Errorf("cannot decode %s into a blob", d.t.describe(root))
	}
	keys, err := d.metaKeys(root)
	if err != nil {
		return err
	}
	*m = Meta{
		Schema:  keys.schema,
		Package: keys.pkg,
		Name:    keys.name,
		Blob:    d.t.appendCanonical(nil, root),
	}
	return nil
}

// PackageProperty is the value of an olm.package property.
type PackageProperty struct {
	PackageName string `json:"packageName"`
	Version     string `json:"version"`
	Release     string `json:"release,omitempty"`
}

// PackageRequired is the value of an olm.package.required property.
type PackageRequired struct {
	PackageName  string `json:"packageName"`
	VersionRange string `json:"versionRange"`
}

// GVK is the value of olm.gvk and olm.gvk.required properties.
type GVK struct {
	Group   string `json:"group"`
	Kind    string `json:"kind"`
	Version string `json:"version"`
}

// ChannelHeads returns the entries of a channel that no other entry
// replaces or skips, sorted, once each: its heads. A valid channel has
// exactly one (operator-registry's Channel.Head); the validator, bundle
// placement and the plan all ask this one function.
func ChannelHeads(entries []ChannelEntry) []string {
	incoming := map[string]bool{}
	for _, e := range entries {
		if e.Replaces != "" {
			incoming[e.Replaces] = true
		}
		for _, s := range e.Skips {
			incoming[s] = true
		}
	}
	var heads []string
	for _, e := range entries {
		if !incoming[e.Name] && !slices.Contains(heads, e.Name) {
			heads = append(heads, e.Name)
		}
	}
	slices.Sort(heads)
	return heads
}
