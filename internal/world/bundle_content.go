package world

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"
)

// Property types the world maps onto bundle manifests and SQLite tables.
const (
	propPackage         = "olm.package"
	propGVK             = "olm.gvk"
	propGVKRequired     = "olm.gvk.required"
	propPackageRequired = "olm.package.required"
	propBundleObject    = "olm.bundle.object"
	propCSVMetadata     = "olm.csv.metadata"
)

// Bundle image labels (and annotations.yaml keys) of the registry+v1 format.
const (
	labelMediaType      = "operators.operatorframework.io.bundle.mediatype.v1"
	labelManifests      = "operators.operatorframework.io.bundle.manifests.v1"
	labelMetadata       = "operators.operatorframework.io.bundle.metadata.v1"
	labelPackage        = "operators.operatorframework.io.bundle.package.v1"
	labelChannels       = "operators.operatorframework.io.bundle.channels.v1"
	labelDefaultChannel = "operators.operatorframework.io.bundle.channel.default.v1"
)

// bundleContent is a registry+v1 bundle: the Kubernetes objects of
// manifests/ (the CSV first) and the annotations of metadata/annotations.yaml.
type bundleContent struct {
	pkg, name, version string
	image              string // the rewritten bundle image, "" if the catalog has none
	objects            []map[string]any
	annotations        map[string]string
	provided, required []gvk
	entry              entry // replaces/skips/skipRange the CSV carries
}

type gvk struct {
	Group, Version, Kind, Plural string
}

// csv returns the ClusterServiceVersion object.
func (b *bundleContent) csv() map[string]any {
	for _, o := range b.objects {
		if o["kind"] == "ClusterServiceVersion" {
			return o
		}
	}
	return nil
}

// files lays the bundle out as an image layer expects it.
func (b *bundleContent) files() ([]file, error) {
	var out []file
	seen := map[string]int{}
	for _, o := range b.objects {
		name := manifestFileName(o)
		if n := seen[name]; n > 0 {
			name = fmt.Sprintf("%d-%s", n, name)
		}
		seen[manifestFileName(o)]++
		y, err := yamlOf(o)
		if err != nil {
			return nil, err
		}
		out = append(out, file{Name: "manifests/" + name, Data: y})
	}
	ann, err := yamlOf(map[string]any{"annotations": b.annotations})
	if err != nil {
		return nil, err
	}
	out = append(out, file{Name: "metadata/annotations.yaml", Data: ann})
	return out, nil
}

// manifestFileName follows operator-sdk's naming: <name>.<kind>.yaml, with
// the conventional short forms for CSVs and CRDs.
func manifestFileName(o map[string]any) string {
	kind, _ := o["kind"].(string)
	md, _ := o["metadata"].(map[string]any)
	name, _ := md["name"].(string)
	switch kind {
	case "ClusterServiceVersion":
		return name + ".clusterserviceversion.yaml"
	case "CustomResourceDefinition":
		return name + ".crd.yaml"
	}
	return strings.ToLower(name + "." + kind + ".yaml")
}

// newBundleContent builds the manifests of bundle d. Bundles carrying
// olm.bundle.object properties (catalogs converted from SQLite) keep those
// objects, with image references rewritten; the rest get a CSV and CRDs
// synthesised from olm.csv.metadata, olm.gvk and the channel entry, which is
// what `opm render` of the original bundle image would have produced them
// from. References rewrite does not know yet (other bundles' images, which
// are pushed concurrently) stay as the source catalog spells them.
func newBundleContent(p *pkgInfo, d doc, rewrite func(string) (string, bool)) (*bundleContent, error) {
	b := &bundleContent{pkg: p.name, name: d.str("name")}
	b.image, _ = rewrite(d.str("image"))
	if b.image == "" {
		b.image = d.str("image")
	}
	b.entry, _ = p.entryOf(b.name)

	props := bundleProperties(d)
	var meta map[string]any
	for _, pr := range props {
		v, _ := pr.Value.(map[string]any)
		switch pr.Type {
		case propPackage:
			b.version, _ = v["version"].(string)
		case propGVK:
			b.provided = append(b.provided, gvkOf(v))
		case propGVKRequired:
			b.required = append(b.required, gvkOf(v))
		case propCSVMetadata:
			meta = v
		case propBundleObject:
			data, _ := v["data"].(string)
			o, err := decodeObject(data)
			if err != nil {
				return nil, fmt.Errorf("bundle %s: olm.bundle.object: %w", b.name, err)
			}
			rewritten, _ := rewriteStrings(o, rewrite)
			b.objects = append(b.objects, rewritten.(map[string]any))
		}
	}
	if b.version == "" {
		return nil, fmt.Errorf("bundle %s: no olm.package property with a version", b.name)
	}
	plurals := pluralsFrom(meta, b.objects)
	for i := range b.provided {
		b.provided[i].Plural = pluralFor(plurals, b.provided[i])
	}
	for i := range b.required {
		b.required[i].Plural = pluralFor(plurals, b.required[i])
	}

	if b.csv() == nil {
		b.objects = synthesiseObjects(p, d, b, meta, rewrite)
	} else {
		// Keep the CSV first: it is the object every reader looks for.
		sort.SliceStable(b.objects, func(i, j int) bool {
			return b.objects[i]["kind"] == "ClusterServiceVersion" && b.objects[j]["kind"] != "ClusterServiceVersion"
		})
	}

	channels := p.channelsOf(b.name)
	def := p.defaultChannel
	if !contains(channels, def) && len(channels) > 0 {
		def = channels[0]
	}
	if len(channels) == 0 {
		channels = []string{def}
	}
	b.annotations = map[string]string{
		labelMediaType:      "registry+v1",
		labelManifests:      "manifests/",
		labelMetadata:       "metadata/",
		labelPackage:        p.name,
		labelChannels:       strings.Join(channels, ","),
		labelDefaultChannel: def,
	}
	return b, nil
}

func gvkOf(v map[string]any) gvk {
	g := gvk{}
	g.Group, _ = v["group"].(string)
	g.Version, _ = v["version"].(string)
	g.Kind, _ = v["kind"].(string)
	return g
}

// pluralsFrom learns resource plurals from CRD names ("plural.group") in
// crdDescriptions and in CRD objects; catalogs state kinds, not plurals.
func pluralsFrom(meta map[string]any, objects []map[string]any) map[string]string {
	out := map[string]string{}
	crds, _ := meta["crdDescriptions"].(map[string]any)
	for _, sec := range []string{"owned", "required"} {
		list, _ := crds[sec].([]any)
		for _, it := range list {
			m, _ := it.(map[string]any)
			name, _ := m["name"].(string)
			kind, _ := m["kind"].(string)
			if plural, group, ok := strings.Cut(name, "."); ok {
				out[group+"/"+kind] = plural
			}
		}
	}
	for _, o := range objects {
		if o["kind"] != "CustomResourceDefinition" {
			continue
		}
		spec, _ := o["spec"].(map[string]any)
		names, _ := spec["names"].(map[string]any)
		group, _ := spec["group"].(string)
		kind, _ := names["kind"].(string)
		plural, _ := names["plural"].(string)
		if plural != "" {
			out[group+"/"+kind] = plural
		}
	}
	return out
}

func pluralFor(plurals map[string]string, g gvk) string {
	if p, ok := plurals[g.Group+"/"+g.Kind]; ok {
		return p
	}
	return strings.ToLower(g.Kind) + "s"
}

// synthesiseObjects writes a minimal but valid CSV plus one CRD per provided
// group/kind (except APIs served by an APIService).
func synthesiseObjects(p *pkgInfo, d doc, b *bundleContent, meta map[string]any, rewrite func(string) (string, bool)) []map[string]any {
	annotations := map[string]any{}
	if a, ok := meta["annotations"].(map[string]any); ok {
		for k, v := range a {
			annotations[k] = v
		}
	}
	if b.entry.SkipRange != "" {
		annotations["olm.skipRange"] = b.entry.SkipRange
	}
	metadata := map[string]any{"name": b.name}
	if len(annotations) > 0 {
		metadata["annotations"] = annotations
	}
	if l, ok := meta["labels"].(map[string]any); ok && len(l) > 0 {
		metadata["labels"] = l
	}

	spec := map[string]any{"version": b.version}
	for _, k := range []string{"displayName", "description", "keywords", "links", "maintainers", "maturity", "provider", "minKubeVersion", "installModes", "nativeAPIs"} {
		if v, ok := meta[k]; ok {
			spec[k] = v
		}
	}
	if _, ok := spec["displayName"]; !ok {
		spec["displayName"] = p.name
	}
	if _, ok := spec["installModes"]; !ok {
		spec["installModes"] = []any{
			map[string]any{"type": "OwnNamespace", "supported": true},
			map[string]any{"type": "SingleNamespace", "supported": true},
			map[string]any{"type": "MultiNamespace", "supported": false},
			map[string]any{"type": "AllNamespaces", "supported": true},
		}
	}
	if b.entry.Replaces != "" {
		spec["replaces"] = b.entry.Replaces
	}
	if len(b.entry.Skips) > 0 {
		spec["skips"] = toAny(b.entry.Skips)
	}
	if p.icon != nil {
		spec["icon"] = []any{p.icon}
	}

	apiServiceOwned := map[string]bool{}
	if asd, ok := meta["apiServiceDefinitions"].(map[string]any); ok && len(asd) > 0 {
		spec["apiservicedefinitions"] = asd
		owned, _ := asd["owned"].([]any)
		for _, it := range owned {
			m, _ := it.(map[string]any)
			g, _ := m["group"].(string)
			k, _ := m["kind"].(string)
			apiServiceOwned[g+"/"+k] = true
		}
	}

	// CRDs: one object per group/kind, all its versions served.
	type crdKey struct{ group, kind string }
	versions := map[crdKey][]string{}
	var order []crdKey
	for _, g := range b.provided {
		k := crdKey{g.Group, g.Kind}
		if g.Group == "" || apiServiceOwned[g.Group+"/"+g.Kind] {
			continue
		}
		if _, ok := versions[k]; !ok {
			order = append(order, k)
		}
		if !contains(versions[k], g.Version) {
			versions[k] = append(versions[k], g.Version)
		}
	}
	crdDescs, _ := meta["crdDescriptions"].(map[string]any)
	owned := []any{}
	if list, ok := crdDescs["owned"].([]any); ok && len(list) > 0 {
		owned = list
	} else {
		for _, g := range b.provided {
			if g.Group == "" || apiServiceOwned[g.Group+"/"+g.Kind] {
				continue
			}
			owned = append(owned, map[string]any{"name": g.Plural + "." + g.Group, "version": g.Version, "kind": g.Kind})
		}
	}
	required := []any{}
	if list, ok := crdDescs["required"].([]any); ok {
		required = append(required, list...)
	}
	for _, g := range b.required {
		name := g.Plural + "." + g.Group
		if !hasCRDDesc(required, name, g.Version, g.Kind) {
			required = append(required, map[string]any{"name": name, "version": g.Version, "kind": g.Kind})
		}
	}
	crds := map[string]any{"owned": owned}
	if len(required) > 0 {
		crds["required"] = required
	}
	spec["customresourcedefinitions"] = crds

	// Related images and the operator deployment, pointing at the pushed
	// images so the bundle and the catalog tell the same story. The bundle's
	// own image is not listed: a bundle cannot contain its own digest.
	var related []any
	operatorImage := ""
	for _, ri := range relatedImages(d) {
		if ri.Image == d.str("image") {
			continue
		}
		img := ri.Image
		if r, ok := rewrite(img); ok {
			img = r
		}
		if operatorImage == "" {
			operatorImage = img
		}
		if ri.Name != "" {
			related = append(related, map[string]any{"name": ri.Name, "image": img})
		}
	}
	if len(related) > 0 {
		spec["relatedImages"] = related
	}
	deployments := []any{}
	if operatorImage != "" {
		dep := dnsLabel(p.name + "-controller-manager")
		labels := map[string]any{"control-plane": dep}
		deployments = append(deployments, map[string]any{
			"name": dep,
			"spec": map[string]any{
				"replicas": 1,
				"selector": map[string]any{"matchLabels": labels},
				"template": map[string]any{
					"metadata": map[string]any{"labels": labels},
					"spec": map[string]any{
						"serviceAccountName": dep,
						"containers":         []any{map[string]any{"name": "manager", "image": operatorImage}},
					},
				},
			},
		})
	}
	spec["install"] = map[string]any{
		"strategy": "deployment",
		"spec":     map[string]any{"deployments": deployments},
	}

	objs := []map[string]any{{
		"apiVersion": "operators.coreos.com/v1alpha1",
		"kind":       "ClusterServiceVersion",
		"metadata":   metadata,
		"spec":       spec,
	}}
	for _, k := range order {
		plural := pluralFor(pluralsFrom(meta, nil), gvk{Group: k.group, Kind: k.kind})
		vs := versions[k]
		var vlist []any
		for i, v := range vs {
			vlist = append(vlist, map[string]any{
				"name": v, "served": true, "storage": i == 0,
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object", "x-kubernetes-preserve-unknown-fields": true,
				}},
			})
		}
		objs = append(objs, map[string]any{
			"apiVersion": "apiextensions.k8s.io/v1",
			"kind":       "CustomResourceDefinition",
			"metadata":   map[string]any{"name": plural + "." + k.group},
			"spec": map[string]any{
				"group": k.group,
				"names": map[string]any{
					"kind": k.kind, "listKind": k.kind + "List",
					"plural": plural, "singular": strings.ToLower(k.kind),
				},
				"scope":    "Namespaced",
				"versions": vlist,
			},
		})
	}
	return objs
}

func hasCRDDesc(list []any, name, version, kind string) bool {
	for _, it := range list {
		m, _ := it.(map[string]any)
		if m["name"] == name && m["version"] == version && m["kind"] == kind {
			return true
		}
	}
	return false
}

// dnsLabel trims s to a valid Kubernetes object name.
func dnsLabel(s string) string {
	s = strings.ToLower(s)
	var b strings.Builder
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' {
			b.WriteRune(r)
		} else {
			b.WriteByte('-')
		}
	}
	out := strings.Trim(b.String(), "-")
	if len(out) > 63 {
		out = strings.TrimRight(out[:63], "-")
	}
	return out
}

// decodeObject decodes an olm.bundle.object payload (base64 JSON or YAML).
func decodeObject(data string) (map[string]any, error) {
	raw, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		return nil, err
	}
	j, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.UseNumber()
	var o map[string]any
	if err := dec.Decode(&o); err != nil {
		return nil, err
	}
	return o, nil
}

// rewriteStrings replaces every string in v that rewrite knows, reporting
// whether anything changed. Objects embedded in a catalog carry image
// references in many places (relatedImages, containers, annotations); exact
// matches are the safe subset to rewrite.
func rewriteStrings(v any, rewrite func(string) (string, bool)) (any, bool) {
	switch t := v.(type) {
	case string:
		if r, ok := rewrite(t); ok && r != t {
			return r, true
		}
		return t, false
	case map[string]any:
		changed := false
		for k, e := range t {
			if n, c := rewriteStrings(e, rewrite); c {
				t[k] = n
				changed = true
			}
		}
		return t, changed
	case []any:
		changed := false
		for i, e := range t {
			if n, c := rewriteStrings(e, rewrite); c {
				t[i] = n
				changed = true
			}
		}
		return t, changed
	}
	return v, false
}

// marshalJSON encodes v compactly without HTML escaping, so "<" in a
// description stays "<" as in the source catalog.
func marshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func yamlOf(v any) ([]byte, error) {
	j, err := marshalJSON(v)
	if err != nil {
		return nil, err
	}
	return yaml.JSONToYAML(j)
}

func contains(ss []string, s string) bool {
	for _, e := range ss {
		if e == s {
			return true
		}
	}
	return false
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
