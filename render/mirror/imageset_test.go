package mirror

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/spec"
)

// bundles makes a catalog whose bundles reference the given images; the
// first image of each group is the bundle image, the rest related images.
func bundles(groups ...[]string) *fbc.DeclarativeConfig {
	cfg := &fbc.DeclarativeConfig{}
	for i, g := range groups {
		b := fbc.Bundle{Schema: fbc.SchemaBundle, Name: "b" + string(rune('0'+i)), Package: "p", Image: g[0]}
		for j, img := range g[1:] {
			b.RelatedImages = append(b.RelatedImages, fbc.RelatedImage{Name: "r" + string(rune('0'+j)), Image: img})
		}
		cfg.Bundles = append(cfg.Bundles, b)
	}
	return cfg
}

var (
	dA = fakeDigest("a")
	dB = fakeDigest("b")
)

// TestHashTagMatchesOC checks the destination tag of digest-only sources
// against values from oc's own tests (openshift/oc
// pkg/cli/admin/catalog/mirrorer_test.go), including one whose hash has
// fewer than 8 hex digits: oc does not pad.
func TestHashTagMatchesOC(t *testing.T) {
	for src, want := range map[string]string{
		"quay.io/coreos/etcd-operator@sha256:db563baa8194fcfe39d1df744ed70024b0f1f9e9b55b5923c2f3a413c44dc6b8":       "b56e2636",
		"quay.io/coreos/etcd-operator@sha256:c0301e4686c3ed4206e370b42de5a3bd2229b9fb4906cf85f3f30650424abec2":       "2f1eb95",
		"quay.io/coreos/prometheus-operator@sha256:0e92dd9b5789c4b13d53e1319d0a6375bcca4caaf0d698af61198061222a576d": "7f39d12d",
		"docker.io/my/image@sha256:154d7e0295a94fb3d2a97309d711186a98a7308da37a5cd3d50360c6b2ba57de":                 "a1d77056",
	} {
		if got := HashTag(src); got != want {
			t.Errorf("HashTag(%s) = %s, oc gives %s", src, got, want)
		}
	}
}

// TestDestinations covers naming and flattening for one image at a time,
// with oc's expectations where oc has them.
func TestDestinations(t *testing.T) {
	const ocDigest = "sha256:154d7e0295a94fb3d2a97309d711186a98a7308da37a5cd3d50360c6b2ba57de"
	tests := []struct {
		name     string
		registry string
		max      int
		image    string
		want     string // Destination
		wantRepo string // DestinationRepository
	}{
		// The next four are oc's TestMappingForImages cases (max 2).
		{"oc tagged to registry", "quay.io", 2, "docker.io/my/image:tag", "quay.io/my/image:tag", "quay.io/my/image"},
		{"oc untagged to registry", "quay.io", 2, "docker.io/my/image", "quay.io/my/image:latest", "quay.io/my/image"},
		{"oc digest to registry with port", "localhost:5000", 2, "docker.io/my/image@" + ocDigest, "localhost:5000/my/image:a1d77056", "localhost:5000/my/image"},
		{"oc digest to org", "quay.io/my-org", 2, "docker.io/my/image@" + ocDigest, "quay.io/my-org/my-image:a1d77056", "quay.io/my-org/my-image"},
		{"oc tagged to org, max 3", "quay.io/my-org", 3, "docker.io/my/image:tag", "quay.io/my-org/my/image:tag", "quay.io/my-org/my/image"},
		{"no limit keeps depth", "mirror.example.com/ns", 0, "quay.io/a/b/c/d:v1", "mirror.example.com/ns/a/b/c/d:v1", "mirror.example.com/ns/a/b/c/d"},
		{"deep path flattened", "mirror.example.com/ns", 3, "quay.io/a/b/c/d:v1", "mirror.example.com/ns/a/b-c-d:v1", "mirror.example.com/ns/a/b-c-d"},
		{"docker hub short name", "mirror.example.com", 0, "busybox:1.36", "mirror.example.com/library/busybox:1.36", "mirror.example.com/library/busybox"},
		{"tag and digest keeps the tag", "mirror.example.com", 0, "quay.io/a/b:v1@" + dA, "mirror.example.com/a/b:v1", "mirror.example.com/a/b"},
		{"source host is dropped, port too", "mirror.example.com", 0, "registry.local:8443/team/app@" + dA, "mirror.example.com/team/app:" + HashTag("registry.local:8443/team/app@"+dA), "mirror.example.com/team/app"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &spec.MirrorSpec{Registry: tc.registry, MaxPathComponents: tc.max, AdditionalImages: []string{tc.image}}
			in := Input{Mirror: m}
			in.Resolved = resolveAll(t, in)
			set, err := Build(in)
			if err != nil {
				t.Fatal(err)
			}
			if len(set.Images) != 1 {
				t.Fatalf("got %d images, want 1", len(set.Images))
			}
			img := set.Images[0]
			if img.Destination != tc.want || img.DestinationRepository != tc.wantRepo {
				t.Errorf("destination %s (repository %s), want %s (%s)", img.Destination, img.DestinationRepository, tc.want, tc.wantRepo)
			}
			if !strings.HasPrefix(img.Pinned(), img.Repository+"@sha256:") {
				t.Errorf("pinned source %s is not by digest", img.Pinned())
			}
		})
	}
}

// TestImageSet checks what goes into the set and what is reported.
func TestImageSet(t *testing.T) {
	mirror := func(f func(*spec.MirrorSpec)) *spec.MirrorSpec {
		m := &spec.MirrorSpec{Registry: "mirror.example.com/ns"}
		if f != nil {
			f(m)
		}
		return m
	}
	type img struct {
		Source, Destination string
		Roles               []Role
		Catalogs            []string
		InPlace             bool
	}
	tests := []struct {
		name        string
		in          Input
		want        []img
		wantBlocked []string
	}{
		{
			name: "bundle and related images, deduplicated across bundles and catalogs",
			in: Input{Mirror: mirror(nil), Catalogs: []Catalog{
				{Name: "one", Config: bundles([]string{"quay.io/x/bundle@" + dA, "quay.io/x/bundle@" + dA, "quay.io/x/op@" + dB, ""})},
				{Name: "two", Config: bundles([]string{"quay.io/x/bundle@" + dA, "quay.io/x/op@" + dB})},
			}},
			want: []img{
				{Source: "quay.io/x/bundle@" + dA, Destination: "mirror.example.com/ns/x/bundle:" + HashTag("quay.io/x/bundle@"+dA), Roles: []Role{RoleBundle, RoleRelated}, Catalogs: []string{"one", "two"}},
				{Source: "quay.io/x/op@" + dB, Destination: "mirror.example.com/ns/x/op:" + HashTag("quay.io/x/op@"+dB), Roles: []Role{RoleRelated}, Catalogs: []string{"one", "two"}},
			},
		},
		{
			name: "blocked by regexp on the full reference, bundle images too",
			in: Input{Mirror: mirror(func(m *spec.MirrorSpec) {
				m.BlockedImages = []string{`^quay\.io/x/op@`, `/debug-`}
				m.AdditionalImages = []string{"registry.redhat.io/ubi9/debug-tools:1"}
			}), Catalogs: []Catalog{
				{Name: "one", Config: bundles([]string{"quay.io/x/bundle@" + dA, "quay.io/x/op@" + dB, "quay.io/x/operator@" + dB})},
			}},
			want: []img{
				{Source: "quay.io/x/bundle@" + dA, Destination: "mirror.example.com/ns/x/bundle:" + HashTag("quay.io/x/bundle@"+dA), Roles: []Role{RoleBundle}, Catalogs: []string{"one"}},
				{Source: "quay.io/x/operator@" + dB, Destination: "mirror.example.com/ns/x/operator:" + HashTag("quay.io/x/operator@"+dB), Roles: []Role{RoleRelated}, Catalogs: []string{"one"}},
			},
			wantBlocked: []string{"quay.io/x/op@" + dB, "registry.redhat.io/ubi9/debug-tools:1"},
		},
		{
			name: "blocked pattern may match the reference as written",
			in: Input{Mirror: mirror(func(m *spec.MirrorSpec) {
				m.BlockedImages = []string{`^busybox`}
				m.AdditionalImages = []string{"busybox:1.36", "quay.io/x/y:1"}
			})},
			want: []img{
				{Source: "quay.io/x/y:1", Destination: "mirror.example.com/ns/x/y:1", Roles: []Role{RoleAdditional}},
			},
			wantBlocked: []string{"docker.io/library/busybox:1.36"},
		},
		{
			name: "built catalogs: in the mirror in place, elsewhere copied; never blocked",
			in: Input{Mirror: mirror(func(m *spec.MirrorSpec) { m.BlockedImages = []string{"catalog"} }), Catalogs: []Catalog{
				{Name: "in", Target: "mirror.example.com/ns/redhat/catalog:v4.20", Digest: dA},
				{Name: "out", Target: "quay.io/example/catalog:v1", Digest: dB},
			}},
			want: []img{
				{Source: "mirror.example.com/ns/redhat/catalog:v4.20@" + dA, Destination: "mirror.example.com/ns/redhat/catalog:v4.20", Roles: []Role{RoleCatalog}, Catalogs: []string{"in"}, InPlace: true},
				{Source: "quay.io/example/catalog:v1@" + dB, Destination: "mirror.example.com/ns/example/catalog:v1", Roles: []Role{RoleCatalog}, Catalogs: []string{"out"}},
			},
		},
		{
			name: "a built catalog image referenced by a bundle too is not blocked, whichever comes first",
			in: Input{Mirror: mirror(func(m *spec.MirrorSpec) { m.BlockedImages = []string{"catalog"} }), Catalogs: []Catalog{
				{Name: "first", Config: bundles([]string{"quay.io/example/catalog:v1@" + dB})},
				{Name: "built", Target: "quay.io/example/catalog:v1", Digest: dB, Config: bundles([]string{"quay.io/example/catalog:v1@" + dB})},
			}},
			want: []img{
				{Source: "quay.io/example/catalog:v1@" + dB, Destination: "mirror.example.com/ns/example/catalog:v1", Roles: []Role{RoleBundle, RoleCatalog}, Catalogs: []string{"built", "first"}},
			},
		},
		{
			name: "a tag referenced at two digests: each tag@digest gets a hash tag, the tag-only reference keeps it",
			in: Input{Mirror: mirror(func(m *spec.MirrorSpec) {
				m.AdditionalImages = []string{"quay.io/x/y:1@" + dA, "quay.io/x/y:1@" + dB, "quay.io/x/y:1"}
			})},
			want: []img{
				{Source: "quay.io/x/y:1", Destination: "mirror.example.com/ns/x/y:1", Roles: []Role{RoleAdditional}},
				{Source: "quay.io/x/y:1@" + dB, Destination: "mirror.example.com/ns/x/y:" + HashTag("quay.io/x/y:1@"+dB), Roles: []Role{RoleAdditional}},
				{Source: "quay.io/x/y:1@" + dA, Destination: "mirror.example.com/ns/x/y:" + HashTag("quay.io/x/y:1@"+dA), Roles: []Role{RoleAdditional}},
			},
		},
		{
			name: "a tag and its digest are two sources with one digest",
			in: Input{Mirror: mirror(func(m *spec.MirrorSpec) {
				m.AdditionalImages = []string{"quay.io/x/y:1", "quay.io/x/y@" + fakeDigest("resolved quay.io/x/y:1")}
			})},
			want: []img{
				{Source: "quay.io/x/y:1", Destination: "mirror.example.com/ns/x/y:1", Roles: []Role{RoleAdditional}},
				{Source: "quay.io/x/y@" + fakeDigest("resolved quay.io/x/y:1"), Destination: "mirror.example.com/ns/x/y:" + HashTag("quay.io/x/y@"+fakeDigest("resolved quay.io/x/y:1")), Roles: []Role{RoleAdditional}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Resolved = resolveAll(t, tc.in)
			set, err := Build(tc.in)
			if err != nil {
				t.Fatal(err)
			}
			var got []img
			for _, i := range set.Images {
				got = append(got, img{i.Source, i.Destination, i.Roles, i.Catalogs, i.InPlace})
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("images (-want +got):\n%s", diff)
			}
			var blocked []string
			for _, b := range set.Blocked {
				blocked = append(blocked, b.Source)
			}
			if diff := cmp.Diff(tc.wantBlocked, blocked); diff != "" {
				t.Errorf("blocked (-want +got):\n%s", diff)
			}
			for _, c := range set.CopyPairs() {
				if !strings.Contains(c.Source, "@sha256:") || strings.Contains(c.Destination, "@") {
					t.Errorf("copy %s -> %s: want source by digest, destination by tag", c.Source, c.Destination)
				}
				if c.Destination == "mirror.example.com/ns/redhat/catalog:v4.20" {
					t.Errorf("a catalog already in the mirror is copied: %+v", c)
				}
			}
		})
	}
}

// TestUnresolved checks that only tag references are asked for, blocked
// ones excepted, and that Build refuses unresolved tags.
func TestUnresolved(t *testing.T) {
	in := Input{Mirror: &spec.MirrorSpec{
		Registry:         "mirror.example.com",
		AdditionalImages: []string{"quay.io/x/a:1", "quay.io/x/b@" + dA, "quay.io/x/c:2@" + dB, "quay.io/x/blocked:3", "quay.io/x/d"},
		BlockedImages:    []string{"blocked"},
	}}
	got, err := Unresolved(in)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"quay.io/x/a:1", "quay.io/x/d:latest"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("unresolved (-want +got):\n%s", diff)
	}
	// The reference as written is accepted as a key too.
	in.Resolved = map[string]string{"quay.io/x/a:1": dA}
	_, err = Build(in)
	var missing *MissingDigestError
	if !errors.As(err, &missing) || !cmp.Equal(missing.Refs, []string{"quay.io/x/d:latest"}) {
		t.Fatalf("build with one tag unresolved: %v, want MissingDigestError for quay.io/x/d:latest", err)
	}
	in.Resolved["quay.io/x/d"] = dB
	set, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	if i := set.Image("quay.io/x/d:latest"); i == nil || i.Digest != dB || !i.Resolved || i.ByDigest() {
		t.Errorf("quay.io/x/d:latest = %+v, want resolved to %s", i, dB)
	}
	if i := set.Image("quay.io/x/c:2@" + dB); i == nil || i.Resolved || !i.ByDigest() || i.Destination != "mirror.example.com/x/c:2" {
		t.Errorf("tag+digest reference = %+v, want its own digest and tag", i)
	}
	in.Resolved["quay.io/x/d"] = "latest"
	if _, err := Build(in); err == nil || !strings.Contains(err.Error(), "not a digest") {
		t.Errorf("a resolver answer that is not a digest: got %v", err)
	}
}

// TestNeeds: what needs a reference is every catalog listing it and every
// additionalImages entry naming it, however it is spelled.
func TestNeeds(t *testing.T) {
	in := Input{
		Mirror: &spec.MirrorSpec{Registry: "mirror.example.com", AdditionalImages: []string{"quay.io/x/a:1", "quay.io/x/only:2", "quay.io/x/a:1"}},
		Catalogs: []Catalog{
			{Name: "two", Config: bundles([]string{"quay.io/x/b@" + dA, "quay.io/x/a:1"})},
			{Name: "one", Config: bundles([]string{"quay.io/x/a:1"}, []string{"docker.io/library/busybox"})},
		},
	}
	got := Needs(in, []string{"quay.io/x/a:1", "quay.io/x/only:2", "docker.io/library/busybox:latest", "quay.io/x/none:1"})
	want := map[string]Need{
		"quay.io/x/a:1":                    {Catalogs: []string{"one", "two"}, AdditionalImages: []int{0, 2}},
		"quay.io/x/only:2":                 {AdditionalImages: []int{1}},
		"docker.io/library/busybox:latest": {Catalogs: []string{"one"}},
		"quay.io/x/none:1":                 {},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("needs (-want +got):\n%s", diff)
	}
}

// TestCollisions: two different sources, one destination, are errors that
// name both, and Build returns no set to copy from.
func TestCollisions(t *testing.T) {
	tests := []struct {
		name     string
		mirror   spec.MirrorSpec
		images   []string
		catalogs []Catalog
		want     []CollisionError
	}{
		{
			name:   "same path on two registries",
			mirror: spec.MirrorSpec{Registry: "mirror.example.com"},
			images: []string{"quay.io/a/b@" + dA, "registry.redhat.io/a/b@" + dB},
			want: []CollisionError{{Destination: "mirror.example.com/a/b", Sources: []string{"quay.io/a/b", "registry.redhat.io/a/b"},
				Hint: "they differ only in their registry, which destinations drop: set keepSourceRegistry, or block all but one (blockedImages)"}},
		},
		{
			name:   "same path on two registries with flattening on",
			mirror: spec.MirrorSpec{Registry: "mirror.example.com", MaxPathComponents: 3},
			images: []string{"quay.io/a/b@" + dA, "registry.redhat.io/a/b@" + dB},
			// maxPathComponents is set but is not the cause: no hint to raise it.
			want: []CollisionError{{Destination: "mirror.example.com/a/b", Sources: []string{"quay.io/a/b", "registry.redhat.io/a/b"},
				Hint: "they differ only in their registry, which destinations drop: set keepSourceRegistry, or block all but one (blockedImages)"}},
		},
		{
			name:   "flattening joins two paths",
			mirror: spec.MirrorSpec{Registry: "mirror.example.com", MaxPathComponents: 2},
			images: []string{"quay.io/a/b/c:1", "quay.io/a/b-c:2"},
			want: []CollisionError{{Destination: "mirror.example.com/a/b-c", Sources: []string{"quay.io/a/b-c", "quay.io/a/b/c"},
				Hint: "maxPathComponents 2 joins their paths with '-': raise it, or block all but one (blockedImages)"}},
		},
		{
			name:   "flattening under a namespace",
			mirror: spec.MirrorSpec{Registry: "mirror.example.com/ns", MaxPathComponents: 2},
			images: []string{"quay.io/team-app/x:1", "quay.io/team/app-x:1", "quay.io/team/app/x:1"},
			want: []CollisionError{{Destination: "mirror.example.com/ns/team-app-x", Sources: []string{"quay.io/team-app/x", "quay.io/team/app-x", "quay.io/team/app/x"},
				Hint: "maxPathComponents 2 joins their paths with '-': raise it, or block all but one (blockedImages)"}},
		},
		{
			name:   "a tag equal to another source's hash tag",
			mirror: spec.MirrorSpec{Registry: "mirror.example.com"},
			images: []string{"quay.io/a/b@" + dA, "quay.io/a/b:" + HashTag("quay.io/a/b@"+dA)},
			want: []CollisionError{{Destination: "mirror.example.com/a/b:" + HashTag("quay.io/a/b@"+dA), Tag: true, Sources: []string{
				"quay.io/a/b:" + HashTag("quay.io/a/b@"+dA) + " (resolved to " + fakeDigest("resolved quay.io/a/b:"+HashTag("quay.io/a/b@"+dA)) + ")",
				"quay.io/a/b@" + dA}}},
		},
		{
			name:   "a copied image onto a catalog built in the mirror",
			mirror: spec.MirrorSpec{Registry: "mirror.example.com"},
			images: []string{"registry.redhat.io/redhat/index:v4.20"},
			catalogs: []Catalog{
				{Name: "c", Target: "mirror.example.com/redhat/index:v4.20", Digest: dA},
			},
			// No maxPathComponents is set: the hint must not suggest
			// raising it.
			want: []CollisionError{{Destination: "mirror.example.com/redhat/index", Sources: []string{"mirror.example.com/redhat/index", "registry.redhat.io/redhat/index"},
				Hint: "one of them is already in the mirror at that path (a built catalog, or an image under the Mirror registry): block the other (blockedImages)"}},
		},
		{
			name:   "one digest under a tag twice is fine",
			mirror: spec.MirrorSpec{Registry: "mirror.example.com"},
			images: []string{"quay.io/a/b:v1@" + dA, "quay.io/a/b:v1"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.mirror
			m.AdditionalImages = tc.images
			in := Input{Mirror: &m, Catalogs: tc.catalogs}
			in.Resolved = resolveAll(t, in)
			for k := range in.Resolved {
				if k == "quay.io/a/b:v1" {
					in.Resolved[k] = dA
				}
			}
			set, err := Build(in)
			var got []CollisionError
			for _, e := range unjoin(err) {
				var ce *CollisionError
				if !errors.As(e, &ce) {
					t.Fatalf("unexpected error: %v", e)
				}
				got = append(got, *ce)
				for _, s := range ce.Sources {
					if !strings.Contains(ce.Error(), s) {
						t.Errorf("error %q does not name source %s", ce.Error(), s)
					}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("collisions (-want +got):\n%s", diff)
			}
			if (set == nil) != (len(tc.want) > 0) {
				t.Errorf("set returned: %v, want a set only without collisions", set != nil)
			}
		})
	}
}

func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// TestInvalidInputs: every problem is reported at once, with where it is.
func TestInvalidInputs(t *testing.T) {
	in := Input{
		Mirror: &spec.MirrorSpec{
			Registry:         "mirror.example.com",
			AdditionalImages: []string{"quay.io/UPPER/case:1"},
			BlockedImages:    []string{"("},
		},
		Catalogs: []Catalog{
			{Name: "c", Config: bundles([]string{"quay.io/x/b@sha256:short", "not a ref"}), Target: "mirror.example.com/c:1", Digest: "nope"},
		},
	}
	_, err := Build(in)
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		"blockedImages[0]",
		`catalog c, bundle b0: image "quay.io/x/b@sha256:short"`,
		`catalog c, bundle b0, related image r0: image "not a ref"`,
		`additionalImages[0]: image "quay.io/UPPER/case:1"`,
		"catalog c: built image mirror.example.com/c:1",
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %q:\n%v", want, err)
		}
	}
	if _, err := Build(Input{}); err == nil {
		t.Error("no Mirror: no error")
	}
}
