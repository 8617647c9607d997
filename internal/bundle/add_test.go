package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// TestAddRebuildsCommunityPackage takes koku-metrics-operator.v4.4.1 out of
// the real community v4.20 catalog, adds it back from the real bundle
// directory and requires the package to be what it was: same package blob,
// same channels with the same entries, same bundles.
func TestAddRebuildsCommunityPackage(t *testing.T) {
	const pkg, name = "koku-metrics-operator", "koku-metrics-operator.v4.4.1"
	want := loadCatalog(t, extractCatalog(t, communityArchive, "catalogs/v4.20/"+pkg))
	orig, ok := findBundle(want, pkg, name)
	if !ok {
		t.Fatalf("the catalog has no %s", name)
	}

	got := loadCatalog(t, extractCatalog(t, communityArchive, "catalogs/v4.20/"+pkg))
	removeBundle(got, pkg, name)

	b, p, err := Render(os.DirFS(bundleDir(t, kokuBundle)), orig.Image, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := Add(got, b, p); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(tree(t, want), tree(t, got)); diff != "" {
		t.Errorf("package after removing and re-adding %s differs (-catalog +rebuilt):\n%s", name, diff)
	}
}

// removeBundle deletes a bundle and its channel entries.
func removeBundle(cfg *fbc.DeclarativeConfig, pkg, name string) {
	cfg.Bundles = slices.DeleteFunc(cfg.Bundles, func(b fbc.Bundle) bool { return b.Package == pkg && b.Name == name })
	for i, c := range cfg.Channels {
		if c.Package == pkg {
			cfg.Channels[i].Entries = slices.DeleteFunc(slices.Clone(c.Entries), func(e fbc.ChannelEntry) bool { return e.Name == name })
		}
	}
}

// TestAddRealBundlesAsNewPackages adds tempo-operator and
// strimzi-kafka-operator, which the community catalog does not have, to it.
func TestAddRealBundlesAsNewPackages(t *testing.T) {
	cfg := loadCatalog(t, extractCatalog(t, communityArchive, "catalogs/v4.20"))
	before := len(cfg.Packages)

	tempo, tp, err := Render(os.DirFS(bundleDir(t, tempoBundle)), "quay.io/example/tempo-operator-bundle:v0.22.0", DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	if err := Add(cfg, tempo, tp); err != nil {
		t.Fatal(err)
	}

	strimzi, sp, err := Render(os.DirFS(bundleDir(t, strimziBundle)), "quay.io/example/strimzi-bundle:1.2.0", DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	// Its annotations name "stable" as the default channel, which is not
	// one of its channels: a new package cannot start that way.
	err = Add(cfg, strimzi, sp)
	if !errors.Is(err, ErrGraphConflict) || !strings.Contains(err.Error(), `default channel "stable"`) {
		t.Fatalf("Add strimzi with default channel stable: got %v, want a default-channel conflict", err)
	}
	sp.DefaultChannel = "strimzi-1.x"
	if err := Add(cfg, strimzi, sp); err != nil {
		t.Fatal(err)
	}

	if got := len(cfg.Packages); got != before+2 {
		t.Errorf("got %d packages, want %d", got, before+2)
	}
	for _, tc := range []struct {
		pkg, defaultChannel string
		channels            []string
		icon                bool
	}{
		{"tempo-operator", "alpha", []string{"alpha"}, true},
		{"strimzi-kafka-operator", "strimzi-1.x", []string{"strimzi-1.2.x", "strimzi-1.x"}, true},
	} {
		i := slices.IndexFunc(cfg.Packages, func(p fbc.Package) bool { return p.Name == tc.pkg })
		if i < 0 {
			t.Errorf("package %s missing", tc.pkg)
			continue
		}
		if p := cfg.Packages[i]; p.DefaultChannel != tc.defaultChannel || (p.Icon != nil) != tc.icon {
			t.Errorf("package %s: default channel %q, icon %v; want %q, %v", tc.pkg, p.DefaultChannel, p.Icon != nil, tc.defaultChannel, tc.icon)
		}
		var chans []string
		for _, c := range cfg.Channels {
			if c.Package == tc.pkg {
				chans = append(chans, c.Name)
				if len(c.Entries) != 1 {
					t.Errorf("channel %s/%s: %d entries, want 1", tc.pkg, c.Name, len(c.Entries))
				}
			}
		}
		slices.Sort(chans)
		if diff := cmp.Diff(tc.channels, chans); diff != "" {
			t.Errorf("package %s channels (-want +got):\n%s", tc.pkg, diff)
		}
	}
}

// small builds a catalog of one package "p" from channel specs: each entry
// "name<replaces" or "name<replaces|skip1,skip2"; every named bundle gets
// version 1.0.N from its trailing number.
func small(t *testing.T, defaultChannel string, channels map[string][]string) *fbc.DeclarativeConfig {
	t.Helper()
	cfg := &fbc.DeclarativeConfig{Packages: []fbc.Package{{Schema: fbc.SchemaPackage, Name: "p", DefaultChannel: defaultChannel}}}
	seen := map[string]bool{}
	for _, name := range sortedKeys(channels) {
		ch := fbc.Channel{Schema: fbc.SchemaChannel, Name: name, Package: "p"}
		for _, spec := range channels[name] {
			e := parseEntry(spec)
			ch.Entries = append(ch.Entries, e)
			if !seen[e.Name] {
				seen[e.Name] = true
				cfg.Bundles = append(cfg.Bundles, testBundle(t, e.Name))
			}
		}
		cfg.Channels = append(cfg.Channels, ch)
	}
	return cfg
}

func sortedKeys[V any](m map[string]V) []string {
	var keys []string
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func parseEntry(spec string) fbc.ChannelEntry {
	spec, skips, _ := strings.Cut(spec, "|")
	name, replaces, _ := strings.Cut(spec, "<")
	e := fbc.ChannelEntry{Name: name, Replaces: replaces}
	if skips != "" {
		e.Skips = strings.Split(skips, ",")
	}
	return e
}

// testBundle is bundle "p.vN" of package p at version 1.0.N.
func testBundle(t *testing.T, name string) fbc.Bundle {
	t.Helper()
	n := strings.TrimPrefix(name, "p.v")
	value, err := json.Marshal(fbc.PackageProperty{PackageName: "p", Version: "1.0." + n})
	if err != nil {
		t.Fatal(err)
	}
	return fbc.Bundle{
		Schema:     fbc.SchemaBundle,
		Name:       name,
		Package:    "p",
		Image:      "example.com/p:" + n,
		Properties: []fbc.Property{{Type: fbc.PropertyPackage, Value: value}},
	}
}

func TestAdd(t *testing.T) {
	base := map[string][]string{"stable": {"p.v1", "p.v2<p.v1"}}
	for _, tc := range []struct {
		name     string
		default_ string
		channels map[string][]string
		bundle   string // defaults to p.v3
		version  string // overrides the bundle's version
		place    Placement
		wantErr  error  // nil: success
		wantMsg  string // part of the error message
		// after a success: package default channel and entries by channel
		wantDefault string
		wantEntries map[string][]string
	}{
		{
			name: "new head replacing the old one", default_: "stable", channels: base,
			place:       Placement{Channels: []string{"stable"}, Replaces: "p.v2"},
			wantDefault: "stable",
			wantEntries: map[string][]string{"stable": {"p.v1", "p.v2<p.v1", "p.v3<p.v2"}},
		},
		{
			name: "skips and skipRange", default_: "stable", channels: base,
			place:       Placement{Channels: []string{"stable"}, Replaces: "p.v1", Skips: []string{"p.v2"}, SkipRange: ">=1.0.0 <1.0.3"},
			wantDefault: "stable",
			wantEntries: map[string][]string{"stable": {"p.v1", "p.v2<p.v1", "p.v3<p.v1|p.v2"}},
		},
		{
			name: "a new channel and the default moves to it", default_: "stable", channels: base,
			place:       Placement{Channels: []string{"stable", "fast"}, DefaultChannel: "fast", Replaces: "p.v2"},
			wantDefault: "fast",
			wantEntries: map[string][]string{"stable": {"p.v1", "p.v2<p.v1", "p.v3<p.v2"}, "fast": {"p.v3<p.v2"}},
		},
		{
			name: "an older bundle does not move the default", default_: "stable", channels: map[string][]string{"stable": {"p.v5"}},
			place:       Placement{Channels: []string{"old"}, DefaultChannel: "old"},
			wantDefault: "stable",
			wantEntries: map[string][]string{"stable": {"p.v5"}, "old": {"p.v3"}},
		},
		{
			name: "filling in a bundle the head already replaces", default_: "stable", channels: map[string][]string{"stable": {"p.v4<p.v3"}},
			place:       Placement{Channels: []string{"stable"}, Replaces: "p.v2"},
			wantDefault: "stable",
			wantEntries: map[string][]string{"stable": {"p.v4<p.v3", "p.v3<p.v2"}},
		},
		{
			name: "a new package", channels: map[string][]string{},
			place:       Placement{Channels: []string{"candidate"}, Replaces: "p.v2"},
			wantDefault: "candidate",
			wantEntries: map[string][]string{"candidate": {"p.v3<p.v2"}},
		},
		{
			name: "duplicate name", default_: "stable", channels: base, bundle: "p.v2", version: "1.0.9",
			place:   Placement{Channels: []string{"stable"}, Replaces: "p.v1"},
			wantErr: ErrDuplicateName, wantMsg: `already has a bundle named "p.v2"`,
		},
		{
			name: "duplicate version", default_: "stable", channels: base, version: "1.0.2",
			place:   Placement{Channels: []string{"stable"}, Replaces: "p.v2"},
			wantErr: ErrDuplicateVersion, wantMsg: `already has version 1.0.2: bundle "p.v2"`,
		},
		{
			name: "replacing what another entry replaces makes two heads", default_: "stable", channels: base,
			place:   Placement{Channels: []string{"stable"}, Replaces: "p.v1"},
			wantErr: ErrGraphConflict, wantMsg: `multiple channel heads found in graph: p.v2, p.v3: "p.v2" already replaces "p.v1"`,
		},
		{
			name: "no edges and newer than the head: replaces the head", default_: "stable", channels: base,
			place:       Placement{Channels: []string{"stable"}},
			wantDefault: "stable",
			wantEntries: map[string][]string{"stable": {"p.v1", "p.v2<p.v1", "p.v3<p.v2"}},
		},
		{
			name: "no edges and older than the head: names the mode to choose", default_: "stable", channels: map[string][]string{"stable": {"p.v1", "p.v5<p.v1"}},
			place:   Placement{Channels: []string{"stable"}},
			wantErr: ErrGraphConflict, wantMsg: `its version 1.0.3 is below the channel head "p.v5" (1.0.5), between "p.v1" and "p.v5"; in add mode "replaces" only a newer bundle can be placed without edges: set addMode to "semver"`,
		},
		{
			name: "a skip but no edge to the head makes two heads", default_: "stable", channels: base,
			place:   Placement{Channels: []string{"stable"}, Skips: []string{"p.v0"}},
			wantErr: ErrGraphConflict, wantMsg: `does not replace or skip the channel head "p.v2"`,
		},
		{
			name: "replacing a bundle outside the channel makes two heads", default_: "stable", channels: base,
			place:   Placement{Channels: []string{"stable"}, Replaces: "p.v0"},
			wantErr: ErrGraphConflict, wantMsg: `does not replace or skip the channel head "p.v2"`,
		},
		{
			name: "a skip that strands a bundle", default_: "stable", channels: base,
			place:   Placement{Channels: []string{"stable"}, Skips: []string{"p.v2"}},
			wantErr: ErrGraphConflict, wantMsg: "stranded bundles: p.v1",
		},
		{
			name: "a replaces cycle", default_: "stable", channels: map[string][]string{"stable": {"p.v5<p.v4", "p.v4<p.v3"}},
			place:   Placement{Channels: []string{"stable"}, Replaces: "p.v5"},
			wantErr: ErrGraphConflict, wantMsg: "no channel head found in graph",
		},
		{
			name: "an older bundle of a name the package has", default_: "stable", channels: base,
			place:  Placement{Channels: []string{"stable"}, Replaces: "p.v2"},
			bundle: "p.v1", version: "1.0.7",
			wantErr: ErrDuplicateName,
		},
		{
			name: "bad skipRange", default_: "stable", channels: base,
			place:   Placement{Channels: []string{"stable"}, Replaces: "p.v2", SkipRange: "not a range"},
			wantErr: ErrInvalid, wantMsg: `invalid skipRange "not a range"`,
		},
		{
			name: "no channel", default_: "stable", channels: base,
			place:   Placement{Replaces: "p.v2"},
			wantErr: ErrInvalid, wantMsg: "placement names no channel",
		},
		{
			name: "a new package needs a default among several channels", channels: map[string][]string{},
			place:   Placement{Channels: []string{"a", "b"}},
			wantErr: ErrInvalid, wantMsg: "names no default channel",
		},
		{
			name: "the default channel must exist", default_: "stable", channels: base,
			place:   Placement{Channels: []string{"stable"}, Replaces: "p.v2", DefaultChannel: "nope"},
			wantErr: ErrGraphConflict, wantMsg: `default channel "nope" of package "p" would not exist`,
		},
		{
			name: "a version that is not semver", default_: "stable", channels: base, version: "three",
			place:   Placement{Channels: []string{"stable"}, Replaces: "p.v2"},
			wantErr: ErrInvalid, wantMsg: `error parsing bundle version "three"`,
		},
		{
			name: "placement for another package", default_: "stable", channels: base,
			place:   Placement{Package: "q", Channels: []string{"stable"}, Replaces: "p.v2"},
			wantErr: ErrInvalid, wantMsg: `placement is for package "q"`,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var cfg *fbc.DeclarativeConfig
			if len(tc.channels) == 0 {
				cfg = &fbc.DeclarativeConfig{}
			} else {
				cfg = small(t, tc.default_, tc.channels)
			}
			name := tc.bundle
			if name == "" {
				name = "p.v3"
			}
			b := testBundle(t, name)
			if tc.version != "" {
				b.Properties[0].Value = json.RawMessage(fmt.Sprintf(`{"packageName":"p","version":%q}`, tc.version))
			}
			before := tree(t, cfg)

			err := Add(cfg, b, tc.place)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) || !strings.Contains(fmt.Sprint(err), tc.wantMsg) {
					t.Fatalf("Add: got error %v, want %v containing %q", err, tc.wantErr, tc.wantMsg)
				}
				if diff := cmp.Diff(before, tree(t, cfg)); diff != "" {
					t.Errorf("a failed Add changed the catalog (-before +after):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Add: %v", err)
			}
			if got := cfg.Packages[0].DefaultChannel; got != tc.wantDefault {
				t.Errorf("default channel %q, want %q", got, tc.wantDefault)
			}
			got := map[string][]string{}
			for _, c := range cfg.Channels {
				for _, e := range c.Entries {
					s := e.Name
					if e.Replaces != "" {
						s += "<" + e.Replaces
					}
					if len(e.Skips) > 0 {
						s += "|" + strings.Join(e.Skips, ",")
					}
					got[c.Name] = append(got[c.Name], s)
				}
			}
			if diff := cmp.Diff(tc.wantEntries, got); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			if _, ok := findBundle(cfg, "p", name); !ok {
				t.Errorf("bundle %s not added", name)
			}
			for _, c := range cfg.Channels {
				if err := checkGraph(c.Entries); err != nil {
					t.Errorf("channel %s after Add: %v", c.Name, err)
				}
			}
		})
	}
}

// TestAddListsEveryProblem: one error names all of them.
func TestAddListsEveryProblem(t *testing.T) {
	cfg := small(t, "stable", map[string][]string{"stable": {"p.v1", "p.v2<p.v1"}, "fast": {"p.v2"}})
	b := testBundle(t, "p.v2")
	b.Name = "p.v9" // still version 1.0.2
	err := Add(cfg, b, Placement{Channels: []string{"stable", "fast"}, Replaces: "p.v1"})
	for _, want := range []error{ErrDuplicateVersion, ErrGraphConflict} {
		if !errors.Is(err, want) {
			t.Errorf("error %v does not wrap %v", err, want)
		}
	}
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Errorf("got %d problems, want 3 (the version, each channel):\n%v", n, err)
	}
}
