package spec

import (
	"encoding/json"
	"strings"
)

// APIVersion is the group/version of Ferry's own kinds. The group is Ferry's
// so a document can never be mistaken for a cluster object, and v1alpha1
// says the shape may still change.
const APIVersion = "ferry.dev/v1alpha1"

// The kinds Ferry reads.
const (
	KindCatalog = "Catalog"
	KindMirror  = "Mirror"
	KindSamples = "Samples"
)

// TypeMeta is the apiVersion/kind pair every document starts with.
type TypeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// ObjectMeta names an object. Labels and annotations are accepted so a
// config repo can carry its own bookkeeping; Ferry ignores them.
type ObjectMeta struct {
	Name        string            `json:"name"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

// Origin says where an object came from, so any later finding about it
// (at plan or apply time too) can name the file and line.
type Origin struct {
	File string // slash path relative to the loaded root
	Line int    // line of the document's first key
	// FromOCMirror is set when the object was mapped from an oc-mirror
	// ImageSetConfiguration rather than written as a Ferry kind.
	FromOCMirror bool
	// ocPath is the oc-mirror path an object was mapped from, e.g.
	// mirror.operators[2], so findings name the field the user wrote.
	ocPath string
	lines  map[string]int
}

// fieldPath translates a Ferry field path of a mapped object back to the
// oc-mirror path it came from.
func (o *Origin) fieldPath(field string) string {
	if o == nil || o.ocPath == "" || !strings.HasPrefix(field, "spec.") {
		return field
	}
	rest := strings.TrimPrefix(field, "spec.")
	for from, to := range map[string]string{"source": "catalog", "includeDependencies": "skipDependencies", "target": "targetCatalog"} {
		if rest == from || strings.HasPrefix(rest, from+".") {
			rest = to + strings.TrimPrefix(rest, from)
		}
	}
	return o.ocPath + "." + rest
}

// LineOf returns the line of a field path, or of its nearest enclosing field
// that appears in the document, or the object's own line.
func (o *Origin) LineOf(path string) int {
	if o == nil {
		return 0
	}
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := o.lines[p]; ok {
			return l
		}
	}
	return o.Line
}

func parentPath(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		switch p[i] {
		case '.':
			return p[:i]
		case '[':
			return p[:i]
		}
	}
	return ""
}

// Catalog is one catalog to serve to the cluster: a source catalog, the part
// of it to keep, extra bundles to add, and where the built image goes.
type Catalog struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta  `json:"metadata"`
	Spec     CatalogSpec `json:"spec"`
	Origin   *Origin     `json:"-"`
}

// CatalogSpec is the desired content of one catalog.
type CatalogSpec struct {
	// Source is the catalog to start from: an FBC or SQLite index image
	// by tag or digest, or a local FBC directory written as a path that
	// starts with "./", "../" or "/" (relative paths are relative to the
	// file that names them).
	Source string `json:"source"`
	// Platform picks the variant of a multi-arch source image to read, as
	// os/arch[/variant]. Default linux/amd64.
	Platform string `json:"platform,omitempty"`
	// Packages to keep; none means the whole catalog.
	Packages []Package `json:"packages,omitempty"`
	// IncludeDependencies also keeps the bundles that kept bundles require
	// through olm.package.required and olm.gvk.required.
	IncludeDependencies bool `json:"includeDependencies,omitempty"`
	// Bundles are extra registry+v1 bundle images to add, what
	// `opm index add --bundles` did: an image reference, an OCI layout
	// (oci://DIR[:tag]), or a mapping with image, addMode and
	// replaceExisting.
	Bundles []BundleRef `json:"bundles,omitempty"`
	// AddMode places added bundles that channels already have bundles
	// for, as `opm index add --mode` did: replaces (the default), semver
	// or semver-skippatch. A bundle's own addMode overrides it.
	AddMode string `json:"addMode,omitempty"`
	// Target is the repository, with an optional tag, the built catalog
	// image is pushed to. Rendered manifests always pin its digest. Default:
	// the Mirror registry plus the source's repository path and tag.
	Target string `json:"target,omitempty"`
	// Base is the image that provides opm for the built catalog. Default:
	// the source image itself (its lower layers).
	Base string `json:"base,omitempty"`
	// CatalogSource is how the cluster is pointed at the built image.
	CatalogSource CatalogSourceSpec `json:"catalogSource,omitempty"`
	// ServeAs lists the objects that serve the built catalog:
	// CatalogSource (OLM classic), ClusterCatalog (OLM v1, OpenShift 4.18+)
	// or both. Default: CatalogSource.
	ServeAs []string `json:"serveAs,omitempty"`
	// ClusterCatalog shapes the rendered ClusterCatalog.
	ClusterCatalog ClusterCatalogSpec `json:"clusterCatalog,omitempty"`
}

// The values of CatalogSpec.ServeAs.
const (
	ServeCatalogSource  = "CatalogSource"
	ServeClusterCatalog = "ClusterCatalog"
)

// Serves reports whether the catalog is served by the given kind.
func (s *CatalogSpec) Serves(kind string) bool {
	for _, k := range s.ServeAs {
		if k == kind {
			return true
		}
	}
	return false
}

// ClusterCatalogSpec shapes the rendered olm.operatorframework.io/v1
// ClusterCatalog (cluster-scoped).
type ClusterCatalogSpec struct {
	// Name defaults to the Catalog's name.
	Name string `json:"name,omitempty"`
	// Priority orders ClusterCatalogs offering the same bundle.
	Priority int `json:"priority,omitempty"`
	// AvailabilityMode is Available (default) or Unavailable.
	AvailabilityMode string `json:"availabilityMode,omitempty"`
}

// BundleRef is one bundle to add. Written as a plain string it is the
// image alone.
type BundleRef struct {
	// Image is the bundle image by tag or digest, or oci://DIR[:tag].
	Image string `json:"image"`
	// AddMode overrides the Catalog's addMode for this bundle.
	AddMode string `json:"addMode,omitempty"`
	// ReplaceExisting lets this bundle replace a bundle of the same CSV
	// name that heads its channels: a vendor's rebuild of a released
	// bundle, what `opm index add --overwrite-latest` did.
	ReplaceExisting bool `json:"replaceExisting,omitempty"`
}

// The add modes of CatalogSpec.AddMode and BundleRef.AddMode.
const (
	AddModeReplaces        = "replaces"
	AddModeSemver          = "semver"
	AddModeSemverSkipPatch = "semver-skippatch"
)

// decodeScalar reads the plain-string form.
func (b *BundleRef) decodeScalar(s string) { b.Image = s }

// MarshalJSON writes the plain-string form when only the image is set, so
// effective specs print the way they are usually written.
func (b BundleRef) MarshalJSON() ([]byte, error) {
	if b.AddMode == "" && !b.ReplaceExisting {
		return json.Marshal(b.Image)
	}
	type plain BundleRef
	return json.Marshal(plain(b))
}

// UnmarshalJSON accepts both forms MarshalJSON writes.
func (b *BundleRef) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		*b = BundleRef{}
		return json.Unmarshal(data, &b.Image)
	}
	type plain BundleRef
	return json.Unmarshal(data, (*plain)(b))
}

// String is the image, with the options that are set.
func (b BundleRef) String() string {
	var opts []string
	if b.AddMode != "" {
		opts = append(opts, "addMode "+b.AddMode)
	}
	if b.ReplaceExisting {
		opts = append(opts, "replaceExisting")
	}
	if len(opts) == 0 {
		return b.Image
	}
	return b.Image + " (" + strings.Join(opts, ", ") + ")"
}

// Package selects part of one package of the source catalog.
type Package struct {
	Name string `json:"name"`
	// DefaultChannel replaces the package's default channel; required when
	// the selection drops the original default channel.
	DefaultChannel string    `json:"defaultChannel,omitempty"`
	Channels       []Channel `json:"channels,omitempty"`
	// MinVersion and MaxVersion bound every channel of the package. They
	// cannot be combined with channel-level bounds.
	MinVersion string `json:"minVersion,omitempty"`
	MaxVersion string `json:"maxVersion,omitempty"`
	// Full keeps every bundle instead of only channel heads.
	Full bool `json:"full,omitempty"`
}

// Channel selects one channel of a package. With no bounds only its head
// is kept; with bounds, every bundle in range the upgrade graph reaches.
type Channel struct {
	Name       string `json:"name"`
	MinVersion string `json:"minVersion,omitempty"`
	MaxVersion string `json:"maxVersion,omitempty"`
}

// CatalogSourceSpec shapes the rendered CatalogSource.
type CatalogSourceSpec struct {
	// Name defaults to the Catalog's name.
	Name string `json:"name,omitempty"`
	// Namespace defaults to openshift-marketplace, where OperatorHub looks.
	Namespace   string `json:"namespace,omitempty"`
	DisplayName string `json:"displayName,omitempty"`
	Publisher   string `json:"publisher,omitempty"`
	// Priority orders CatalogSources offering the same package.
	Priority int `json:"priority,omitempty"`
	// PollInterval, a Go duration such as 30m, sets
	// updateStrategy.registryPoll.interval. Empty means no polling: Ferry
	// pins digests and updates spec.image itself.
	PollInterval string `json:"pollInterval,omitempty"`
	// SecurityContextConfig is legacy or restricted; empty lets OLM follow
	// the namespace's pod security level.
	SecurityContextConfig string `json:"securityContextConfig,omitempty"`
}

// Mirror describes the destination registry and what is copied there.
type Mirror struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta `json:"metadata"`
	Spec     MirrorSpec `json:"spec"`
	Origin   *Origin    `json:"-"`
}

// MirrorSpec is the desired mirror.
type MirrorSpec struct {
	// Registry is the destination, host[:port][/namespace...].
	Registry string `json:"registry"`
	// MaxPathComponents flattens destination paths for registries that
	// limit repository depth: components past the limit are joined with
	// "-", as `oc adm catalog mirror --max-components` does. 0: no limit.
	MaxPathComponents int `json:"maxPathComponents,omitempty"`
	// KeepSourceRegistry puts the source registry's host in destination
	// paths (registry/namespace/quay.io/org/repo), like skopeo sync
	// --scoped. Without it the host is dropped, as oc does, and two
	// registries serving one path (quay.io/netapp/trident and
	// registry.connect.redhat.com/netapp/trident, both in the certified
	// catalog) collide: an error before anything is copied.
	KeepSourceRegistry bool `json:"keepSourceRegistry,omitempty"`
	// Platforms are the children of multi-arch images to copy, as
	// os/arch[/variant]; empty copies all. Manifest-list digests are
	// preserved either way.
	Platforms []string `json:"platforms,omitempty"`
	// AdditionalImages are copied besides what the catalogs reference.
	AdditionalImages []string `json:"additionalImages,omitempty"`
	// BlockedImages are regular expressions; an image whose reference
	// matches any of them is never copied.
	BlockedImages []string `json:"blockedImages,omitempty"`
	// Objects are the cluster mirror objects to render. Default:
	// ImageDigestMirrorSet and ImageTagMirrorSet.
	Objects []string `json:"objects,omitempty"`
	// MirrorSourcePolicy is NeverContactSource or AllowContactingSource
	// (the cluster's default when empty). ImageContentSourcePolicy cannot
	// express it.
	MirrorSourcePolicy string `json:"mirrorSourcePolicy,omitempty"`
	// InsecureRegistries are host[:port] reached over plain HTTP or
	// without TLS verification.
	InsecureRegistries []string `json:"insecureRegistries,omitempty"`
	// OperatorHub, when set, renders the cluster's OperatorHub "cluster"
	// object: the disconnected procedure turns the default sources off,
	// since they point at registries the cluster cannot reach.
	OperatorHub *OperatorHubSpec `json:"operatorHub,omitempty"`
}

// OperatorHubSpec is config.openshift.io/v1 OperatorHub's spec.
type OperatorHubSpec struct {
	DisableAllDefaultSources bool                `json:"disableAllDefaultSources,omitempty"`
	Sources                  []OperatorHubSource `json:"sources,omitempty"`
}

// OperatorHubSource enables or disables one default CatalogSource.
type OperatorHubSource struct {
	Name     string `json:"name"`
	Disabled bool   `json:"disabled"`
}

// The cluster mirror objects a Mirror can render.
const (
	ObjectIDMS = "ImageDigestMirrorSet"
	ObjectITMS = "ImageTagMirrorSet"
	ObjectICSP = "ImageContentSourcePolicy"
)

// The values of MirrorSpec.MirrorSourcePolicy (config.openshift.io/v1).
const (
	NeverContactSource    = "NeverContactSource"
	AllowContactingSource = "AllowContactingSource"
)

// Samples is the Cluster Samples Operator's configuration
// (configs.samples.operator.openshift.io/cluster) and whether Ferry mirrors
// the sample images.
type Samples struct {
	TypeMeta `json:",inline"`
	Metadata ObjectMeta  `json:"metadata"`
	Spec     SamplesSpec `json:"spec"`
	Origin   *Origin     `json:"-"`
}

// SamplesSpec mirrors samples.operator.openshift.io/v1 ConfigSpec plus
// Ferry's mirroring switches.
type SamplesSpec struct {
	// ManagementState is Managed, Unmanaged or Removed. Default Managed.
	ManagementState string `json:"managementState,omitempty"`
	// SamplesRegistry is where imagestreams import from. Default: the Mirror
	// registry when MirrorImages is set.
	SamplesRegistry string `json:"samplesRegistry,omitempty"`
	// Architectures: x86_64, aarch64, ppc64le, s390x. Changing them makes
	// Ferry go Removed -> edit -> Managed, the only way the operator allows.
	Architectures       []string `json:"architectures,omitempty"`
	SkippedImagestreams []string `json:"skippedImagestreams,omitempty"`
	SkippedTemplates    []string `json:"skippedTemplates,omitempty"`
	SkippedHelmCharts   []string `json:"skippedHelmCharts,omitempty"`
	// MirrorImages makes Ferry copy the sample images to the Mirror and add
	// every stream it could not copy to skippedImagestreams.
	MirrorImages bool `json:"mirrorImages,omitempty"`
	// ImagesFrom lists the images per <stream>_<tag>: "cluster" (the
	// imagestreamtag-to-image ConfigMap in
	// openshift-cluster-samples-operator, the default) or a relative path to
	// a JSON or YAML file with the same keys.
	ImagesFrom string `json:"imagesFrom,omitempty"`
}

// The values of SamplesSpec.ManagementState.
const (
	Managed   = "Managed"
	Unmanaged = "Unmanaged"
	Removed   = "Removed"
)

// ImagesFromCluster reads the sample images from the cluster's ConfigMap.
const ImagesFromCluster = "cluster"

// DefaultCatalogSourceNamespace is where OperatorHub reads CatalogSources.
const DefaultCatalogSourceNamespace = "openshift-marketplace"

// DefaultPlatform is the variant of a multi-arch catalog read by default.
const DefaultPlatform = "linux/amd64"
