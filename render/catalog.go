package render

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"path"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/filter"
	"github.com/ferry-gitops/ferry/spec"
)

// Paths inside the render directory. They are part of Ferry's contract with
// reviewers and GitOps tools that apply the rendered manifests.
const (
	CatalogsDir = "catalogs"
)

// CatalogDir is where one catalog's rendered files live.
func CatalogDir(catalog string) string { return path.Join(CatalogsDir, catalog) }

// ConfigsDir is where a catalog's filtered FBC lives, one directory per package.
func ConfigsDir(catalog string) string { return path.Join(CatalogDir(catalog), "configs") }

// CatalogSourceFile is a catalog's CatalogSource manifest.
func CatalogSourceFile(catalog string) string {
	return path.Join(CatalogDir(catalog), "catalogsource.yaml")
}

// Catalog is one rendered catalog: the FBC to serve and what the filter
// kept, ready to be built into an image and written for review.
type Catalog struct {
	Spec   *spec.Catalog
	Config *fbc.DeclarativeConfig
	Report *filter.Report
}

// Adder puts extra bundles into a filtered catalog (spec.bundles). It is a
// function so render stays free of how bundles were fetched.
type Adder func(cfg *fbc.DeclarativeConfig) error

// RenderCatalog filters source as the Catalog asks, adds its extra bundles
// and checks the result with opm's rules. Bundles are added after filtering
// so an added bundle is always served, whatever the selection.
func RenderCatalog(c *spec.Catalog, source *fbc.DeclarativeConfig, add Adder) (*Catalog, error) {
	cfg, report, err := filter.Filter(source, c.Spec)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", c.Metadata.Name, err)
	}
	if add != nil {
		if err := add(cfg); err != nil {
			return nil, fmt.Errorf("catalog %s: add bundles: %w", c.Metadata.Name, err)
		}
	}
	if err := fbc.Validate(cfg); err != nil {
		return nil, fmt.Errorf("catalog %s: the rendered catalog is invalid: %w", c.Metadata.Name, err)
	}
	return &Catalog{Spec: c, Config: cfg, Report: report}, nil
}

// ConfigFiles returns the catalog's FBC files, relative to its configs
// directory: what goes into the image and, under ConfigsDir, into git.
func (c *Catalog) ConfigFiles(ctx context.Context) (map[string][]byte, error) {
	w := &fbc.MapWriter{}
	if err := fbc.WriteFS(ctx, w, c.Config, fbc.DefaultWriteOptions()); err != nil {
		return nil, err
	}
	return w.Files, nil
}

// catalogSource is the subset of operators.coreos.com/v1alpha1
// CatalogSource Ferry renders.
type catalogSource struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   catalogSourceMeta `json:"metadata"`
	Spec       catalogSourceSpec `json:"spec"`
}

type catalogSourceMeta struct {
	Name        string            `json:"name"`
	Namespace   string            `json:"namespace"`
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
}

type catalogSourceSpec struct {
	SourceType     string          `json:"sourceType"`
	Image          string          `json:"image"`
	DisplayName    string          `json:"displayName,omitempty"`
	Publisher      string          `json:"publisher,omitempty"`
	Priority       int             `json:"priority,omitempty"`
	UpdateStrategy *updateStrategy `json:"updateStrategy,omitempty"`
	GRPCPodConfig  *grpcPodConfig  `json:"grpcPodConfig,omitempty"`
}

type updateStrategy struct {
	RegistryPoll struct {
		Interval string `json:"interval"`
	} `json:"registryPoll"`
}

type grpcPodConfig struct {
	SecurityContextConfig string `json:"securityContextConfig"`
}

// CatalogSource renders the CatalogSource pointing at image, which must be
// pinned by digest: a tag could move under a running cluster.
func CatalogSource(c *spec.Catalog, image string, labels map[string]string) ([]byte, error) {
	if !strings.Contains(image, "@sha256:") {
		return nil, fmt.Errorf("catalog %s: CatalogSource image %q is not pinned by digest", c.Metadata.Name, image)
	}
	s := c.Spec.CatalogSource
	cs := catalogSource{
		APIVersion: "operators.coreos.com/v1alpha1",
		Kind:       "CatalogSource",
		Metadata: catalogSourceMeta{
			Name:        s.Name,
			Namespace:   s.Namespace,
			Labels:      labels,
			Annotations: map[string]string{AnnotationCatalog: c.Metadata.Name},
		},
		Spec: catalogSourceSpec{
			SourceType:  "grpc",
			Image:       image,
			DisplayName: s.DisplayName,
			Publisher:   s.Publisher,
			Priority:    s.Priority,
		},
	}
	if s.PollInterval != "" {
		d, err := time.ParseDuration(s.PollInterval)
		if err != nil {
			return nil, err
		}
		cs.Spec.UpdateStrategy = &updateStrategy{}
		cs.Spec.UpdateStrategy.RegistryPoll.Interval = d.String()
	}
	if s.SecurityContextConfig != "" {
		cs.Spec.GRPCPodConfig = &grpcPodConfig{SecurityContextConfig: s.SecurityContextConfig}
	}
	return marshalYAML(cs)
}

// marshalYAML gives the same bytes for the same value: keys sorted, no
// timestamps.
func marshalYAML(v any) ([]byte, error) {
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		return nil, err
	}
	return bytes.TrimLeft(y, "\n"), nil
}
