package bundle

import (
	"encoding/json"
	"fmt"

	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// The CSV fields an olm.csv.metadata property carries, shaped like
// operator-framework/api's v1alpha1 types (same JSON names, same omitempty
// rules, same field order) so that decoding a CSV into them and encoding the
// result gives what opm's property.MustBuildCSVMetadata gives: unknown
// fields dropped, empty optional fields left out, provider,
// apiServiceDefinitions and crdDescriptions always present.
type (
	csvMetadata struct {
		Annotations           map[string]string         `json:"annotations,omitempty"`
		APIServiceDefinitions apiServiceDefinitions     `json:"apiServiceDefinitions,omitempty"`
		CRDDescriptions       customResourceDefinitions `json:"crdDescriptions,omitempty"`
		Description           string                    `json:"description,omitempty"`
		DisplayName           string                    `json:"displayName,omitempty"`
		InstallModes          []installMode             `json:"installModes,omitempty"`
		Keywords              []string                  `json:"keywords,omitempty"`
		Labels                map[string]string         `json:"labels,omitempty"`
		Links                 []appLink                 `json:"links,omitempty"`
		Maintainers           []maintainer              `json:"maintainers,omitempty"`
		Maturity              string                    `json:"maturity,omitempty"`
		MinKubeVersion        string                    `json:"minKubeVersion,omitempty"`
		NativeAPIs            []groupVersionKind        `json:"nativeAPIs,omitempty"`
		Provider              appLink                   `json:"provider,omitempty"`
	}
	apiServiceDefinitions struct {
		Owned    []apiServiceDescription `json:"owned,omitempty"`
		Required []apiServiceDescription `json:"required,omitempty"`
	}
	customResourceDefinitions struct {
		Owned    []crdDescription `json:"owned,omitempty"`
		Required []crdDescription `json:"required,omitempty"`
	}
	crdDescription struct {
		Name              string                 `json:"name"`
		Version           string                 `json:"version"`
		Kind              string                 `json:"kind"`
		DisplayName       string                 `json:"displayName,omitempty"`
		Description       string                 `json:"description,omitempty"`
		Resources         []apiResourceReference `json:"resources,omitempty"`
		StatusDescriptors []descriptor           `json:"statusDescriptors,omitempty"`
		SpecDescriptors   []descriptor           `json:"specDescriptors,omitempty"`
		ActionDescriptors []descriptor           `json:"actionDescriptors,omitempty"`
	}
	apiServiceDescription struct {
		Name              string                 `json:"name"`
		Group             string                 `json:"group"`
		Version           string                 `json:"version"`
		Kind              string                 `json:"kind"`
		DeploymentName    string                 `json:"deploymentName,omitempty"`
		ContainerPort     int32                  `json:"containerPort,omitempty"`
		DisplayName       string                 `json:"displayName,omitempty"`
		Description       string                 `json:"description,omitempty"`
		Resources         []apiResourceReference `json:"resources,omitempty"`
		StatusDescriptors []descriptor           `json:"statusDescriptors,omitempty"`
		SpecDescriptors   []descriptor           `json:"specDescriptors,omitempty"`
		ActionDescriptors []descriptor           `json:"actionDescriptors,omitempty"`
	}
	apiResourceReference struct {
		Name    string `json:"name"`
		Kind    string `json:"kind"`
		Version string `json:"version"`
	}
	descriptor struct {
		Path         string          `json:"path"`
		DisplayName  string          `json:"displayName,omitempty"`
		Description  string          `json:"description,omitempty"`
		XDescriptors []string        `json:"x-descriptors,omitempty"`
		Value        json.RawMessage `json:"value,omitempty"`
	}
	installMode struct {
		Type      string `json:"type"`
		Supported bool   `json:"supported"`
	}
	appLink struct {
		Name string `json:"name,omitempty"`
		URL  string `json:"url,omitempty"`
	}
	maintainer struct {
		Name  string `json:"name,omitempty"`
		Email string `json:"email,omitempty"`
	}
	groupVersionKind struct {
		Group   string `json:"group"`
		Version string `json:"version"`
		Kind    string `json:"kind"`
	}
)

// csvMetadataValue builds the olm.csv.metadata value of a CSV given as JSON.
func csvMetadataValue(csvJSON []byte) (json.RawMessage, error) {
	var csv struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
			Labels      map[string]string `json:"labels"`
		} `json:"metadata"`
		Spec struct {
			APIServiceDefinitions apiServiceDefinitions     `json:"apiservicedefinitions"`
			CRDs                  customResourceDefinitions `json:"customresourcedefinitions"`
			Description           string                    `json:"description"`
			DisplayName           string                    `json:"displayName"`
			InstallModes          []installMode             `json:"installModes"`
			Keywords              []string                  `json:"keywords"`
			Links                 []appLink                 `json:"links"`
			Maintainers           []maintainer              `json:"maintainers"`
			Maturity              string                    `json:"maturity"`
			MinKubeVersion        string                    `json:"minKubeVersion"`
			NativeAPIs            []groupVersionKind        `json:"nativeAPIs"`
			Provider              appLink                   `json:"provider"`
		} `json:"spec"`
	}
	if err := json.Unmarshal(csvJSON, &csv); err != nil {
		return nil, err
	}
	s := csv.Spec
	return marshalNoEscape(csvMetadata{
		Annotations:           csv.Metadata.Annotations,
		APIServiceDefinitions: s.APIServiceDefinitions,
		CRDDescriptions:       s.CRDs,
		Description:           s.Description,
		DisplayName:           s.DisplayName,
		InstallModes:          s.InstallModes,
		Keywords:              s.Keywords,
		Labels:                csv.Metadata.Labels,
		Links:                 s.Links,
		Maintainers:           s.Maintainers,
		Maturity:              s.Maturity,
		MinKubeVersion:        s.MinKubeVersion,
		NativeAPIs:            s.NativeAPIs,
		Provider:              s.Provider,
	})
}

// MigrateCSVMetadata applies opm's "bundle-object-to-csv-metadata"
// migration (`opm render --migrate-level=bundle-object-to-csv-metadata`,
// what the community and Red Hat catalogs are built with) to every bundle of
// cfg: a bundle with an image and a CSV among its olm.bundle.object
// properties loses all of them and gains one olm.csv.metadata property
// instead. Bundles without an image keep their objects (they are their
// only content), and bundles that already have olm.csv.metadata are left
// alone.
func MigrateCSVMetadata(cfg *fbc.DeclarativeConfig) error {
	for i := range cfg.Bundles {
		if err := migrateBundle(&cfg.Bundles[i]); err != nil {
			return fmt.Errorf("migrate bundle %q: %w", cfg.Bundles[i].Name, err)
		}
	}
	return nil
}

func migrateBundle(b *fbc.Bundle) error {
	if b.Image == "" {
		return nil
	}
	csvJSON, err := csvFromObjects(b.Properties)
	if err != nil || csvJSON == nil {
		return err
	}
	kept := make([]fbc.Property, 0, len(b.Properties))
	for _, p := range b.Properties {
		switch p.Type {
		case typeBundleObject:
		case typeCSVMetadata:
			return nil
		default:
			kept = append(kept, p)
		}
	}
	value, err := csvMetadataValue(csvJSON)
	if err != nil {
		return fmt.Errorf("read csv: %w", err)
	}
	b.Properties = append(kept, fbc.Property{Type: typeCSVMetadata, Value: value})
	return nil
}

// csvFromObjects returns, as JSON, the first olm.bundle.object property that
// holds a ClusterServiceVersion (what opm's loader takes for a bundle's
// CSV), or nil when there is none.
func csvFromObjects(props []fbc.Property) ([]byte, error) {
	for i, p := range props {
		if p.Type != typeBundleObject {
			continue
		}
		var v struct {
			Data []byte `json:"data"`
		}
		if err := json.Unmarshal(p.Value, &v); err != nil {
			return nil, fmt.Errorf("parse property[%d] of type %q: %w", i, p.Type, err)
		}
		obj, err := yaml.YAMLToJSON(v.Data)
		if err != nil {
			return nil, fmt.Errorf("convert bundle object property at index %d to JSON: %w", i, err)
		}
		var m map[string]any
		if json.Unmarshal(obj, &m) == nil && m["kind"] == csvKind {
			return obj, nil
		}
	}
	return nil, nil
}

// FollowForm gives b, rendered with its bundle objects (the zero Options),
// the property form of the catalog it is added to: olm.csv.metadata when
// its package's bundles use it, olm.bundle.object when they keep their
// objects (catalogs converted from SQLite indexes do), and for a package
// the catalog does not have yet, the form most of the catalog's bundles
// use (olm.csv.metadata in an empty catalog, as DefaultOptions renders).
// A bundle without an image keeps its objects either way, as in opm.
func FollowForm(cfg *fbc.DeclarativeConfig, b *fbc.Bundle) error {
	var pkgCSV, pkgObj, allCSV, allObj int
	for _, o := range cfg.Bundles {
		if o.Image == "" {
			continue // keeps its objects whatever the form
		}
		csv, obj := false, false
		for _, p := range o.Properties {
			csv = csv || p.Type == typeCSVMetadata
			obj = obj || p.Type == typeBundleObject
		}
		switch {
		case csv && o.Package == b.Package:
			pkgCSV++
		case obj && o.Package == b.Package:
			pkgObj++
		}
		switch {
		case csv:
			allCSV++
		case obj:
			allObj++
		}
	}
	objects := pkgObj > pkgCSV || (pkgObj+pkgCSV == 0 && allObj > allCSV)
	if objects {
		return nil
	}
	return migrateBundle(b)
}
