package mirror

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/spec"
)

func TestAchieved(t *testing.T) {
	d := func(c byte) string {
		b := make([]byte, 64)
		for i := range b {
			b[i] = c
		}
		return "sha256:" + string(b)
	}
	set := &Set{
		Mirror:   spec.MirrorSpec{Registry: "mirror.example.com/olm"},
		Revision: "rev2",
		Catalogs: []LockedCatalog{
			{Name: "held", Source: "quay.io/x/index:v1", SourceDigest: d('1'), Target: "mirror.example.com/olm/held:v1", Digest: d('2')},
			{Name: "moved", Source: "quay.io/x/index:v1", SourceDigest: d('1'), Target: "mirror.example.com/olm/moved:v1", Digest: d('3')},
			{Name: "new-held", Source: "quay.io/x/index:v1", SourceDigest: d('1'), Target: "mirror.example.com/olm/new-held:v1", Digest: d('4')},
		},
		Images: []Image{
			{Source: "mirror.example.com/olm/held:v1@" + d('2'), Repository: "mirror.example.com/olm/held", Tag: "v1", Digest: d('2'),
				Destination: "mirror.example.com/olm/held:v1", DestinationRepository: "mirror.example.com/olm/held", InPlace: true, Catalogs: []string{"held"}},
			{Source: "mirror.example.com/olm/moved:v1@" + d('3'), Repository: "mirror.example.com/olm/moved", Tag: "v1", Digest: d('3'),
				Destination: "mirror.example.com/olm/moved:v1", DestinationRepository: "mirror.example.com/olm/moved", InPlace: true, Catalogs: []string{"moved"}},
			{Source: "quay.io/a/copied@" + d('a'), Repository: "quay.io/a/copied", Digest: d('a'),
				Destination: "mirror.example.com/olm/a/copied:h1", DestinationRepository: "mirror.example.com/olm/a/copied", Catalogs: []string{"moved"}},
			{Source: "quay.io/a/failed-new", Repository: "quay.io/a/failed-new", Tag: "latest", Digest: d('b'), Resolved: true,
				Destination: "mirror.example.com/olm/a/failed-new:latest", DestinationRepository: "mirror.example.com/olm/a/failed-new"},
			{Source: "quay.io/a/failed-old:v2", Repository: "quay.io/a/failed-old", Tag: "v2", Digest: d('c'), Resolved: true,
				Destination: "mirror.example.com/olm/a/failed-old:v2", DestinationRepository: "mirror.example.com/olm/a/failed-old"},
		},
	}
	previous := &Lock{
		APIVersion: LockVersion, Kind: LockKind, Revision: "rev1", Mirror: "mirror.example.com/olm",
		Catalogs: []LockedCatalog{
			{Name: "held", Source: "quay.io/x/index:v1", SourceDigest: d('0'), Target: "mirror.example.com/olm/held:v1", Digest: d('9')},
			{Name: "moved", Source: "quay.io/x/index:v1", SourceDigest: d('0'), Target: "mirror.example.com/olm/moved:v1", Digest: d('8')},
		},
		Images: []LockedImage{
			{Source: "mirror.example.com/olm/held:v1@" + d('9'), Digest: d('9'), Destination: "mirror.example.com/olm/held:v1"},
			{Source: "mirror.example.com/olm/moved:v1@" + d('8'), Digest: d('8'), Destination: "mirror.example.com/olm/moved:v1"},
			{Source: "quay.io/a/failed-old:v2", Digest: d('7'), Destination: "mirror.example.com/olm/a/failed-old:v2"},
			{Source: "quay.io/a/dropped@" + d('6'), Digest: d('6'), Destination: "mirror.example.com/olm/a/dropped:h2"},
		},
	}
	failed := map[string]bool{"quay.io/a/failed-new": true, "quay.io/a/failed-old:v2": true}
	held := map[string]bool{"held": true, "new-held": true}
	done := func(img *Image) bool {
		if img.InPlace {
			return !held[img.Catalogs[0]]
		}
		return !failed[img.Source]
	}
	got := set.Achieved(done, held, previous).Lock()
	want := &Lock{
		APIVersion: LockVersion, Kind: LockKind, Revision: "rev2", Mirror: "mirror.example.com/olm",
		Catalogs: []LockedCatalog{
			previous.Catalogs[0], // held: its previous entry
			set.Catalogs[1],      // moved
			// new-held was never locked: no entry
		},
		Images: []LockedImage{
			{Source: "mirror.example.com/olm/held:v1@" + d('9'), Digest: d('9'), Destination: "mirror.example.com/olm/held:v1"},
			{Source: "mirror.example.com/olm/moved:v1@" + d('3'), Digest: d('3'), Destination: "mirror.example.com/olm/moved:v1"},
			{Source: "quay.io/a/copied@" + d('a'), Digest: d('a'), Destination: "mirror.example.com/olm/a/copied:h1"},
			// failed-new: not in the mirror, never was
			{Source: "quay.io/a/failed-old:v2", Digest: d('7'), Destination: "mirror.example.com/olm/a/failed-old:v2"},
			// dropped: the spec no longer wants it
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("lock (-want +got):\n%s", diff)
	}
	files, err := set.Achieved(done, held, previous).Files(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	wantMapping := "quay.io/a/copied@" + d('a') + "=mirror.example.com/olm/a/copied:h1\n" +
		"quay.io/a/failed-old@" + d('7') + "=mirror.example.com/olm/a/failed-old:v2\n"
	if diff := cmp.Diff(wantMapping, string(files[MappingFile])); diff != "" {
		t.Errorf("mapping.txt (-want +got):\n%s", diff)
	}
	// Nothing done and nothing locked before: an empty mirror render.
	empty := set.Achieved(func(*Image) bool { return false }, map[string]bool{"held": true, "moved": true, "new-held": true}, nil)
	if len(empty.Images) != 0 || len(empty.Catalogs) != 0 {
		t.Errorf("nothing done, no previous lock: %d images, %d catalogs", len(empty.Images), len(empty.Catalogs))
	}
}
