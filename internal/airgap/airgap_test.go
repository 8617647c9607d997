package airgap

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/ferry-gitops/ferry/internal/mirror"
)

// fixture is a source registry holding plain images, an index, images by
// tag and by digest, plus two images built in memory.
type fixture struct {
	src       *memRegistry
	app, tool v1.Image
	multi     v1.ImageIndex
	builtImg  v1.Image
	builtIdx  v1.ImageIndex
	files     map[string][]byte
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{src: startMemRegistry(t)}
	f.app, f.tool, f.multi = testImage(t), testImage(t), testIndex(t)
	push(t, f.src.Host+"/team/app@"+digestOf(t, f.app), f.app)
	push(t, f.src.Host+"/team/multi:v2", f.multi)
	push(t, f.src.Host+"/other/tool:latest", f.tool)
	built, err := random.Image(512, 1)
	if err != nil {
		t.Fatal(err)
	}
	f.builtImg, f.builtIdx = built, testIndex(t)
	f.files = map[string][]byte{"ferry.lock": []byte("lock\n"), "manifests/catalogsource.yaml": []byte("kind: CatalogSource\n")}
	return f
}

// pairs maps the fixture's source images into dst.
func (f *fixture) pairs(t *testing.T, dst string) []mirror.Pair {
	return []mirror.Pair{
		{Source: f.src.Host + "/team/app@" + digestOf(t, f.app), Destination: dst + "/mirror/team/app"},
		{Source: f.src.Host + "/team/multi:v2", Destination: dst + "/mirror/team/multi:v2"},
		{Source: f.src.Host + "/other/tool:latest@" + digestOf(t, f.tool), Destination: dst + "/mirror/other/tool:latest"},
	}
}

func (f *fixture) built(dst string) []Built {
	return []Built{
		{Image: f.builtImg, Destination: dst + "/ferry/catalog:v1"},
		{Image: f.builtIdx, Destination: dst + "/ferry/multi-catalog"},
	}
}

func (f *fixture) all() []remote.Taggable {
	return []remote.Taggable{f.app, f.multi, f.tool, f.builtImg, f.builtIdx}
}

func exportOpts(t *testing.T, f *fixture, path string, dst string) ExportOptions {
	return ExportOptions{Path: path, Remotes: anonymousClient(t), Built: f.built(dst), Files: f.files, Concurrency: 4}
}

// TestExportImport exports the fixture to a directory and to a tar, checks
// the layout (a standard OCI reader validates every image of the directory)
// and the record, then imports it into a fresh registry without touching
// the source, and proves a second import is one HEAD per image.
func TestExportImport(t *testing.T) {
	f := newFixture(t)
	wantManifests, wantBlobs := blobsOf(t, f.all()...)
	for _, kind := range []string{"dir", "tar"} {
		t.Run(kind, func(t *testing.T) {
			dst := startMemRegistry(t)
			path := filepath.Join(t.TempDir(), "archive")
			if kind == "tar" {
				path += ".tar"
			}
			pairs := f.pairs(t, dst.Host)
			rep, err := Export(t.Context(), pairs, exportOpts(t, f, path, dst.Host))
			if err != nil {
				t.Fatal(err)
			}
			rec := rep.Record
			gotManifests, gotBlobs := map[string]int64{}, map[string]int64{}
			for _, b := range rec.Blobs {
				if b.Manifest {
					gotManifests[b.Digest] = b.Size
				} else {
					gotBlobs[b.Digest] = b.Size
				}
			}
			if diff := cmp.Diff(wantManifests, gotManifests); diff != "" {
				t.Errorf("manifests held (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantBlobs, gotBlobs); diff != "" {
				t.Errorf("blobs held (-want +got):\n%s", diff)
			}
			if len(rec.LeftOut) != 0 || len(rec.Since) != 0 || rep.Stats.Earlier != 0 {
				t.Errorf("a full archive left out %d, since %v, %d earlier", len(rec.LeftOut), rec.Since, rep.Stats.Earlier)
			}
			wantImages := []Image{}
			for i, x := range f.all() {
				im := Image{Digest: digestOf(t, x)}
				if i < len(pairs) {
					im.Source, im.Destination = pairs[i].Source, pairs[i].Destination
				} else {
					im.Destination = f.built(dst.Host)[i-len(pairs)].Destination
				}
				wantImages = append(wantImages, im)
			}
			gotImages := append([]Image(nil), rec.Images...)
			for i := range gotImages {
				gotImages[i].MediaType, gotImages[i].Size = "", 0
			}
			if diff := cmp.Diff(wantImages, gotImages); diff != "" {
				t.Errorf("record images (-want +got):\n%s", diff)
			}

			// index.json: one entry per image, named by destination.
			a, err := openArchive(path)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := a.readSmall("index.json", 1<<20)
			a.Close()
			if err != nil {
				t.Fatal(err)
			}
			var idx struct {
				Manifests []struct {
					Digest      string
					Annotations map[string]string
				}
			}
			if err := json.Unmarshal(raw, &idx); err != nil {
				t.Fatal(err)
			}
			var names []string
			for i, m := range idx.Manifests {
				names = append(names, m.Annotations[AnnotationRefName]+" "+m.Annotations[AnnotationSource]+" "+m.Digest)
				if want := wantImages[i]; m.Digest != want.Digest {
					t.Errorf("index.json entry %d: %s, want %s", i, m.Digest, want.Digest)
				}
			}
			var wantNames []string
			for _, im := range wantImages {
				wantNames = append(wantNames, im.Destination+" "+im.Source+" "+im.Digest)
			}
			if diff := cmp.Diff(wantNames, names); diff != "" {
				t.Errorf("index.json names (-want +got):\n%s", diff)
			}

			if kind == "dir" {
				validateLayout(t, path, len(wantImages))
				if _, err := os.Stat(filepath.Join(path, stagePrefix)); !os.IsNotExist(err) {
					t.Errorf("staging directory left behind: %v", err)
				}
			} else if ents, _ := os.ReadDir(filepath.Dir(path)); len(ents) != 1 {
				t.Errorf("next to the tar: %v, want only the tar", ents)
			}

			// Import: the source is never contacted.
			f.src.Log.Reset()
			irep, files, err := Import(t.Context(), path, ImportOptions{Remotes: anonymousClient(t), Concurrency: 4})
			if err != nil {
				t.Fatal(err)
			}
			if got := f.src.Log.Lines(); len(got) != 0 {
				t.Errorf("import sent %d requests to the source: %v", len(got), got)
			}
			if diff := cmp.Diff(f.files, files); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
			if irep.Stats.ImagesCopied != len(wantImages) || irep.Stats.BlobsUploaded != len(wantBlobs) {
				t.Errorf("import: %+v; want %d images copied, each of %d blobs uploaded once", irep.Stats, len(wantImages), len(wantBlobs))
			}
			for _, im := range wantImages {
				verifyImage(t, im.Destination, im.Digest)
			}
			if irep.Images[0].Source != pairs[0].Source {
				t.Errorf("report names the source %q, want %q", irep.Images[0].Source, pairs[0].Source)
			}

			// Again: every image present, one HEAD each, nothing written.
			dst.Log.Reset()
			irep, _, err = Import(t.Context(), path, ImportOptions{Remotes: anonymousClient(t)})
			if err != nil {
				t.Fatal(err)
			}
			if irep.Stats.ImagesPresent != len(wantImages) || dst.Log.Count("HEAD") != len(wantImages) || len(dst.Log.Lines()) != len(wantImages)+1 {
				t.Errorf("second import: %+v; requests %v", irep.Stats, dst.Log.Lines())
			}
		})
	}
}

// validateLayout reads a directory archive with go-containerregistry's
// layout package and validates every image in it (digests, sizes, configs),
// which is what makes it a standard OCI layout.
func validateLayout(t *testing.T, path string, n int) {
	t.Helper()
	lp, err := layout.FromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	ii, err := lp.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	im, err := ii.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(im.Manifests) != n {
		t.Fatalf("layout has %d images, want %d", len(im.Manifests), n)
	}
	for _, d := range im.Manifests {
		if d.MediaType.IsIndex() {
			child, err := ii.ImageIndex(d.Digest)
			if err == nil {
				err = validate.Index(child)
			}
			if err != nil {
				t.Errorf("layout index %s: %v", d.Digest, err)
			}
			continue
		}
		img, err := ii.Image(d.Digest)
		if err == nil {
			err = validate.Image(img)
		}
		if err != nil {
			t.Errorf("layout image %s: %v", d.Digest, err)
		}
	}
}

// verifyImage checks that dst (repo[:tag]) and repo@digest serve the
// manifest with that digest, and so do an index's children.
func verifyImage(t *testing.T, dst, digest string) {
	t.Helper()
	repo, tag, err := splitDestination(dst)
	if err != nil {
		t.Fatal(err)
	}
	refs := []string{repo + "@" + digest}
	if tag != "" {
		refs = append(refs, repo+":"+tag)
	}
	for _, ref := range refs {
		if got, err := rawDigest(t, ref); err != nil || got != digest {
			t.Errorf("%s: %s %v, want %s", ref, got, err, digest)
		}
	}
}

// twoArchives exports the fixture to first (a tar or a directory), adds an
// image to the source made of an old one plus a layer, and exports the lot
// again to second.tar with Since given as since: the first archive's path,
// or its record file ("record").
type twoArchives struct {
	pairs, pairs2  []mirror.Pair
	first, second  string
	rep1, rep2     *ExportReport
	img            v1.Image
	layer          v1.Layer
	newDigest      string
	sourceRequests []string // at the source during the second export
}

func exportTwice(t *testing.T, f *fixture, dst *memRegistry, since string) *twoArchives {
	t.Helper()
	x := &twoArchives{}
	dir := t.TempDir()
	x.first = filepath.Join(dir, "first")
	if since == "tar" {
		x.first += ".tar"
	}
	x.pairs = f.pairs(t, dst.Host)
	var err error
	if x.rep1, err = Export(t.Context(), x.pairs, exportOpts(t, f, x.first, dst.Host)); err != nil {
		t.Fatal(err)
	}
	sincePath := x.first
	if since == "record" {
		sincePath = filepath.Join(x.first, RecordFile)
	}
	x.img, x.layer = withLayer(t, f.app, 3000)
	x.newDigest = push(t, f.src.Host+"/newcomer/app:v9", x.img)
	x.pairs2 = append(append([]mirror.Pair(nil), x.pairs...), mirror.Pair{Source: f.src.Host + "/newcomer/app:v9", Destination: dst.Host + "/mirror/newcomer/app:v9"})
	x.second = filepath.Join(dir, "second.tar")
	opts := exportOpts(t, f, x.second, dst.Host)
	opts.Since = []string{sincePath}
	f.src.Log.Reset()
	if x.rep2, err = Export(t.Context(), x.pairs2, opts); err != nil {
		t.Fatal(err)
	}
	x.sourceRequests = f.src.Log.Lines()
	return x
}

// TestExportIncremental exports the fixture, adds an image made of an old
// one plus a layer, and exports again with Since given as the earlier
// archive (a tar, a directory, or its record file): the second archive
// holds exactly the new manifest, config and layer, names where the old
// layers are, and its import uploads only the new blobs and mounts the
// rest. A third export since the second only holds nothing at all.
func TestExportIncremental(t *testing.T) {
	f := newFixture(t)
	for _, since := range []string{"tar", "dir", "record"} {
		t.Run(since, func(t *testing.T) {
			dst := startMemRegistry(t)
			x := exportTwice(t, f, dst, since)
			rec := x.rep2.Record

			// Exactly the new manifest, config and layer.
			raw, _ := x.img.RawManifest()
			cfg, _ := x.img.RawConfigFile()
			cfgName, _ := x.img.ConfigName()
			ld, _ := x.layer.Digest()
			ls, _ := x.layer.Size()
			mt, _ := x.img.MediaType()
			want := []Blob{
				{Digest: x.newDigest, Size: int64(len(raw)), Manifest: true, MediaType: mt},
				{Digest: cfgName.String(), Size: int64(len(cfg))},
				{Digest: ld.String(), Size: ls},
			}
			sort.Slice(want, func(i, j int) bool { return want[i].Digest < want[j].Digest })
			if diff := cmp.Diff(want, rec.Blobs); diff != "" {
				t.Errorf("second archive holds (-want +got):\n%s", diff)
			}
			newBytes := int64(len(cfg)) + ls
			if s := x.rep2.Stats; s.Blobs != 2 || s.Manifests != 1 || s.BlobBytes != newBytes || s.Earlier != 5 {
				t.Errorf("stats %+v; want 1 manifest, 2 blobs of %d bytes, 5 earlier images", s, newBytes)
			}
			// Old images cost the source nothing but resolving tags.
			var blobReads []string
			for _, r := range x.sourceRequests {
				if strings.Contains(r, "/blobs/") {
					blobReads = append(blobReads, r)
				}
			}
			if len(blobReads) != 2 {
				t.Errorf("second export read %d blobs from the source, want 2: %v", len(blobReads), blobReads)
			}
			// The old layers are left out, each with a repository of the
			// first archive's images holding it.
			appLayers, _ := f.app.Layers()
			var wantLeft, gotLeft []string
			for _, l := range appLayers {
				d, _ := l.Digest()
				wantLeft = append(wantLeft, d.String())
			}
			sort.Strings(wantLeft)
			for _, l := range rec.LeftOut {
				gotLeft = append(gotLeft, l.Digest)
			}
			if diff := cmp.Diff(wantLeft, gotLeft); diff != "" {
				t.Errorf("left out (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]string{x.rep1.Record.ID}, rec.Since); diff != "" {
				t.Errorf("since (-want +got):\n%s", diff)
			}

			// First, then second: only the new config and layer uploaded,
			// the old layers mounted from where the record says.
			if _, _, err := Import(t.Context(), x.first, ImportOptions{Remotes: anonymousClient(t)}); err != nil {
				t.Fatal(err)
			}
			for _, l := range rec.LeftOut {
				if !holdsBlob(dst, l.Repository, l.Digest) {
					t.Errorf("left-out %s: the record says %s holds it, but it does not", l.Digest, l.Repository)
				}
			}
			dst.Log.Reset()
			irep, _, err := Import(t.Context(), x.second, ImportOptions{Remotes: anonymousClient(t)})
			if err != nil {
				t.Fatal(err)
			}
			s := irep.Stats
			if s.ImagesCopied != 1 || s.ImagesPresent != 5 || s.BlobsUploaded != 2 || s.BytesUploaded != newBytes || s.BlobsMounted != len(appLayers) {
				t.Errorf("second import: %+v; want 1 copied, 5 present, 2 blobs uploaded, %d mounted", s, len(appLayers))
			}
			if n := dst.Log.Count("PUT", "/blobs/uploads/"); n != 2 {
				t.Errorf("the mirror received %d blob uploads, want 2", n)
			}
			verifyImage(t, dst.Host+"/mirror/newcomer/app:v9", x.newDigest)

			// Since the second archive alone: it carries the first's too.
			third := filepath.Join(t.TempDir(), "third")
			opts := exportOpts(t, f, third, dst.Host)
			opts.Since = []string{x.second}
			rep3, err := Export(t.Context(), x.pairs2, opts)
			if err != nil {
				t.Fatal(err)
			}
			if s := rep3.Stats; s.Earlier != 6 || s.Blobs != 0 || s.Manifests != 0 {
				t.Errorf("third archive: %+v; want every image earlier and nothing held", s)
			}
			if diff := cmp.Diff([]string{x.rep2.Record.ID, x.rep1.Record.ID}, rep3.Record.Since); diff != "" {
				t.Errorf("third since (-want +got):\n%s", diff)
			}
			if irep, _, err := Import(t.Context(), third, ImportOptions{Remotes: anonymousClient(t)}); err != nil || irep.Stats.ImagesPresent != 6 {
				t.Errorf("third import: %v, %+v", err, irep.Stats)
			}
		})
	}
}

// TestImportWithoutEarlierArchive imports an incremental archive into a
// mirror that never received the archive it builds on: the images needing
// left-out blobs fail, and the error says which archive to import first.
func TestImportWithoutEarlierArchive(t *testing.T) {
	f := newFixture(t)
	dst := startMemRegistry(t)
	x := exportTwice(t, f, dst, "tar")
	_, _, err := Import(t.Context(), x.second, ImportOptions{Remotes: anonymousClient(t)})
	var missing *MissingError
	var incomplete *mirror.IncompleteError
	if !errors.As(err, &missing) || !errors.As(err, &incomplete) {
		t.Fatalf("got %v; want a *MissingError wrapping a *mirror.IncompleteError", err)
	}
	if len(missing.Digests) == 0 || !strings.Contains(err.Error(), x.rep1.Record.ID) || len(incomplete.Failed) != len(x.pairs2)+len(f.built(dst.Host)) {
		t.Errorf("error %v: missing %v, %d failed", err, missing.Digests, len(incomplete.Failed))
	}
}
