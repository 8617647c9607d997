package reconcile

import (
	"io/fs"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/render/mirror"
)

func TestHoldBack(t *testing.T) {
	previous := fstest.MapFS{
		"catalogs/a/catalogsource.yaml":     {Data: []byte("a old")},
		"catalogs/a/configs/p/catalog.yaml": {Data: []byte("a p old")},
		"catalogs/ab/catalogsource.yaml":    {Data: []byte("ab old")},
	}
	next := map[string][]byte{
		"catalogs/a/catalogsource.yaml":     []byte("a new"),
		"catalogs/a/configs/q/catalog.yaml": []byte("a q new"),
		"catalogs/ab/catalogsource.yaml":    []byte("ab new"),
		"catalogs/c/catalogsource.yaml":     []byte("c new"),
		"mirror/mapping.txt":                []byte("m new"),
	}
	for _, tc := range []struct {
		name     string
		previous fstest.MapFS
		held     map[string]string
		want     map[string]string
	}{
		{name: "nothing held", previous: previous, want: map[string]string{
			"catalogs/a/catalogsource.yaml": "a new", "catalogs/a/configs/q/catalog.yaml": "a q new",
			"catalogs/ab/catalogsource.yaml": "ab new", "catalogs/c/catalogsource.yaml": "c new", "mirror/mapping.txt": "m new",
		}},
		{name: "a held keeps its previous files, not its new ones; ab is another catalog", previous: previous,
			held: map[string]string{"a": "image x not mirrored"}, want: map[string]string{
				"catalogs/a/catalogsource.yaml": "a old", "catalogs/a/configs/p/catalog.yaml": "a p old",
				"catalogs/ab/catalogsource.yaml": "ab new", "catalogs/c/catalogsource.yaml": "c new", "mirror/mapping.txt": "m new",
			}},
		{name: "a catalog held on its first render has no files", held: map[string]string{"c": "push failed"}, want: map[string]string{
			"catalogs/a/catalogsource.yaml": "a new", "catalogs/a/configs/q/catalog.yaml": "a q new",
			"catalogs/ab/catalogsource.yaml": "ab new", "mirror/mapping.txt": "m new",
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var prev fs.FS // a nil MapFS in an interface is not a nil FS
			if tc.previous != nil {
				prev = tc.previous
			}
			got := map[string]string{}
			for p, b := range holdBack(next, prev, tc.held) {
				got[p] = string(b)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Error(diff)
			}
		})
	}
}

func TestDependents(t *testing.T) {
	images := []mirror.Image{
		{Destination: "m/x:1", Catalogs: []string{"a", "b"}},
		{Destination: "m/y:1", Catalogs: []string{"b"}},
		{Destination: "m/z:1"}, // an additional image: no catalog depends on it
	}
	for dst, want := range map[string][]string{"m/x:1": {"a", "b"}, "m/y:1": {"b"}, "m/z:1": nil, "m/none:1": nil} {
		if diff := cmp.Diff(want, dependents(images, dst)); diff != "" {
			t.Errorf("%s: %s", dst, diff)
		}
	}
}
