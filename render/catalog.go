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

	"github.com/ferry-gitops/ferry/internal/bundle"
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
	// Edges are the upgrade edges adding spec.bundles chose rather than
	// read from a CSV (inferred replaces, placements by version).
	Edges []bundle.Edge
}

// Adder puts a Catalog's extra bundles (spec.bundles) into the source
// catalog. It is a function so render stays free of how bundles were
// fetched.
type Adder func(cfg *fbc.DeclarativeConfig) (*Added, error)

// Added is what an Adder put into a catalog.
type Added struct {
	// Bundles are the added bundle names by package.
	Bundles map[string][]string
	// Edges are the edges it chose.
	Edges []bundle.Edge
}

// RenderCatalog adds the Catalog's extra bundles to source, filters the
// result as the Catalog asks and checks it with opm's rules.
//
// Bundles are added before filtering, so they are placed against the whole
// source (the channel heads opm index add would see), a package that only
// the bundles provide can be selected in spec.packages, and a bundle can
// fill a gap that leaves the source invalid without it. The filter then
// keeps every added bundle whatever the selection, with the replaces chain
// joining it to the rest of its channel. source is not modified.
func RenderCatalog(c *spec.Catalog, source *fbc.DeclarativeConfig, add Adder) (*Catalog, error) {
	cfg := source
	var opts filter.Options
	var edges []bundle.Edge
	if add != nil && source != nil {
		work := *source
		added, err := add(&work)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: add bundles: %w", c.Metadata.Name, err)
		}
		if added != nil {
			opts.Keep, edges = added.Bundles, added.Edges
		}
		cfg = &work
	}
	out, report, err := filter.FilterWith(cfg, c.Spec, opts)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", c.Metadata.Name, err)
	}
	if err := fbc.Validate(out); err != nil {
		return nil, fmt.Errorf("catalog %s: the rendered catalog is invalid: %w", c.Metadata.Name, err)
	}
	return &Catalog{Spec: c, Config: out, Report: report, Edges: keptEdges(edges, out)}, nil
}

// keptEdges drops the edges of channels or bundles the filter left out.
func keptEdges(edges []bundle.Edge, cfg *fbc.DeclarativeConfig) []bundle.Edge {
	type at struct{ pkg, ch, b string }
	in := map[at]bool{}
	for _, c := range cfg.Channels {
		for _, e := range c.Entries {
			in[at{c.Package, c.Name, e.Name}] = true
		}
	}
	var out []bundle.Edge
	for _, e := range edges {
		if in[at{e.Package, e.Channel, e.Bundle}] {
			out = append(out, e)
		}
	}
	return out
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
