package bundle

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// csvKind and crdKind are the kinds the parser singles out.
const (
	csvKind = "ClusterServiceVersion"
	crdKind = "CustomResourceDefinition"
)

// CSV annotations opm reads.
const (
	annotationSkipRange  = "olm.skipRange"
	annotationProperties = "olm.properties"
)

// clusterServiceVersion is the part of a CSV opm's bundle parser reads:
// metadata as typed fields and spec as raw JSON, looked up key by key like
// operator-registry's registry.ClusterServiceVersion.
type clusterServiceVersion struct {
	Name        string
	Annotations map[string]string
	Labels      map[string]string
	// spec maps spec's keys to their raw values; specErr is why spec could
	// not be read (opm fails every spec lookup then, so a CSV without a
	// spec cannot be rendered).
	spec    map[string]json.RawMessage
	rawSpec json.RawMessage
	specErr error
}

func parseCSV(data []byte) (*clusterServiceVersion, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, err
	}
	var md struct {
		Metadata struct {
			Name        string            `json:"name"`
			Annotations map[string]string `json:"annotations"`
			Labels      map[string]string `json:"labels"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(data, &md); err != nil {
		return nil, fmt.Errorf("csv metadata: %w", err)
	}
	c := &clusterServiceVersion{
		Name:        md.Metadata.Name,
		Annotations: md.Metadata.Annotations,
		Labels:      md.Metadata.Labels,
		rawSpec:     top["spec"],
	}
	c.specErr = json.Unmarshal(c.rawSpec, &c.spec)
	return c, nil
}

// specValue returns spec[key], or nil when spec has no such key or it is
// null. The lookup is exact, as opm's map lookups are.
func (c *clusterServiceVersion) specValue(key string) (json.RawMessage, error) {
	if c.specErr != nil {
		return nil, c.specErr
	}
	v, ok := c.spec[key]
	if !ok || string(v) == "null" {
		return nil, nil
	}
	return v, nil
}

func (c *clusterServiceVersion) specString(key string) (string, error) {
	raw, err := c.specValue(key)
	if err != nil || raw == nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("spec.%s: %w", key, err)
	}
	return s, nil
}

// version is spec.version as written; it must be a string.
func (c *clusterServiceVersion) version() (string, error) { return c.specString("version") }

// replaces is spec.replaces.
func (c *clusterServiceVersion) replaces() (string, error) { return c.specString("replaces") }

// skips is spec.skips.
func (c *clusterServiceVersion) skips() ([]string, error) {
	raw, err := c.specValue("skips")
	if err != nil || raw == nil {
		return nil, err
	}
	var s []string
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("spec.skips: %w", err)
	}
	return s, nil
}

// release is spec.release, a string or a number (a whole number is printed
// without a fraction), as opm's GetRelease reads it.
func (c *clusterServiceVersion) release() (string, error) {
	raw, err := c.specValue("release")
	if err != nil || raw == nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var f float64
	if err := json.Unmarshal(raw, &f); err == nil {
		if f == float64(int64(f)) {
			return fmt.Sprintf("%d", int64(f)), nil
		}
		return fmt.Sprintf("%g", f), nil
	}
	return "", errors.New("release field must be a string or number")
}

// definitionKey is one entry of spec.customresourcedefinitions or
// spec.apiservicedefinitions as opm reads it.
type definitionKey struct {
	Group   string `json:"group"`
	Kind    string `json:"kind"`
	Name    string `json:"name"`
	Version string `json:"version"`
}

func (c *clusterServiceVersion) definitions(key string) (owned, required []definitionKey, err error) {
	raw, err := c.specValue(key)
	if err != nil || raw == nil {
		return nil, nil, err
	}
	var defs struct {
		Owned    []definitionKey `json:"owned"`
		Required []definitionKey `json:"required"`
	}
	if err := json.Unmarshal(raw, &defs); err != nil {
		return nil, nil, fmt.Errorf("spec.%s: %w", key, err)
	}
	return defs.Owned, defs.Required, nil
}

func (c *clusterServiceVersion) crdDefinitions() (owned, required []definitionKey, err error) {
	return c.definitions("customresourcedefinitions")
}

func (c *clusterServiceVersion) apiServiceDefinitions() (owned, required []definitionKey, err error) {
	return c.definitions("apiservicedefinitions")
}

// relatedImages is spec.relatedImages in order, duplicates included.
func (c *clusterServiceVersion) relatedImages() ([]relatedImage, error) {
	raw, err := c.specValue("relatedImages")
	if err != nil || raw == nil {
		return nil, err
	}
	var ris []relatedImage
	if err := json.Unmarshal(raw, &ris); err != nil {
		return nil, fmt.Errorf("spec.relatedImages: %w", err)
	}
	return ris, nil
}

type relatedImage struct {
	Name  string `json:"name"`
	Image string `json:"image"`
}

// operatorImages are the images of every container and init container of
// the deployments of a "deployment" install strategy, each once, in the
// order they appear (opm collects them in a set).
func (c *clusterServiceVersion) operatorImages() ([]string, error) {
	if c.specErr != nil {
		return nil, c.specErr
	}
	type container struct {
		Image string `json:"image"`
	}
	var spec struct {
		Install struct {
			Strategy string `json:"strategy"`
			Spec     struct {
				Deployments []struct {
					Spec struct {
						Template struct {
							Spec struct {
								Containers     []container `json:"containers"`
								InitContainers []container `json:"initContainers"`
							} `json:"spec"`
						} `json:"template"`
					} `json:"spec"`
				} `json:"deployments"`
			} `json:"spec"`
		} `json:"install"`
	}
	if err := json.Unmarshal(c.rawSpec, &spec); err != nil {
		return nil, fmt.Errorf("spec.install: %w", err)
	}
	if spec.Install.Strategy != "deployment" {
		return nil, nil
	}
	var images []string
	seen := map[string]bool{}
	add := func(cs []container) {
		for _, ct := range cs {
			if !seen[ct.Image] {
				seen[ct.Image] = true
				images = append(images, ct.Image)
			}
		}
	}
	for _, d := range spec.Install.Spec.Deployments {
		add(d.Spec.Template.Spec.Containers)
		add(d.Spec.Template.Spec.InitContainers)
	}
	return images, nil
}

// icon is spec.icon[0], if any.
func (c *clusterServiceVersion) icon() (data, mediaType string, ok bool) {
	raw, err := c.specValue("icon")
	if err != nil || raw == nil {
		return "", "", false
	}
	var icons []struct {
		Data      string `json:"base64data"`
		MediaType string `json:"mediatype"`
	}
	if json.Unmarshal(raw, &icons) != nil || len(icons) == 0 {
		return "", "", false
	}
	return icons[0].Data, icons[0].MediaType, true
}

// decodeBase64 decodes a CSV icon the way opm's SQLite conversion does:
// standard base64, retried without spaces.
func decodeBase64(s string) ([]byte, bool) {
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, true
	}
	b, err := base64.StdEncoding.DecodeString(strings.ReplaceAll(s, " ", ""))
	return b, err == nil
}

// apiKey identifies an API a bundle provides or requires.
type apiKey struct {
	Group, Version, Kind, Plural string
}

func (k apiKey) String() string {
	return fmt.Sprintf("%s/%s/%s (%s)", k.Group, k.Version, k.Kind, k.Plural)
}

// crdAPIKey turns a CSV's CRD definition into the API it names; the CRD
// name must be <plural>.<group>.
func crdAPIKey(d definitionKey) (apiKey, error) {
	plural, group, ok := strings.Cut(d.Name, ".")
	if !ok {
		return apiKey{}, fmt.Errorf("couldn't parse plural.group from crd name: %s", d.Name)
	}
	return apiKey{Group: group, Version: d.Version, Kind: d.Kind, Plural: plural}, nil
}
