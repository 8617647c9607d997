package render

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/internal/bundle"
	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/spec"
)

func testBundle(t *testing.T, pkg, version string) fbc.Bundle {
	t.Helper()
	v, err := json.Marshal(fbc.PackageProperty{PackageName: pkg, Version: version})
	if err != nil {
		t.Fatal(err)
	}
	return fbc.Bundle{Schema: fbc.SchemaBundle, Name: pkg + ".v" + version, Package: pkg, Image: "example.com/" + pkg + ":" + version,
		Properties: []fbc.Property{{Type: fbc.PropertyPackage, Value: v}}}
}

// adder adds bundles with bundle.AddAll, as reconcile's does.
func adder(adds ...bundle.Addition) Adder {
	return func(cfg *fbc.DeclarativeConfig) (*Added, error) {
		edges, err := bundle.AddAll(cfg, adds)
		if err != nil {
			return nil, err
		}
		out := &Added{Bundles: map[string][]string{}, Edges: edges}
		for _, a := range adds {
			out.Bundles[a.Bundle.Package] = append(out.Bundles[a.Bundle.Package], a.Bundle.Name)
		}
		return out, nil
	}
}

func channels(cfg *fbc.DeclarativeConfig) map[string][]string {
	out := map[string][]string{}
	for _, c := range cfg.Channels {
		for _, e := range c.Entries {
			out[c.Package+"/"+c.Name] = append(out[c.Package+"/"+c.Name], e.Name+"<"+e.Replaces)
		}
	}
	return out
}

// TestRenderCatalogAddsBeforeFiltering: a bundle that fills the gap a
// source is invalid without, and a package only the bundles provide named
// in spec.packages, both render.
func TestRenderCatalogAddsBeforeFiltering(t *testing.T) {
	// p.v1.2.0 replaces p.v1.1.0, which the source lacks: p.v1.0.0 is
	// stranded, so the source alone is not a valid catalog.
	src := &fbc.DeclarativeConfig{
		Packages: []fbc.Package{{Schema: fbc.SchemaPackage, Name: "p", DefaultChannel: "stable"}},
		Channels: []fbc.Channel{{Schema: fbc.SchemaChannel, Name: "stable", Package: "p", Entries: []fbc.ChannelEntry{
			{Name: "p.v1.0.0"}, {Name: "p.v1.2.0", Replaces: "p.v1.1.0"},
		}}},
		Bundles: []fbc.Bundle{testBundle(t, "p", "1.0.0"), testBundle(t, "p", "1.2.0")},
	}
	gap := bundle.Addition{Bundle: testBundle(t, "p", "1.1.0"), Placement: bundle.Placement{Channels: []string{"stable"}, Replaces: "p.v1.0.0"}}
	newPkg := bundle.Addition{Bundle: testBundle(t, "q", "0.1.0"), Placement: bundle.Placement{Channels: []string{"alpha"}}}
	c := &spec.Catalog{Metadata: spec.ObjectMeta{Name: "c"}, Spec: spec.CatalogSpec{Packages: []spec.Package{
		{Name: "p", Full: true},
		{Name: "q", Channels: []spec.Channel{{Name: "alpha"}}},
	}}}
	before := channels(src)

	// Without the bundles the selection fails on the source.
	if _, err := RenderCatalog(c, src, nil); err == nil {
		t.Fatal("the source alone rendered; the test needs a source that is invalid without the bundle")
	}
	rc, err := RenderCatalog(c, src, adder(gap, newPkg))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"p/stable": {"p.v1.0.0<", "p.v1.1.0<p.v1.0.0", "p.v1.2.0<p.v1.1.0"},
		"q/alpha":  {"q.v0.1.0<"},
	}
	if diff := cmp.Diff(want, channels(rc.Config)); diff != "" {
		t.Errorf("channels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(before, channels(src)); diff != "" {
		t.Errorf("RenderCatalog changed its source (-before +after):\n%s", diff)
	}
}
