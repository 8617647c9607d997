package filter

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/spec"
)

func pkgs(ps ...spec.Package) spec.CatalogSpec { return spec.CatalogSpec{Packages: ps} }

func TestFilterSelection(t *testing.T) {
	src := synth(linPkg, skPkg, srPkg, forkPkg, backPkg)
	for _, tc := range []struct {
		name     string
		spec     spec.CatalogSpec
		want     map[string]shape
		warnings []string // "Kind bundle", sorted; DanglingReplaces included
	}{
		{
			name: "package alone keeps the head of its default channel only",
			spec: pkgs(spec.Package{Name: "lin"}),
			want: map[string]shape{"lin": {Default: "stable", Channels: map[string][]string{"stable": {"lin.v2.0.0"}}, Bundles: []string{"lin.v2.0.0"}}},
		},
		{
			name: "listed channels keep their heads",
			spec: pkgs(spec.Package{Name: "lin", Channels: []spec.Channel{{Name: "stable"}, {Name: "fast"}}}),
			want: map[string]shape{"lin": {Default: "stable",
				Channels: map[string][]string{"stable": {"lin.v2.0.0"}, "fast": {"lin.v2.1.0"}},
				Bundles:  []string{"lin.v2.0.0", "lin.v2.1.0"}}},
		},
		{
			name: "full keeps every channel whole",
			spec: pkgs(spec.Package{Name: "lin", Full: true}),
			want: map[string]shape{"lin": {Default: "stable",
				Channels: map[string][]string{
					"stable": {"lin.v1.0.0", "lin.v1.1.0", "lin.v1.2.0", "lin.v2.0.0"},
					"fast":   {"lin.v2.0.0", "lin.v2.1.0"}},
				Bundles: []string{"lin.v1.0.0", "lin.v1.1.0", "lin.v1.2.0", "lin.v2.0.0", "lin.v2.1.0"}}},
			warnings: []string{"DanglingReplaces lin.v1.0.0"},
		},
		{
			name: "full with channels keeps only those, and defaultChannel rewrites the default",
			spec: pkgs(spec.Package{Name: "lin", Full: true, DefaultChannel: "fast", Channels: []spec.Channel{{Name: "fast"}}}),
			want: map[string]shape{"lin": {Default: "fast",
				Channels: map[string][]string{"fast": {"lin.v2.0.0", "lin.v2.1.0"}},
				Bundles:  []string{"lin.v2.0.0", "lin.v2.1.0"}}},
		},
		{
			name: "defaultChannel without channels keeps the head of that channel",
			spec: pkgs(spec.Package{Name: "lin", DefaultChannel: "fast"}),
			want: map[string]shape{"lin": {Default: "fast", Channels: map[string][]string{"fast": {"lin.v2.1.0"}}, Bundles: []string{"lin.v2.1.0"}}},
		},
		{
			name: "channel range along replaces; the top of the range becomes the head",
			spec: pkgs(spec.Package{Name: "lin", Channels: []spec.Channel{{Name: "stable", MinVersion: "1.1.0", MaxVersion: "1.2.0"}}}),
			want: map[string]shape{"lin": {Default: "stable", Channels: map[string][]string{"stable": {"lin.v1.1.0", "lin.v1.2.0"}}, Bundles: []string{"lin.v1.1.0", "lin.v1.2.0"}}},
		},
		{
			name:     "maxVersion alone starts at the oldest bundle",
			spec:     pkgs(spec.Package{Name: "lin", Channels: []spec.Channel{{Name: "stable", MaxVersion: "1.1.0"}}}),
			want:     map[string]shape{"lin": {Default: "stable", Channels: map[string][]string{"stable": {"lin.v1.0.0", "lin.v1.1.0"}}, Bundles: []string{"lin.v1.0.0", "lin.v1.1.0"}}},
			warnings: []string{"DanglingReplaces lin.v1.0.0"},
		},
		{
			name: "package range applies to every channel",
			spec: pkgs(spec.Package{Name: "lin", MinVersion: "1.2.0"}),
			want: map[string]shape{"lin": {Default: "stable",
				Channels: map[string][]string{"stable": {"lin.v1.2.0", "lin.v2.0.0"}, "fast": {"lin.v2.0.0", "lin.v2.1.0"}},
				Bundles:  []string{"lin.v1.2.0", "lin.v2.0.0", "lin.v2.1.0"}}},
		},
		{
			name: "package range leaves out channels with nothing in range",
			spec: pkgs(spec.Package{Name: "lin", MinVersion: "2.1.0", DefaultChannel: "fast"}),
			want: map[string]shape{"lin": {Default: "fast", Channels: map[string][]string{"fast": {"lin.v2.1.0"}}, Bundles: []string{"lin.v2.1.0"}}},
		},
		{
			name: "range over a skipped fork keeps it: it is skipped by a kept bundle",
			spec: pkgs(spec.Package{Name: "sk", MinVersion: "1.1.0"}),
			want: map[string]shape{"sk": {Default: "stable", Channels: map[string][]string{"stable": {"sk.v1.1.0", "sk.v1.1.1", "sk.v1.2.0"}}, Bundles: []string{"sk.v1.1.0", "sk.v1.1.1", "sk.v1.2.0"}}},
		},
		{
			name: "range ending at the fork: the skipped bundle is below the new head",
			spec: pkgs(spec.Package{Name: "sk", MaxVersion: "1.1.1"}),
			want: map[string]shape{"sk": {Default: "stable", Channels: map[string][]string{"stable": {"sk.v1.0.0", "sk.v1.1.0", "sk.v1.1.1"}}, Bundles: []string{"sk.v1.0.0", "sk.v1.1.0", "sk.v1.1.1"}}},
		},
		{
			name:     "in range but connected only by skipRange: dropped, opm would call it stranded",
			spec:     pkgs(spec.Package{Name: "sr", MaxVersion: "1.1.0"}),
			want:     map[string]shape{"sr": {Default: "stable", Channels: map[string][]string{"stable": {"sr.v1.1.0"}}, Bundles: []string{"sr.v1.1.0"}}},
			warnings: []string{"Stranded sr.v1.0.0"},
		},
		{
			name: "range including the skipper keeps the skipRange-connected bundles",
			spec: pkgs(spec.Package{Name: "sr", MinVersion: "1.0.0"}),
			want: map[string]shape{"sr": {Default: "stable", Channels: map[string][]string{"stable": {"sr.v1.0.0", "sr.v1.1.0", "sr.v2.0.0"}}, Bundles: []string{"sr.v1.0.0", "sr.v1.1.0", "sr.v2.0.0"}}},
		},
		{
			name:     "in range but on a dead-end branch: not connected to the top, dropped",
			spec:     pkgs(spec.Package{Name: "fork", MinVersion: "1.0.0", MaxVersion: "1.1.0"}),
			want:     map[string]shape{"fork": {Default: "stable", Channels: map[string][]string{"stable": {"fork.v1.0.0", "fork.v1.1.0"}}, Bundles: []string{"fork.v1.0.0", "fork.v1.1.0"}}},
			warnings: []string{"NotConnected fork.v1.0.5"},
		},
		{
			name: "the graph, not the version, decides the top of a range",
			spec: pkgs(spec.Package{Name: "back", MinVersion: "1.0.1-0"}),
			want: map[string]shape{"back": {Default: "stable", Channels: map[string][]string{"stable": {"back.v1.0.1-1", "back.v1.0.1"}}, Bundles: []string{"back.v1.0.1-1", "back.v1.0.1"}}},
		},
		{
			name: "1.0.1-1 sorts below 1.0.1, so maxVersion 1.0.1 includes the backwards head",
			spec: pkgs(spec.Package{Name: "back", MaxVersion: "1.0.1"}),
			want: map[string]shape{"back": {Default: "stable", Channels: map[string][]string{"stable": {"back.v1.0.0", "back.v1.0.1-1", "back.v1.0.1"}}, Bundles: []string{"back.v1.0.0", "back.v1.0.1-1", "back.v1.0.1"}}},
		},
		{
			name: "no packages: the whole catalog",
			spec: spec.CatalogSpec{},
			want: map[string]shape{
				"lin": {Default: "stable", Channels: map[string][]string{
					"stable": {"lin.v1.0.0", "lin.v1.1.0", "lin.v1.2.0", "lin.v2.0.0"},
					"fast":   {"lin.v2.0.0", "lin.v2.1.0"}},
					Bundles: []string{"lin.v1.0.0", "lin.v1.1.0", "lin.v1.2.0", "lin.v2.0.0", "lin.v2.1.0"}},
				"sk": {Default: "stable", Channels: map[string][]string{"stable": {"sk.v1.0.0", "sk.v1.1.0", "sk.v1.1.1", "sk.v1.2.0"}},
					Bundles: []string{"sk.v1.0.0", "sk.v1.1.0", "sk.v1.1.1", "sk.v1.2.0"}},
				"sr": {Default: "stable", Channels: map[string][]string{"stable": {"sr.v1.0.0", "sr.v1.1.0", "sr.v2.0.0"}},
					Bundles: []string{"sr.v1.0.0", "sr.v1.1.0", "sr.v2.0.0"}},
				"fork": {Default: "stable", Channels: map[string][]string{"stable": {"fork.v1.0.0", "fork.v1.0.5", "fork.v1.1.0", "fork.v2.0.0"}},
					Bundles: []string{"fork.v1.0.0", "fork.v1.0.5", "fork.v1.1.0", "fork.v2.0.0"}},
				"back": {Default: "stable", Channels: map[string][]string{"stable": {"back.v1.0.0", "back.v1.0.1-1", "back.v1.0.1"}},
					Bundles: []string{"back.v1.0.0", "back.v1.0.1-1", "back.v1.0.1"}},
			},
			warnings: []string{"DanglingReplaces lin.v1.0.0"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rep, err := Filter(src, tc.spec)
			if err != nil {
				t.Fatalf("Filter: %v", err)
			}
			if diff := cmp.Diff(tc.want, shapeOf(out), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warnings, warningKinds(rep.Warnings), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("warnings (-want +got):\n%s\nall: %v", diff, rep.Warnings)
			}
			if problems := validateResult(out); len(problems) > 0 {
				t.Errorf("result invalid: %v", problems)
			}
		})
	}
}

func TestFilterDependencies(t *testing.T) {
	src := synth(appPkg, dbPkg, cachePkg, otherCachePkg, basePkg, toolPkg, needyPkg)
	for _, tc := range []struct {
		name     string
		spec     spec.CatalogSpec
		want     map[string]shape
		deps     []Dependency
		warnings []string
	}{
		{
			name: "by package and by gvk, transitively, each with its default channel",
			spec: spec.CatalogSpec{IncludeDependencies: true, Packages: []spec.Package{{Name: "app"}}},
			want: map[string]shape{
				"app": {Default: "stable", Channels: map[string][]string{"stable": {"app.v1.1.0"}}, Bundles: []string{"app.v1.1.0"}},
				// db's default head (3.0.0) is out of range: the highest
				// bundle in range, kept in the default channel.
				"db": {Default: "stable", Channels: map[string][]string{"stable": {"db.v2.1.0"}}, Bundles: []string{"db.v2.1.0"}},
				// Two packages provide the GVK; both heads qualify, the
				// first by name wins.
				"cache": {Default: "stable", Channels: map[string][]string{"stable": {"cache.v1.0.0"}}, Bundles: []string{"cache.v1.0.0"}},
				// cache.v1.0.0's own requirement.
				"base": {Default: "stable", Channels: map[string][]string{"stable": {"base.v1.1.0"}}, Bundles: []string{"base.v1.1.0"}},
			},
			deps: []Dependency{
				{Bundle: "app.v1.1.0", Requirement: "olm.package.required db >=2.0.0 <3.0.0", Provider: "db.v2.1.0", ProviderPackage: "db", Added: []string{"db.v2.1.0"}},
				{Bundle: "app.v1.1.0", Requirement: "olm.gvk.required cache.example.com/v1 Cache", Provider: "cache.v1.0.0", ProviderPackage: "cache", Added: []string{"cache.v1.0.0"}},
				{Bundle: "cache.v1.0.0", Requirement: "olm.package.required base >=1.0.0", Provider: "base.v1.1.0", ProviderPackage: "base", Added: []string{"base.v1.1.0"}},
			},
		},
		{
			name: "into a kept channel, with what connects it to the head",
			spec: spec.CatalogSpec{IncludeDependencies: true, Packages: []spec.Package{{Name: "app"}, {Name: "db"}, {Name: "cache"}}},
			want: map[string]shape{
				"app":   {Default: "stable", Channels: map[string][]string{"stable": {"app.v1.1.0"}}, Bundles: []string{"app.v1.1.0"}},
				"db":    {Default: "stable", Channels: map[string][]string{"stable": {"db.v2.1.0", "db.v3.0.0"}}, Bundles: []string{"db.v2.1.0", "db.v3.0.0"}},
				"cache": {Default: "stable", Channels: map[string][]string{"stable": {"cache.v1.0.0"}}, Bundles: []string{"cache.v1.0.0"}},
				"base":  {Default: "stable", Channels: map[string][]string{"stable": {"base.v1.1.0"}}, Bundles: []string{"base.v1.1.0"}},
			},
			deps: []Dependency{
				{Bundle: "app.v1.1.0", Requirement: "olm.package.required db >=2.0.0 <3.0.0", Provider: "db.v2.1.0", ProviderPackage: "db", Added: []string{"db.v2.1.0"}},
				{Bundle: "app.v1.1.0", Requirement: "olm.gvk.required cache.example.com/v1 Cache", Provider: "cache.v1.0.0", ProviderPackage: "cache"},
				{Bundle: "cache.v1.0.0", Requirement: "olm.package.required base >=1.0.0", Provider: "base.v1.1.0", ProviderPackage: "base", Added: []string{"base.v1.1.0"}},
			},
		},
		{
			name: "above a range's top: the provider becomes the head",
			spec: spec.CatalogSpec{IncludeDependencies: true, Packages: []spec.Package{{Name: "tool"}, {Name: "db", MaxVersion: "2.0.0"}}},
			want: map[string]shape{
				"tool": {Default: "stable", Channels: map[string][]string{"stable": {"tool.v1.0.0"}}, Bundles: []string{"tool.v1.0.0"}},
				"db": {Default: "stable",
					Channels: map[string][]string{"stable": {"db.v2.0.0", "db.v2.1.0"}, "v2": {"db.v2.0.0"}},
					Bundles:  []string{"db.v2.0.0", "db.v2.1.0"}},
			},
			deps: []Dependency{
				{Bundle: "tool.v1.0.0", Requirement: "olm.package.required db >=2.1.0 <3.0.0", Provider: "db.v2.1.0", ProviderPackage: "db", Added: []string{"db.v2.1.0"}},
			},
		},
		{
			name: "a kept bundle of another package satisfies the gvk",
			spec: spec.CatalogSpec{IncludeDependencies: true, Packages: []spec.Package{{Name: "app"}, {Name: "othercache"}}},
			want: map[string]shape{
				"app":        {Default: "stable", Channels: map[string][]string{"stable": {"app.v1.1.0"}}, Bundles: []string{"app.v1.1.0"}},
				"db":         {Default: "stable", Channels: map[string][]string{"stable": {"db.v2.1.0"}}, Bundles: []string{"db.v2.1.0"}},
				"othercache": {Default: "stable", Channels: map[string][]string{"stable": {"othercache.v5.0.0"}}, Bundles: []string{"othercache.v5.0.0"}},
			},
			deps: []Dependency{
				{Bundle: "app.v1.1.0", Requirement: "olm.package.required db >=2.0.0 <3.0.0", Provider: "db.v2.1.0", ProviderPackage: "db", Added: []string{"db.v2.1.0"}},
				{Bundle: "app.v1.1.0", Requirement: "olm.gvk.required cache.example.com/v1 Cache", Provider: "othercache.v5.0.0", ProviderPackage: "othercache"},
			},
		},
		{
			name: "unresolvable requirements are warnings",
			spec: spec.CatalogSpec{IncludeDependencies: true, Packages: []spec.Package{{Name: "needy"}}},
			want: map[string]shape{
				"needy": {Default: "stable", Channels: map[string][]string{"stable": {"needy.v1.0.0"}}, Bundles: []string{"needy.v1.0.0"}},
			},
			warnings: []string{"UnresolvedDependency needy.v1.0.0", "UnresolvedDependency needy.v1.0.0", "UnresolvedDependency needy.v1.0.0"},
		},
		{
			name: "without includeDependencies nothing is added",
			spec: spec.CatalogSpec{Packages: []spec.Package{{Name: "app"}}},
			want: map[string]shape{
				"app": {Default: "stable", Channels: map[string][]string{"stable": {"app.v1.1.0"}}, Bundles: []string{"app.v1.1.0"}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rep, err := Filter(src, tc.spec)
			if err != nil {
				t.Fatalf("Filter: %v", err)
			}
			if diff := cmp.Diff(tc.want, shapeOf(out), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.deps, rep.Dependencies, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("dependencies (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.warnings, warningKinds(rep.Warnings), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("warnings (-want +got):\n%s\nall: %v", diff, rep.Warnings)
			}
			for _, w := range rep.Warnings {
				if !strings.Contains(w.Message, w.Bundle) {
					t.Errorf("warning %q does not name its bundle %s", w.Message, w.Bundle)
				}
			}
			if problems := validateResult(out); len(problems) > 0 {
				t.Errorf("result invalid: %v", problems)
			}
		})
	}
}

func TestFilterProblems(t *testing.T) {
	src := synth(linPkg, skPkg, forkPkg)
	for _, tc := range []struct {
		name string
		spec spec.CatalogSpec
		want []Problem // Message compared by substring
	}{
		{
			name: "every problem at once, in spec order",
			spec: pkgs(
				spec.Package{Name: "nope"},
				spec.Package{Name: "lin", Channels: []spec.Channel{{Name: "fast"}}},
				spec.Package{Name: "sk", Channels: []spec.Channel{{Name: "stable", MinVersion: "5.0.0"}}},
				spec.Package{Name: "fork", Channels: []spec.Channel{{Name: "stable"}, {Name: "beta"}}},
			),
			want: []Problem{
				{Kind: PackageNotFound, Package: "nope", Message: "not in the catalog"},
				{Kind: DefaultChannelDropped, Package: "lin", Channel: "stable", Message: "kept channels: fast"},
				{Kind: RangeMatchesNothing, Package: "sk", Channel: "stable", Message: "no bundle of the channel is in range >=5.0.0"},
				{Kind: ChannelNotFound, Package: "fork", Channel: "beta", Message: "(it has stable)"},
			},
		},
		{
			name: "a package range that drops the default channel",
			spec: pkgs(spec.Package{Name: "lin", MinVersion: "2.1.0"}),
			want: []Problem{{Kind: DefaultChannelDropped, Package: "lin", Channel: "stable", Message: "kept channels: fast"}},
		},
		{
			name: "a package range that matches no channel",
			spec: pkgs(spec.Package{Name: "lin", MinVersion: "9.0.0"}),
			want: []Problem{{Kind: RangeMatchesNothing, Package: "lin", Message: "no bundle of any channel is in range >=9.0.0"}},
		},
		{
			name: "defaultChannel that is not kept",
			spec: pkgs(spec.Package{Name: "lin", MinVersion: "2.1.0", DefaultChannel: "stable"}),
			want: []Problem{{Kind: DefaultChannelDropped, Package: "lin", Channel: "stable", Message: "not among the kept channels (fast)"}},
		},
		{
			name: "defaultChannel that does not exist",
			spec: pkgs(spec.Package{Name: "lin", DefaultChannel: "candidate"}),
			want: []Problem{{Kind: ChannelNotFound, Package: "lin", Channel: "candidate", Message: "it has fast, stable"}},
		},
		{
			name: "full with a range, which spec validation refuses first",
			spec: pkgs(spec.Package{Name: "lin", Full: true, MaxVersion: "1.0.0"}),
			want: []Problem{{Kind: InvalidSpec, Package: "lin", Message: "full cannot be combined"}},
		},
		{
			name: "versions that do not parse",
			spec: pkgs(spec.Package{Name: "lin", MinVersion: "v1"}),
			want: []Problem{{Kind: InvalidSpec, Package: "lin", Message: `minVersion "v1" is not a semantic version`}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, rep, err := Filter(src, tc.spec)
			if out != nil || rep != nil {
				t.Errorf("got a result with an error")
			}
			var fe *Error
			if !errors.As(err, &fe) {
				t.Fatalf("err = %v, want *Error", err)
			}
			if len(fe.Problems) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(fe.Problems), len(tc.want), err)
			}
			for i, w := range tc.want {
				g := fe.Problems[i]
				if g.Kind != w.Kind || g.Package != w.Package || g.Channel != w.Channel || !strings.Contains(g.Message, w.Message) {
					t.Errorf("problem %d = %+v, want %+v", i, g, w)
				}
				if !strings.Contains(err.Error(), g.String()) {
					t.Errorf("Error() does not carry %q:\n%s", g, err)
				}
			}
		})
	}
}

func TestFilterDeprecationsAndOthers(t *testing.T) {
	src := synth(linPkg, skPkg)
	raw := func(s string) json.RawMessage { return json.RawMessage(s) }
	src.Others = []fbc.Meta{
		{Schema: "example.note", Package: "sk", Name: "n", Blob: raw(`{"schema":"example.note","package":"sk","name":"n"}`)},
		{Schema: "example.note", Package: "lin", Name: "n", Blob: raw(`{"schema":"example.note","package":"lin","name":"n"}`)},
		{Schema: "example.global", Name: "g", Blob: raw(`{"schema":"example.global","name":"g"}`)},
	}
	for _, tc := range []struct {
		name     string
		spec     spec.CatalogSpec
		wantDep  []string // kept deprecation references
		wantMeta []string // kept others, package/schema
	}{
		{
			name:     "head of stable: the package and the kept bundle's entries survive",
			spec:     pkgs(spec.Package{Name: "lin"}),
			wantDep:  []string{"olm.package/", "olm.bundle/lin.v2.0.0"},
			wantMeta: []string{"/example.global", "lin/example.note"},
		},
		{
			name:     "fast kept: its channel entry survives",
			spec:     pkgs(spec.Package{Name: "lin", DefaultChannel: "fast", Channels: []spec.Channel{{Name: "fast"}}}),
			wantDep:  []string{"olm.package/", "olm.channel/fast"},
			wantMeta: []string{"/example.global", "lin/example.note"},
		},
		{
			name:     "another package: no deprecations, its own blobs and the global ones",
			spec:     pkgs(spec.Package{Name: "sk"}),
			wantMeta: []string{"/example.global", "sk/example.note"},
		},
		{
			name:     "whole catalog: everything",
			spec:     spec.CatalogSpec{},
			wantDep:  []string{"olm.package/", "olm.channel/fast", "olm.bundle/lin.v1.0.0", "olm.bundle/lin.v2.0.0"},
			wantMeta: []string{"/example.global", "lin/example.note", "sk/example.note"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := Filter(src, tc.spec)
			if err != nil {
				t.Fatal(err)
			}
			var deps, metas []string
			for _, d := range out.Deprecations {
				for _, en := range d.Entries {
					deps = append(deps, en.Reference.Schema+"/"+en.Reference.Name)
				}
			}
			for _, m := range out.Others {
				metas = append(metas, m.Package+"/"+m.Schema)
			}
			if diff := cmp.Diff(tc.wantDep, deps, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("deprecations (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.wantMeta, metas, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("others (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFilterDeterministic: the output depends on the selection, not on the
// order of blobs in the source or on map iteration.
func TestFilterDeterministic(t *testing.T) {
	spec := spec.CatalogSpec{IncludeDependencies: true, Packages: []spec.Package{
		{Name: "app"}, {Name: "lin", MinVersion: "1.1.0"}, {Name: "sk", Full: true},
	}}
	a := synth(appPkg, dbPkg, cachePkg, otherCachePkg, basePkg, linPkg, skPkg)
	b := synth(skPkg, linPkg, basePkg, otherCachePkg, cachePkg, dbPkg, appPkg)
	slices.Reverse(b.Bundles)
	slices.Reverse(b.Channels)
	for i := range b.Channels {
		slices.Reverse(b.Channels[i].Entries)
	}
	outA, repA, err := Filter(a, spec)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		outB, repB, err := Filter(b, spec)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(outA, outB); diff != "" {
			t.Fatalf("output depends on source order (-a +b):\n%s", diff)
		}
		if diff := cmp.Diff(repA, repB); diff != "" {
			t.Fatalf("report depends on source order (-a +b):\n%s", diff)
		}
	}
}

// TestFilterDoesNotModifyInput: Filter is handed a catalog the caller may
// filter again with another spec.
func TestFilterDoesNotModifyInput(t *testing.T) {
	src := synth(linPkg, appPkg, dbPkg, cachePkg, basePkg)
	before := synth(linPkg, appPkg, dbPkg, cachePkg, basePkg)
	if _, _, err := Filter(src, spec.CatalogSpec{IncludeDependencies: true, Packages: []spec.Package{
		{Name: "lin", DefaultChannel: "fast", Channels: []spec.Channel{{Name: "fast"}}}, {Name: "app"},
	}}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(before, src); diff != "" {
		t.Errorf("input changed (-before +after):\n%s", diff)
	}
}

func TestFilterReport(t *testing.T) {
	src := synth(linPkg, appPkg, dbPkg, cachePkg, basePkg)
	_, rep, err := Filter(src, spec.CatalogSpec{IncludeDependencies: true, Packages: []spec.Package{
		{Name: "lin", DefaultChannel: "fast", Channels: []spec.Channel{{Name: "fast", MinVersion: "2.0.0"}}},
		{Name: "app"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]PackageReport{}
	for _, p := range rep.Packages {
		got[p.Name] = p
	}
	want := map[string]PackageReport{
		"lin": {Name: "lin", DefaultChannel: "fast", OriginalDefaultChannel: "stable", Selected: true,
			Channels: []ChannelReport{{Name: "fast", Head: "lin.v2.1.0", Bundles: []string{"lin.v2.0.0", "lin.v2.1.0"}}},
			Bundles:  []string{"lin.v2.0.0", "lin.v2.1.0"}},
		"app": {Name: "app", DefaultChannel: "stable", Selected: true,
			Channels: []ChannelReport{{Name: "stable", Head: "app.v1.1.0", Bundles: []string{"app.v1.1.0"}}},
			Bundles:  []string{"app.v1.1.0"}},
		"db": {Name: "db", DefaultChannel: "stable",
			Channels: []ChannelReport{{Name: "stable", Head: "db.v2.1.0", Bundles: []string{"db.v2.1.0"}}},
			Bundles:  []string{"db.v2.1.0"}},
		"cache": {Name: "cache", DefaultChannel: "stable",
			Channels: []ChannelReport{{Name: "stable", Head: "cache.v1.0.0", Bundles: []string{"cache.v1.0.0"}}},
			Bundles:  []string{"cache.v1.0.0"}},
		"base": {Name: "base", DefaultChannel: "stable",
			Channels: []ChannelReport{{Name: "stable", Head: "base.v1.1.0", Bundles: []string{"base.v1.1.0"}}},
			Bundles:  []string{"base.v1.1.0"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
}
