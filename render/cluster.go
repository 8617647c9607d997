package render

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/ferry-gitops/ferry/spec"
)

// Labels every object Ferry renders carries, so Ferry (and anyone with
// `oc get -l`) can tell what it owns: only objects with both, the instance
// matching, are ever pruned.
const (
	LabelManagedBy    = "app.kubernetes.io/managed-by"
	LabelManagedByVal = "ferry"
	LabelInstance     = "ferry.dev/instance"
)

// AnnotationCatalog names the Catalog an object serves.
const AnnotationCatalog = "ferry.dev/catalog"

// Render-directory paths of the cluster objects other than a catalog's
// CatalogSource and the mirror sets.
const (
	OperatorHubFile    = "cluster/operatorhub.yaml"
	SamplesDir         = "samples"
	SamplesConfigFile  = "samples/config.yaml"
	SamplesMappingFile = "samples/mapping.txt"
)

// ClusterCatalogFile is a catalog's ClusterCatalog manifest.
func ClusterCatalogFile(catalog string) string {
	return path.Join(CatalogDir(catalog), "clustercatalog.yaml")
}

// Labels returns the labels of every object rendered for instance (the
// config repository's name for itself: its Mirror's name).
func Labels(instance string) map[string]string {
	return map[string]string{LabelManagedBy: LabelManagedByVal, LabelInstance: instance}
}

type objectMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type clusterCatalog struct {
	APIVersion string             `json:"apiVersion"`
	Kind       string             `json:"kind"`
	Metadata   objectMeta         `json:"metadata"`
	Spec       clusterCatalogSpec `json:"spec"`
}

type clusterCatalogSpec struct {
	Source struct {
		Type  string `json:"type"`
		Image struct {
			Ref string `json:"ref"`
		} `json:"image"`
	} `json:"source"`
	Priority         int    `json:"priority,omitempty"`
	AvailabilityMode string `json:"availabilityMode,omitempty"`
}

// ClusterCatalog renders the OLM v1 ClusterCatalog serving image, pinned
// by digest. It has no pollIntervalMinutes: the API refuses polling a
// digest, and Ferry moves the reference itself.
func ClusterCatalog(c *spec.Catalog, image string, labels map[string]string) ([]byte, error) {
	if !strings.Contains(image, "@sha256:") {
		return nil, fmt.Errorf("catalog %s: ClusterCatalog image %q is not pinned by digest", c.Metadata.Name, image)
	}
	cc := clusterCatalog{
		APIVersion: "olm.operatorframework.io/v1",
		Kind:       "ClusterCatalog",
		Metadata: objectMeta{
			Name:        c.Spec.ClusterCatalog.Name,
			Labels:      labels,
			Annotations: map[string]string{AnnotationCatalog: c.Metadata.Name},
		},
	}
	cc.Spec.Source.Type = "Image"
	cc.Spec.Source.Image.Ref = image
	cc.Spec.Priority = c.Spec.ClusterCatalog.Priority
	cc.Spec.AvailabilityMode = c.Spec.ClusterCatalog.AvailabilityMode
	return marshalYAML(cc)
}

type operatorHub struct {
	APIVersion string               `json:"apiVersion"`
	Kind       string               `json:"kind"`
	Metadata   objectMeta           `json:"metadata"`
	Spec       spec.OperatorHubSpec `json:"spec"`
}

// OperatorHub renders the cluster's OperatorHub singleton ("cluster").
func OperatorHub(h *spec.OperatorHubSpec, labels map[string]string) ([]byte, error) {
	return marshalYAML(operatorHub{
		APIVersion: "config.openshift.io/v1",
		Kind:       "OperatorHub",
		Metadata:   objectMeta{Name: "cluster", Labels: labels},
		Spec:       *h,
	})
}

type samplesConfig struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   objectMeta        `json:"metadata"`
	Spec       samplesConfigSpec `json:"spec"`
}

type samplesConfigSpec struct {
	ManagementState     string   `json:"managementState"`
	SamplesRegistry     string   `json:"samplesRegistry,omitempty"`
	Architectures       []string `json:"architectures,omitempty"`
	SkippedImagestreams []string `json:"skippedImagestreams,omitempty"`
	SkippedTemplates    []string `json:"skippedTemplates,omitempty"`
	SkippedHelmCharts   []string `json:"skippedHelmCharts,omitempty"`
}

// SamplesConfig renders configs.samples.operator.openshift.io/cluster:
// the spec's fields, with skipped (the streams whose images could not be
// mirrored) added to skippedImagestreams, sorted, once each.
func SamplesConfig(s *spec.SamplesSpec, skipped []string, labels map[string]string) ([]byte, error) {
	streams := append(slices.Clone(s.SkippedImagestreams), skipped...)
	slices.Sort(streams)
	return marshalYAML(samplesConfig{
		APIVersion: "samples.operator.openshift.io/v1",
		Kind:       "Config",
		Metadata:   objectMeta{Name: "cluster", Labels: labels},
		Spec: samplesConfigSpec{
			ManagementState:     s.ManagementState,
			SamplesRegistry:     s.SamplesRegistry,
			Architectures:       s.Architectures,
			SkippedImagestreams: slices.Compact(streams),
			SkippedTemplates:    s.SkippedTemplates,
			SkippedHelmCharts:   s.SkippedHelmCharts,
		},
	})
}
