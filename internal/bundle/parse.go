package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// Annotation keys of metadata/annotations.yaml that place a bundle.
const (
	AnnotationPackage        = "operators.operatorframework.io.bundle.package.v1"
	AnnotationChannels       = "operators.operatorframework.io.bundle.channels.v1"
	AnnotationDefaultChannel = "operators.operatorframework.io.bundle.channel.default.v1"
)

// property is a property as opm's bundle parser carries it: the value is the
// raw JSON it was read from, which is what opm sorts by.
type property struct {
	Type  string          `json:"type"`
	Value json.RawMessage `json:"value"`
}

// key is what opm's propertySet deduplicates by.
func (p property) key() string { return p.Type + "\x00" + string(p.Value) }

// parsed is a registry+v1 bundle as opm's bundle parser (operator-registry
// pkg/registry/parse.go) leaves it.
type parsed struct {
	name       string
	pkg        string
	channels   []string
	defChannel string
	objects    []*object // manifests in file-name order, first CSV only
	csvObject  *object
	csv        *clusterServiceVersion
	crds       []crd
	properties []property // metadata/properties.yaml + derived, deduplicated
	deps       []property // metadata/dependencies.yaml
}

// crd is the part of a CustomResourceDefinition that says which APIs it
// serves.
type crd struct {
	apiVersion string // v1 or v1beta1
	Spec       struct {
		Group    string `json:"group"`
		Version  string `json:"version"` // v1beta1 only
		Versions []struct {
			Name string `json:"name"`
		} `json:"versions"`
		Names struct {
			Kind   string `json:"kind"`
			Plural string `json:"plural"`
		} `json:"names"`
	} `json:"spec"`
}

// parseBundle reads manifests/ and metadata/ of fsys as opm does.
func parseBundle(fsys fs.FS) (*parsed, error) {
	if fsys == nil {
		return nil, errors.New("file system is nil")
	}
	b := &parsed{}
	if err := b.addManifests(fsys, "manifests"); err != nil {
		return nil, err
	}
	if err := b.addMetadata(fsys, "metadata"); err != nil {
		return nil, err
	}
	derived, err := b.derivedProperties()
	if err != nil {
		return nil, fmt.Errorf("failed to derive properties: %w", err)
	}
	b.properties = dedupProperties(append(b.properties, derived...))
	return b, nil
}

// addManifests decodes every regular, non-hidden file directly under dir.
// Files that do not decode into an object with a kind are skipped (opm logs
// a warning and goes on); only the first CSV counts.
func (b *parsed) addManifests(fsys fs.FS, dir string) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return fmt.Errorf("error opening manifests directory: %w", err)
	}
	for _, e := range entries {
		if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		obj := &object{}
		if err := decodeFirst(data, obj); err != nil || obj.m == nil {
			continue
		}
		if obj.kind() == csvKind {
			if b.csvObject != nil {
				continue
			}
			b.csvObject = obj
		}
		b.objects = append(b.objects, obj)
	}
	if len(b.objects) == 0 {
		return errors.New("no bundle objects found")
	}
	if b.csvObject == nil {
		return errors.New("no csv in bundle")
	}
	csvJSON, err := b.csvObject.marshal()
	if err != nil {
		return err
	}
	if b.csv, err = parseCSV(csvJSON); err != nil {
		return fmt.Errorf("read csv: %w", err)
	}
	for _, o := range b.objects {
		if o.kind() != crdKind {
			continue
		}
		group, version := o.groupVersion()
		if version != "v1" && version != "v1beta1" {
			continue // opm ignores CRDs of other versions
		}
		if group != "apiextensions.k8s.io" {
			return fmt.Errorf("error decoding %s CRD: no kind %q is registered for version %q", version, crdKind, o.apiVersion())
		}
		raw, err := o.marshal()
		if err != nil {
			return err
		}
		c := crd{apiVersion: version}
		if err := json.Unmarshal(raw, &c); err != nil {
			return fmt.Errorf("error decoding %s CRD: %w", version, err)
		}
		b.crds = append(b.crds, c)
	}
	b.name = b.csv.Name
	if err := b.allOwnedAPIsInBundle(); err != nil {
		return fmt.Errorf("error checking provided apis in bundle %s: %w", b.name, err)
	}
	return nil
}

// annotationsFile, dependenciesFile and propertiesFile are the shapes opm
// tries every metadata file against.
type annotationsFile struct {
	Annotations struct {
		Package        string `json:"operators.operatorframework.io.bundle.package.v1"`
		Channels       string `json:"operators.operatorframework.io.bundle.channels.v1"`
		DefaultChannel string `json:"operators.operatorframework.io.bundle.channel.default.v1"`
	} `json:"annotations"`
}

type dependenciesFile struct {
	Dependencies []property `json:"dependencies"`
}

type propertiesFile struct {
	Properties []property `json:"properties"`
}

// addMetadata reads the metadata directory the way opm does: every file, in
// name order, is tried as an annotations, a dependencies and a properties
// file; the first of each kind that decodes to something non-empty wins,
// whatever its name.
func (b *parsed) addMetadata(fsys fs.FS, dir string) error {
	entries, err := fs.ReadDir(fsys, dir)
	if err != nil {
		return fmt.Errorf("error opening metadata directory: %w", err)
	}
	var (
		af      *annotationsFile
		gotDeps bool
		gotProp bool
	)
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		data, err := fs.ReadFile(fsys, path.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if af == nil {
			var a annotationsFile
			if decodeFirst(data, &a) == nil && a.Annotations != (annotationsFile{}).Annotations {
				af = &a
			}
		}
		if !gotDeps {
			var d dependenciesFile
			if decodeFirst(data, &d) == nil && len(d.Dependencies) > 0 {
				b.deps, gotDeps = d.Dependencies, true
			}
		}
		if !gotProp {
			var p propertiesFile
			if decodeFirst(data, &p) == nil && len(p.Properties) > 0 {
				b.properties, gotProp = append(b.properties, p.Properties...), true
			}
		}
	}
	if af == nil {
		return errors.New("could not find annotations file")
	}
	b.pkg = af.Annotations.Package
	b.defChannel = af.Annotations.DefaultChannel
	if af.Annotations.Channels != "" {
		b.channels = strings.Split(af.Annotations.Channels, ",")
	}
	return nil
}

// derivedProperties are the properties opm derives from the bundle: the
// CSV's olm.properties annotation, olm.package from the annotations and the
// CSV version, and olm.gvk for every provided API.
func (b *parsed) derivedProperties() ([]property, error) {
	var derived []property
	if raw, ok := b.csv.Annotations[annotationProperties]; ok {
		// opm logs and ignores a malformed annotation, keeping whatever
		// encoding/json decoded before it failed.
		_ = json.Unmarshal([]byte(raw), &derived)
	}
	if b.pkg != "" {
		version, err := b.csv.version()
		if err != nil {
			return nil, err
		}
		release, err := b.csv.release()
		if err != nil {
			return nil, err
		}
		value, err := packageValue(b.pkg, version, release)
		if err != nil {
			return nil, err
		}
		derived = append([]property{{Type: typePackage, Value: value}}, derived...)
	}
	provided, err := b.providedAPIs()
	if err != nil {
		return nil, fmt.Errorf("error getting provided apis: %w", err)
	}
	for _, api := range provided {
		value, err := gvkValue(api.Group, api.Version, api.Kind)
		if err != nil {
			return nil, err
		}
		derived = append(derived, property{Type: typeGVK, Value: value})
	}
	return dedupProperties(derived), nil
}

// dedupProperties keeps the first of equal properties (same type, same raw
// value), as opm's propertySet does.
func dedupProperties(ps []property) []property {
	var out []property
	seen := map[string]bool{}
	for _, p := range ps {
		if seen[p.key()] {
			continue
		}
		seen[p.key()] = true
		out = append(out, p)
	}
	return out
}

// providedAPIs are the APIs the bundle's CRDs serve (every version) and the
// CSV's owned API services, each once, in first-seen order.
func (b *parsed) providedAPIs() ([]apiKey, error) {
	var out []apiKey
	seen := map[apiKey]bool{}
	add := func(k apiKey) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, c := range b.crds {
		for _, v := range c.Spec.Versions {
			add(apiKey{Group: c.Spec.Group, Version: v.Name, Kind: c.Spec.Names.Kind, Plural: c.Spec.Names.Plural})
		}
		if c.apiVersion == "v1beta1" && c.Spec.Version != "" {
			add(apiKey{Group: c.Spec.Group, Version: c.Spec.Version, Kind: c.Spec.Names.Kind, Plural: c.Spec.Names.Plural})
		}
	}
	owned, _, err := b.csv.apiServiceDefinitions()
	if err != nil {
		return nil, fmt.Errorf("error getting apiservice definitions: %w", err)
	}
	for _, d := range owned {
		add(apiKey{Group: d.Group, Version: d.Version, Kind: d.Kind, Plural: d.Name})
	}
	return out, nil
}

// requiredAPIs are the CSV's required CRDs and API services.
func (b *parsed) requiredAPIs() ([]apiKey, error) {
	var out []apiKey
	seen := map[apiKey]bool{}
	_, crds, err := b.csv.crdDefinitions()
	if err != nil {
		return nil, err
	}
	for _, d := range crds {
		k, err := crdAPIKey(d)
		if err != nil {
			return nil, err
		}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	_, apis, err := b.csv.apiServiceDefinitions()
	if err != nil {
		return nil, err
	}
	for _, d := range apis {
		k := apiKey{Group: d.Group, Version: d.Version, Kind: d.Kind, Plural: d.Name}
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	return out, nil
}

// allOwnedAPIsInBundle checks that every CRD the CSV owns is shipped in the
// bundle (opm's AllProvidedAPIsInBundle).
func (b *parsed) allOwnedAPIsInBundle() error {
	provided, err := b.providedAPIs()
	if err != nil {
		return err
	}
	have := map[apiKey]bool{}
	for _, k := range provided {
		have[k] = true
	}
	owned, _, err := b.csv.crdDefinitions()
	if err != nil {
		return err
	}
	for _, d := range owned {
		k, err := crdAPIKey(d)
		if err != nil {
			return err
		}
		if !have[k] {
			return fmt.Errorf("couldn't find %v in bundle. found: %v", k, provided)
		}
	}
	return nil
}
