package filter

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/spec"
)

// oc-mirror v1's own expectations for its operator filter (copied from
// openshift/oc-mirror v1/pkg/operator/diff/testdata; the cases are in that
// package's diff_test.go): index-declcfgs/latest is the catalog, exp-* the
// outputs. They are all heads-only runs with dependencies:
//
//   - exp-headsonly: no include config. oc-mirror v1 keeps the head of
//     every channel of every package.
//   - exp-include-pkg: baz included whole (IncludeAdditively), the rest
//     heads-only.
//   - exp-include-channel: baz's channel stable included whole (also the
//     expectation for including baz by version 1.0.0 or bundle baz.v1.0.0,
//     selectors Ferry does not have).
//   - exp-latest is a diff between two catalog versions, not a filter;
//     there is nothing to compare it with.
//
// Ferry reaches the same catalogs with the spec that says the same thing,
// which proves that its dependency handling keeps what oc-mirror keeps on
// oc-mirror's own example. Ferry's defaults differ (no packages = the whole
// catalog; a package alone = its default channel's head only); the last
// cases pin those differences.

func ocMirrorDir(t *testing.T, name string) *fbc.DeclarativeConfig {
	t.Helper()
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "fbc", "upstream-testdata", "oc-mirror-v1-operator-diff", "index-declcfgs", name)
	return loadFS(t, os.DirFS(dir))
}

// normalized is a catalog as a comparable value: blob order and the
// formatting of property values do not matter, the graph and the bundle
// set do.
type normalized struct {
	Packages map[string]string             // name -> default channel
	Channels map[string][]fbc.ChannelEntry // package/channel -> entries by name
	Bundles  map[string][]string           // package -> bundle names
}

func normalize(cfg *fbc.DeclarativeConfig) normalized {
	n := normalized{Packages: map[string]string{}, Channels: map[string][]fbc.ChannelEntry{}, Bundles: map[string][]string{}}
	for _, p := range cfg.Packages {
		n.Packages[p.Name] = p.DefaultChannel
	}
	for _, c := range cfg.Channels {
		es := slices.Clone(c.Entries)
		slices.SortFunc(es, func(a, b fbc.ChannelEntry) int { return strings.Compare(a.Name, b.Name) })
		n.Channels[c.Package+"/"+c.Name] = es
	}
	for _, b := range cfg.Bundles {
		n.Bundles[b.Package] = append(n.Bundles[b.Package], b.Name)
	}
	for _, bs := range n.Bundles {
		slices.Sort(bs)
	}
	return n
}

func TestOCMirrorExpectations(t *testing.T) {
	latest := ocMirrorDir(t, "latest")
	// What oc-mirror's heads-only mode means, spelled as a Ferry spec:
	// every channel of every package, with dependencies.
	headsOnly := func(baz spec.Package) spec.CatalogSpec {
		return spec.CatalogSpec{IncludeDependencies: true, Packages: []spec.Package{
			{Name: "bar", Channels: []spec.Channel{{Name: "alpha"}, {Name: "stable"}}},
			baz,
			{Name: "foo", Channels: []spec.Channel{{Name: "beta"}}},
		}}
	}
	for _, tc := range []struct {
		name string
		spec spec.CatalogSpec
		want string // an oc-mirror expectation, or "" for Ferry's own below
		diff func(t *testing.T, got normalized)
	}{
		{
			name: "heads only",
			spec: headsOnly(spec.Package{Name: "baz", Channels: []spec.Channel{{Name: "stable"}}}),
			want: "exp-headsonly",
		},
		{
			name: "include package",
			spec: headsOnly(spec.Package{Name: "baz", Full: true}),
			want: "exp-include-pkg",
		},
		{
			name: "include channel",
			spec: headsOnly(spec.Package{Name: "baz", Full: true, Channels: []spec.Channel{{Name: "stable"}}}),
			want: "exp-include-channel",
		},
		{
			// foo.v0.3.1 requires bar <0.2.0: only bar.v0.1.0, which is in
			// alpha. Without alpha selected Ferry keeps it as alpha's only
			// entry, instead of alpha's whole 0.1.0 -> 0.2.0 -> 1.0.0 chain
			// that oc-mirror keeps because it keeps every channel's head.
			name: "Ferry default: a package alone is its default channel's head",
			spec: spec.CatalogSpec{IncludeDependencies: true, Packages: []spec.Package{{Name: "bar"}, {Name: "baz"}, {Name: "foo"}}},
			diff: func(t *testing.T, got normalized) {
				want := normalize(ocMirrorDir(t, "exp-headsonly"))
				want.Channels["bar/alpha"] = []fbc.ChannelEntry{{Name: "bar.v0.1.0"}}
				want.Bundles["bar"] = []string{"bar.v0.1.0", "bar.v1.0.0"}
				if d := cmp.Diff(want, got, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("(-want +got):\n%s", d)
				}
			},
		},
		{
			name: "Ferry default: no packages is the whole catalog",
			spec: spec.CatalogSpec{IncludeDependencies: true},
			diff: func(t *testing.T, got normalized) {
				if d := cmp.Diff(normalize(latest), got, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("(-latest +got):\n%s", d)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rep, err := Filter(latest, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			for _, d := range rep.Dependencies {
				t.Logf("%s: %s -> %s %v", d.Bundle, d.Requirement, d.Provider, d.Added)
			}
			got := normalize(out)
			if tc.want != "" {
				if d := cmp.Diff(normalize(ocMirrorDir(t, tc.want)), got, cmpopts.EquateEmpty()); d != "" {
					t.Errorf("differs from oc-mirror's %s (-oc-mirror +ferry):\n%s", tc.want, d)
				}
			} else {
				tc.diff(t, got)
			}
			opmValidate(t, out)
		})
	}
}
