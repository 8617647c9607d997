package reconcile

import (
	"bytes"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

func catalog(defaultChannel string, channels map[string][]fbc.ChannelEntry) *fbc.DeclarativeConfig {
	cfg := &fbc.DeclarativeConfig{Packages: []fbc.Package{{Schema: fbc.SchemaPackage, Name: "p", DefaultChannel: defaultChannel}}}
	seen := map[string]bool{}
	for name, entries := range channels {
		cfg.Channels = append(cfg.Channels, fbc.Channel{Schema: fbc.SchemaChannel, Name: name, Package: "p", Entries: entries})
		for _, e := range entries {
			if !seen[e.Name] {
				seen[e.Name] = true
				cfg.Bundles = append(cfg.Bundles, fbc.Bundle{Schema: fbc.SchemaBundle, Name: e.Name, Package: "p"})
			}
		}
	}
	return cfg
}

func TestDiffCatalog(t *testing.T) {
	v1 := catalog("stable", map[string][]fbc.ChannelEntry{"stable": {{Name: "p.v1"}}})
	v2 := catalog("stable", map[string][]fbc.ChannelEntry{
		"stable": {{Name: "p.v1"}, {Name: "p.v2", Replaces: "p.v1"}},
		"fast":   {{Name: "p.v2"}},
	})
	for _, tc := range []struct {
		name       string
		prev, next *fbc.DeclarativeConfig
		prevImg    string
		img        string
		want       CatalogChange
	}{
		{
			name: "new catalog", next: v1, img: "r/c@sha256:1",
			want: CatalogChange{Name: "c", Action: Create, Image: "r/c@sha256:1", Packages: []PackageChange{{
				Name: "p", Action: Create, DefaultChannel: "stable", Bundles: 1, BundlesAdded: []string{"p.v1"},
				Channels: []ChannelChange{{Name: "stable", Action: Create, Head: "p.v1"}},
			}}},
		},
		{
			name: "head moves and a channel appears", prev: v1, next: v2, prevImg: "r/c@sha256:1", img: "r/c@sha256:2",
			want: CatalogChange{Name: "c", Action: Update, Image: "r/c@sha256:2", PreviousImage: "r/c@sha256:1", Packages: []PackageChange{{
				Name: "p", Action: Update, DefaultChannel: "stable", Bundles: 2, BundlesAdded: []string{"p.v2"},
				Channels: []ChannelChange{{Name: "fast", Action: Create, Head: "p.v2"}, {Name: "stable", Action: Update, Head: "p.v2", PreviousHead: "p.v1"}},
			}}},
		},
		{
			name: "unchanged", prev: v1, next: v1, prevImg: "r/c@sha256:1", img: "r/c@sha256:1",
			want: CatalogChange{Name: "c", Action: Unchanged, Image: "r/c@sha256:1", PreviousImage: "r/c@sha256:1", Packages: []PackageChange{{
				Name: "p", Action: Unchanged, DefaultChannel: "stable", Bundles: 1,
				Channels: []ChannelChange{{Name: "stable", Action: Unchanged, Head: "p.v1"}},
			}}},
		},
		{
			name: "catalog removed", prev: v1, prevImg: "r/c@sha256:1",
			want: CatalogChange{Name: "c", Action: Delete, PreviousImage: "r/c@sha256:1", Packages: []PackageChange{{
				Name: "p", Action: Delete, PreviousDefaultChannel: "stable", BundlesRemoved: []string{"p.v1"},
				Channels: []ChannelChange{{Name: "stable", Action: Delete, PreviousHead: "p.v1"}},
			}}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := DiffCatalog("c", tc.prev, tc.next, tc.prevImg, tc.img)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestPlanText(t *testing.T) {
	v1 := catalog("stable", map[string][]fbc.ChannelEntry{"stable": {{Name: "p.v1"}}})
	v2 := catalog("stable", map[string][]fbc.ChannelEntry{"stable": {{Name: "p.v1"}, {Name: "p.v2", Replaces: "p.v1"}}})
	p := &Plan{
		Catalogs: []CatalogChange{DiffCatalog("c", v1, v2, "r/c@sha256:1", "r/c@sha256:2")},
		Files:    []FileChange{{Path: "catalogs/c/configs/p/catalog.yaml", Action: Update}, {Path: "catalogs/c/catalogsource.yaml", Action: Unchanged}},
	}
	if !p.HasChanges() {
		t.Error("HasChanges = false for a plan with an update")
	}
	var b bytes.Buffer
	if err := p.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"Catalog/c: update",
		"channel stable               head p.v1 -> p.v2",
		"    + p.v2",
		"file catalogs/c/configs/p/catalog.yaml: update",
		"Plan: 1 of 1 catalog(s) to change, 1 bundle(s) added, 0 removed, 1 file(s) to write.",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("plan text lacks %q:\n%s", want, b.String())
		}
	}
	if (&Plan{Catalogs: []CatalogChange{DiffCatalog("c", v1, v1, "x", "x")}}).HasChanges() {
		t.Error("HasChanges = true for an unchanged plan")
	}
}

func TestPin(t *testing.T) {
	for _, tc := range []struct{ target, want string }{
		{"mirror.example.com:5000/olm/c:v4.20", "mirror.example.com:5000/olm/c@sha256:abc"},
		{"mirror.example.com/olm/c", "mirror.example.com/olm/c@sha256:abc"},
	} {
		got, err := pin(tc.target, "sha256:abc")
		if err != nil || got != tc.want {
			t.Errorf("pin(%q) = %q, %v; want %q", tc.target, got, err, tc.want)
		}
	}
	if _, err := pin("", "sha256:abc"); err == nil {
		t.Error("empty target accepted")
	}
}

func TestPlanCopies(t *testing.T) {
	v1 := catalog("stable", map[string][]fbc.ChannelEntry{"stable": {{Name: "p.v1"}}})
	unchanged := []CatalogChange{DiffCatalog("c", v1, v1, "x", "x")}
	for _, tc := range []struct {
		name    string
		copy    *CopyPlan
		changes bool
		text    string
	}{
		{name: "mirror not checked (render)", text: "Mirror: 3 image(s) in the image set (mirror/mapping.txt).\n"},
		{name: "mirror complete", copy: &CopyPlan{Present: 3}, text: "; 0 to copy (0 B at most), 3 present.\n"},
		{name: "mirror lacks an image: a change", copy: &CopyPlan{Present: 2, Bytes: 3 << 20, Images: []ImageCopy{{Source: "q/a@sha256:1", Destination: "m/q/a:t", Bytes: 3 << 20}}},
			changes: true, text: "; 1 to copy (3.0 MiB at most), 2 present.\n  copy q/a@sha256:1 -> m/q/a:t (3.0 MiB)\n"},
		{name: "mirror unreachable: a warning, not a change", copy: &CopyPlan{Unchecked: "dial tcp: refused", Images: []ImageCopy{{Source: "q/a@sha256:1", Destination: "m/q/a:t"}}},
			text: "; not checked against the mirror (dial tcp: refused).\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &Plan{Catalogs: unchanged, Images: 3, Copy: tc.copy}
			if got := p.HasChanges(); got != tc.changes {
				t.Errorf("HasChanges = %v, want %v", got, tc.changes)
			}
			var b bytes.Buffer
			if err := p.WriteText(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), tc.text) {
				t.Errorf("plan text lacks %q:\n%s", tc.text, b.String())
			}
		})
	}
}
