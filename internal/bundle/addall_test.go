package bundle

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// entries writes a catalog's channels as "name<replaces|skips" lines.
func entries(cfg *fbc.DeclarativeConfig) map[string][]string {
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
	return got
}

func addition(t *testing.T, name, origin string, mode Mode, p Placement) Addition {
	b := testBundle(t, name)
	return Addition{Bundle: b, Placement: p, Mode: mode, Origin: origin}
}

func TestAddAll(t *testing.T) {
	stable := Placement{Channels: []string{"stable"}}
	for _, tc := range []struct {
		name     string
		channels map[string][]string
		adds     func(t *testing.T) []Addition
		want     map[string][]string
		edges    []string // "bundle<replaces|skips (mode)"
	}{
		{
			name:     "edgeless bundles in any order are placed by version",
			channels: map[string][]string{"stable": {"p.v1"}},
			adds: func(t *testing.T) []Addition {
				return []Addition{addition(t, "p.v3", "b0", "", stable), addition(t, "p.v2", "b1", "", stable)}
			},
			want:  map[string][]string{"stable": {"p.v1", "p.v2<p.v1", "p.v3<p.v2"}},
			edges: []string{"p.v2<p.v1 (replaces)", "p.v3<p.v2 (replaces)"},
		},
		{
			name:     "semver inserts between two bundles",
			channels: map[string][]string{"stable": {"p.v1", "p.v5<p.v1"}},
			adds: func(t *testing.T) []Addition {
				return []Addition{addition(t, "p.v3", "b0", ModeSemver, stable)}
			},
			want:  map[string][]string{"stable": {"p.v1", "p.v5<p.v3", "p.v3<p.v1"}},
			edges: []string{"p.v5<p.v3 (semver)", "p.v3<p.v1 (semver)"},
		},
		{
			name:     "skip-patch skips the patches of its minor",
			channels: map[string][]string{"stable": {"p.v1", "p.v2<p.v1"}},
			adds: func(t *testing.T) []Addition {
				return []Addition{addition(t, "p.v3", "b0", ModeSemverSkipPatch, stable)}
			},
			want:  map[string][]string{"stable": {"p.v1", "p.v2", "p.v3|p.v1,p.v2"}},
			edges: []string{"p.v2 (semver-skippatch)", "p.v3|p.v1,p.v2 (semver-skippatch)"},
		},
		{
			name:     "a respin keeps the place of the head it replaces",
			channels: map[string][]string{"stable": {"p.v1", "p.v2<p.v1|p.v0"}},
			adds: func(t *testing.T) []Addition {
				a := addition(t, "p.v2", "b0", "", stable)
				a.Bundle.Image = "example.com/p:2-respin"
				a.ReplaceExisting = true
				return []Addition{a}
			},
			want:  map[string][]string{"stable": {"p.v1", "p.v2<p.v1|p.v0"}},
			edges: []string{"p.v2<p.v1|p.v0 (replaces)"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := small(t, "stable", tc.channels)
			adds := tc.adds(t)
			edges, err := AddAll(cfg, adds)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, entries(cfg)); diff != "" {
				t.Errorf("entries (-want +got):\n%s", diff)
			}
			var got []string
			for _, e := range edges {
				s := e.Bundle
				if e.Replaces != "" {
					s += "<" + e.Replaces
				}
				if len(e.Skips) > 0 {
					s += "|" + strings.Join(e.Skips, ",")
				}
				got = append(got, fmt.Sprintf("%s (%s)", s, e.Mode))
			}
			if diff := cmp.Diff(tc.edges, got); diff != "" {
				t.Errorf("edges (-want +got):\n%s", diff)
			}
			for _, a := range adds {
				if b, _ := findBundle(cfg, "p", a.Bundle.Name); b.Image != a.Bundle.Image {
					t.Errorf("bundle %s has image %q, want %q", a.Bundle.Name, b.Image, a.Bundle.Image)
				}
			}
		})
	}
}

// TestAddAllReportsEveryBadBundle: the bad cases of spec.bundles in one
// error, each with its origin and where the conflicting copy came from,
// and the catalog untouched.
func TestAddAllReportsEveryBadBundle(t *testing.T) {
	cfg := small(t, "stable", map[string][]string{"stable": {"p.v1", "p.v5<p.v1"}})
	before := tree(t, cfg)
	respin := addition(t, "p.v5", "spec.bundles[0] (c.yaml:9)", "", Placement{Channels: []string{"stable"}})
	respin.Bundle.Image = "example.com/p:5-respin"
	below := addition(t, "p.v3", "spec.bundles[1] (c.yaml:10)", "", Placement{Channels: []string{"stable"}})
	good := addition(t, "p.v6", "spec.bundles[2] (c.yaml:11)", "", Placement{Channels: []string{"stable"}})
	// Same version as spec.bundles[2], another name: a semver collision.
	twin := addition(t, "p.v6", "spec.bundles[3] (c.yaml:12)", ModeSemver, Placement{Channels: []string{"stable"}})
	twin.Bundle.Name = "p.v6-twin"
	notThere := addition(t, "p.v7", "spec.bundles[4] (c.yaml:13)", "", Placement{Channels: []string{"stable"}})
	notThere.ReplaceExisting = true

	_, err := AddAll(cfg, []Addition{respin, below, good, twin, notThere})
	var addErr *Error
	if !errors.As(err, &addErr) {
		t.Fatalf("got %v, want an *Error", err)
	}
	var idx []int
	for _, a := range addErr.Additions {
		idx = append(idx, a.Index)
	}
	if diff := cmp.Diff([]int{0, 1, 3, 4}, idx); diff != "" {
		t.Errorf("refused additions (-want +got):\n%s\n%v", diff, err)
	}
	msg := err.Error()
	for _, want := range []string{
		`spec.bundles[0] (c.yaml:9): bundle "p.v5" of package "p":`,
		`already has a bundle named "p.v5", from the source catalog (image example.com/p:5); if this is a rebuild of it, set replaceExisting`,
		`spec.bundles[1] (c.yaml:10): bundle "p.v3"`,
		`is below the channel head "p.v5" (1.0.5), between "p.v1" and "p.v5"; in add mode "replaces" only a newer bundle can be placed without edges: set addMode to "semver"`,
		`spec.bundles[3] (c.yaml:12): bundle "p.v6-twin"`,
		`already has version 1.0.6: bundle "p.v6", from spec.bundles[2] (c.yaml:11)`,
		`spec.bundles[4] (c.yaml:13): bundle "p.v7"`,
		`replaceExisting is set, but package "p" has no bundle named "p.v7"`,
	} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q:\n%s", want, msg)
		}
	}
	for _, kind := range []error{ErrDuplicateName, ErrDuplicateVersion, ErrGraphConflict, ErrInvalid} {
		if !errors.Is(err, kind) {
			t.Errorf("error does not wrap %v", kind)
		}
	}
	if diff := cmp.Diff(before, tree(t, cfg)); diff != "" {
		t.Errorf("a failed AddAll changed the catalog (-before +after):\n%s", diff)
	}
}

// TestReplaceExistingOnlyReplacesHeads: opm's --overwrite-latest rule.
func TestReplaceExistingOnlyReplacesHeads(t *testing.T) {
	cfg := small(t, "stable", map[string][]string{"stable": {"p.v1", "p.v2<p.v1"}})
	a := addition(t, "p.v1", "spec.bundles[0]", "", Placement{Channels: []string{"stable"}})
	a.ReplaceExisting = true
	_, err := AddAll(cfg, []Addition{a})
	if !errors.Is(err, ErrGraphConflict) || !strings.Contains(fmt.Sprint(err), `"p.v1" is not the head of channel "stable" (p.v2 upgrades from it)`) {
		t.Fatalf("got %v", err)
	}
}

// TestFollowForm: an added bundle takes the property form of its package,
// or of the catalog for a new package.
func TestFollowForm(t *testing.T) {
	csv := []byte(`{"apiVersion":"operators.coreos.com/v1alpha1","kind":"ClusterServiceVersion","metadata":{"name":"p.v9"},"spec":{"displayName":"P"}}`)
	obj := fbc.Property{Type: typeBundleObject, Value: json.RawMessage(fmt.Sprintf(`{"data":%q}`, b64(csv)))}
	meta := fbc.Property{Type: typeCSVMetadata, Value: json.RawMessage(`{"displayName":"P"}`)}
	withProps := func(pkg string, props ...fbc.Property) fbc.Bundle {
		return fbc.Bundle{Name: pkg + ".x", Package: pkg, Image: "example.com/x", Properties: props}
	}
	for _, tc := range []struct {
		name    string
		catalog []fbc.Bundle
		pkg     string
		want    string
	}{
		{"package with bundle objects", []fbc.Bundle{withProps("p", obj), withProps("q", meta), withProps("r", meta)}, "p", typeBundleObject},
		{"package with CSV metadata", []fbc.Bundle{withProps("p", meta), withProps("q", obj), withProps("r", obj)}, "p", typeCSVMetadata},
		{"new package in a catalog converted from SQLite", []fbc.Bundle{withProps("q", obj), withProps("r", obj)}, "p", typeBundleObject},
		{"new package in an empty catalog", nil, "p", typeCSVMetadata},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := fbc.Bundle{Name: "p.v9", Package: tc.pkg, Image: "example.com/p:9", Properties: []fbc.Property{obj}}
			if err := FollowForm(&fbc.DeclarativeConfig{Bundles: tc.catalog}, &b); err != nil {
				t.Fatal(err)
			}
			if got := b.Properties[len(b.Properties)-1].Type; got != tc.want {
				t.Errorf("last property %s, want %s", got, tc.want)
			}
		})
	}
}

func b64(data []byte) string { return base64.StdEncoding.EncodeToString(data) }
