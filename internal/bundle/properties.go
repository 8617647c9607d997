package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

const (
	typePackage         = fbc.PropertyPackage
	typePackageRequired = fbc.PropertyPackageRequired
	typeGVK             = fbc.PropertyGVK
	typeGVKRequired     = fbc.PropertyGVKRequired
	typeBundleObject    = fbc.PropertyBundleObject
	typeCSVMetadata     = fbc.PropertyCSVMetadata
)

// The property values below are encoded exactly as operator-registry's
// property.MustBuild* encode them (struct field order, no HTML escaping),
// because opm orders a bundle's properties by those bytes.

func packageValue(name, version, release string) (json.RawMessage, error) {
	return marshalNoEscape(struct {
		PackageName string `json:"packageName"`
		Version     string `json:"version"`
		Release     string `json:"release,omitzero"`
	}{name, version, release})
}

func packageRequiredValue(name, versionRange string) (json.RawMessage, error) {
	return marshalNoEscape(fbc.PackageRequired{PackageName: name, VersionRange: versionRange})
}

func gvkValue(group, version, kind string) (json.RawMessage, error) {
	return marshalNoEscape(fbc.GVK{Group: group, Kind: kind, Version: version})
}

func bundleObjectValue(data []byte) (json.RawMessage, error) {
	return marshalNoEscape(struct {
		Data []byte `json:"data"`
	}{data})
}

// gvk is an olm.gvk or olm.gvk.required value as a set key.
type gvk struct{ Group, Kind, Version string }

// bundleProperties builds the property list `opm render` gives a bundle
// image (operator-registry's ObjectsAndPropertiesFromBundle followed by
// render's moveBundleObjectsToEndOfPropertySlices): one olm.package (the
// last one declared wins), olm.gvk for provided APIs, olm.gvk.required and
// olm.package.required for dependencies and required APIs, every other
// declared property and dependency as is, and one olm.bundle.object per
// manifest, sorted by type and value with the bundle objects last.
func (b *parsed) bundleProperties() ([]property, error) {
	var (
		provided    []gvk
		required    []gvk
		seenProv    = map[gvk]bool{}
		seenReq     = map[gvk]bool{}
		pkgProperty *property
		others      []property
		pkgRequired []property
	)
	addProv := func(g gvk) {
		if !seenProv[g] {
			seenProv[g] = true
			provided = append(provided, g)
		}
	}
	addReq := func(g gvk) {
		if !seenReq[g] {
			seenReq[g] = true
			required = append(required, g)
		}
	}
	for i, p := range b.properties {
		switch p.Type {
		case typeGVK:
			var v fbc.GVK
			if err := json.Unmarshal(p.Value, &v); err != nil {
				return nil, fmt.Errorf("parse property[%d] of type %q: %w", i, p.Type, err)
			}
			addProv(gvk{v.Group, v.Kind, v.Version})
		case typePackage:
			var v fbc.PackageProperty
			if err := json.Unmarshal(p.Value, &v); err != nil {
				return nil, fmt.Errorf("parse property[%d] of type %q: %w", i, p.Type, err)
			}
			value, err := packageValue(v.PackageName, v.Version, v.Release)
			if err != nil {
				return nil, err
			}
			pkgProperty = &property{Type: typePackage, Value: value}
		default:
			others = append(others, p)
		}
	}
	for i, d := range b.deps {
		switch d.Type {
		case typeGVK:
			var v fbc.GVK
			if err := json.Unmarshal(d.Value, &v); err != nil {
				return nil, fmt.Errorf("parse dependency[%d] of type %q: %w", i, d.Type, err)
			}
			addReq(gvk{v.Group, v.Kind, v.Version})
		case typePackage:
			// A package dependency's range is in its "version" field.
			var v fbc.PackageProperty
			if err := json.Unmarshal(d.Value, &v); err != nil {
				return nil, fmt.Errorf("parse dependency[%d] of type %q: %w", i, d.Type, err)
			}
			value, err := packageRequiredValue(v.PackageName, v.Version)
			if err != nil {
				return nil, err
			}
			pkgRequired = append(pkgRequired, property{Type: typePackageRequired, Value: value})
		default:
			// olm.label, olm.constraint, ...: opm turns other dependencies
			// into properties of the same type.
			others = append(others, d)
		}
	}

	version, err := b.csv.version()
	if err != nil {
		return nil, fmt.Errorf("get version: %w", err)
	}
	release, err := b.csv.release()
	if err != nil {
		return nil, fmt.Errorf("get release: %w", err)
	}
	apis, err := b.providedAPIs()
	if err != nil {
		return nil, fmt.Errorf("get provided apis: %w", err)
	}
	for _, a := range apis {
		addProv(gvk{a.Group, a.Kind, a.Version})
	}
	reqAPIs, err := b.requiredAPIs()
	if err != nil {
		return nil, fmt.Errorf("get required apis: %w", err)
	}
	for _, a := range reqAPIs {
		addReq(gvk{a.Group, a.Kind, a.Version})
	}

	var props []property
	for _, o := range b.objects {
		data, err := o.marshal()
		if err != nil {
			return nil, fmt.Errorf("marshal object %s (%s): %w", o.name(), o.kind(), err)
		}
		value, err := bundleObjectValue(data)
		if err != nil {
			return nil, err
		}
		props = append(props, property{Type: typeBundleObject, Value: value})
	}
	if pkgProperty == nil {
		value, err := packageValue(b.pkg, version, release)
		if err != nil {
			return nil, err
		}
		pkgProperty = &property{Type: typePackage, Value: value}
	}
	props = append(props, *pkgProperty)
	for _, g := range provided {
		value, err := gvkValue(g.Group, g.Version, g.Kind)
		if err != nil {
			return nil, err
		}
		props = append(props, property{Type: typeGVK, Value: value})
	}
	for _, g := range required {
		value, err := marshalNoEscape(fbc.GVK{Group: g.Group, Kind: g.Kind, Version: g.Version})
		if err != nil {
			return nil, err
		}
		props = append(props, property{Type: typeGVKRequired, Value: value})
	}
	props = append(props, pkgRequired...)
	props = append(props, others...)
	sortProperties(props)
	return moveManifestsLast(props), nil
}

// sortProperties orders properties by type, then by their value's bytes.
func sortProperties(ps []property) {
	slices.SortStableFunc(ps, func(a, b property) int {
		if c := strings.Compare(a.Type, b.Type); c != 0 {
			return c
		}
		return bytes.Compare(a.Value, b.Value)
	})
}

// moveManifestsLast moves olm.bundle.object and olm.csv.metadata properties
// to the end, keeping the order within both groups (`opm render` does this
// for every rendered bundle).
func moveManifestsLast(ps []property) []property {
	var out, last []property
	for _, p := range ps {
		switch p.Type {
		case typeBundleObject, typeCSVMetadata:
			last = append(last, p)
		default:
			out = append(out, p)
		}
	}
	return append(out, last...)
}
