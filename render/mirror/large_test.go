package mirror

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/distribution/reference"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/spec"
)

const certified420 = "certified-operators-catalogs-v4.20"

// largeInput is the whole certified v4.20 catalog (every bundle kept), its
// catalog built into the mirror, all three object kinds, tags resolved.
//
// The real catalog has repositories that differ only in their registry
// (quay.io/netapp/trident and registry.connect.redhat.com/netapp/trident):
// dropping the source host, as oc does, maps them onto one destination. The
// first Build must report each of them; largeInput then does what a user
// would, blocking all but one source of each (the last in sort order), and
// returns the collision report with the input.
func largeInput(tb testing.TB) (Input, []string) {
	tb.Helper()
	cfg := largeCatalog(tb, certified420)
	in := Input{
		Mirror: &spec.MirrorSpec{
			Registry:           "mirror.example.com:5000/ferry",
			Objects:            []string{spec.ObjectIDMS, spec.ObjectITMS, spec.ObjectICSP},
			MirrorSourcePolicy: spec.NeverContactSource,
		},
		Catalogs: []Catalog{{
			Name:         "certified",
			Config:       cfg,
			Source:       "registry.redhat.io/redhat/certified-operator-index:v4.20",
			SourceDigest: fakeDigest("certified source"),
			Target:       "mirror.example.com:5000/ferry/redhat/certified-operator-index:v4.20",
			Digest:       fakeDigest("certified built"),
		}},
		Revision: "0000000000000000000000000000000000000000",
	}
	in.Resolved = resolveAll(tb, in)
	_, err := Build(in)
	var report []string
	for _, e := range unjoin(err) {
		var ce *CollisionError
		if !errors.As(e, &ce) || ce.Tag {
			tb.Fatalf("build: %v", e)
		}
		report = append(report, ce.Error())
		for _, src := range ce.Sources[:len(ce.Sources)-1] {
			in.Mirror.BlockedImages = append(in.Mirror.BlockedImages, "^"+regexp.QuoteMeta(src)+"[:@]")
		}
	}
	return in, report
}

// largeSet builds and renders largeInput.
func largeSet(t *testing.T, opts Options) (*Set, map[string][]byte, []string) {
	t.Helper()
	in, report := largeInput(t)
	start := time.Now()
	set, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	files, err := set.Files(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build + render of %d images: %v", len(set.Images), time.Since(start))
	return set, files, report
}

// TestLargeCatalog renders the full certified v4.20 catalog and checks the
// counts against an independent walk of the catalog and every object
// against the size limit. The counts are kept in a golden file so a change
// in what is mirrored shows up in review.
func TestLargeCatalog(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the large catalog")
	}
	set, files, collisions := largeSet(t, DefaultOptions())
	blocked := map[string]bool{}
	for _, b := range set.Blocked {
		blocked[b.Source] = true
	}

	// Independent count: distinct references of every bundle, by the
	// reference library alone.
	cfg := largeCatalog(t, certified420)
	refs := map[string]bool{}
	repos := map[string]bool{}
	digestRepos, tagRepos := map[string]bool{}, map[string]bool{}
	for _, b := range cfg.Bundles {
		for _, s := range append([]string{b.Image}, relatedImages(b.RelatedImages)...) {
			if s == "" {
				continue
			}
			n, err := reference.ParseNormalizedNamed(s)
			if err != nil {
				t.Fatalf("bundle %s: %v", b.Name, err)
			}
			n = reference.TagNameOnly(n)
			if blocked[n.String()] {
				continue
			}
			refs[n.String()] = true
			repos[n.Name()] = true
			if _, ok := n.(reference.Digested); ok {
				digestRepos[n.Name()] = true
			} else {
				tagRepos[n.Name()] = true
			}
		}
	}

	lines := 0
	sc := bufio.NewScanner(bytes.NewReader(files[MappingFile]))
	for sc.Scan() {
		if _, _, _, err := parseMappingLine(sc.Text()); err != nil {
			t.Fatal(err)
		}
		lines++
	}
	if lines != len(refs) {
		t.Errorf("mapping.txt has %d lines, the catalog references %d distinct images", lines, len(refs))
	}
	if len(set.Images) != len(refs)+1 { // + the built catalog, in place
		t.Errorf("%d images in the set, want %d", len(set.Images), len(refs)+1)
	}

	summary := fmt.Sprintf("collisions before blocking:\n  %s\nblocked images: %d\nbundles: %d\ndistinct images: %d\nsource repositories: %d\nmapping.txt lines: %d\n",
		strings.Join(collisions, "\n  "), len(set.Blocked), len(cfg.Bundles), len(refs), len(repos), lines)
	for _, k := range []struct {
		kind, file, field string
		want              map[string]bool
	}{
		{spec.ObjectIDMS, IDMSFile, "imageDigestMirrors", digestRepos},
		{spec.ObjectITMS, ITMSFile, "imageTagMirrors", tagRepos},
		{spec.ObjectICSP, ICSPFile, "repositoryDigestMirrors", digestRepos},
	} {
		docs := splitDocs(files[k.file])
		entries := 0
		for i, d := range docs {
			obj := decodeDocs(t, d)[0]
			if name := obj["metadata"].(map[string]any)["name"]; name != fmt.Sprintf("ferry-%d", i) {
				t.Errorf("%s object %d is named %v", k.kind, i, name)
			}
			j, _ := json.Marshal(obj)
			if len(d) > DefaultMaxObjectBytes || len(j) > DefaultMaxObjectBytes {
				t.Errorf("%s %d: %d bytes of YAML, %d of JSON; limit %d", k.kind, i, len(d), len(j), DefaultMaxObjectBytes)
			}
			entries += len(specList(t, obj, k.field))
			summary += fmt.Sprintf("%s %d: %d entries, %d bytes YAML, %d bytes JSON\n", k.kind, i, len(specList(t, obj, k.field)), len(d), len(j))
		}
		if entries != len(k.want) {
			t.Errorf("%s: %d entries, want one per repository referenced that way: %d", k.kind, entries, len(k.want))
		}
	}
	summary += fmt.Sprintf("lock: %d bytes\n", len(files[LockFile]))
	t.Logf("\n%s", summary)
	goldenFile(t, "large-certified-v4.20.golden.summary.txt", []byte(summary))
}

func relatedImages(ris []fbc.RelatedImage) []string {
	out := make([]string, 0, len(ris))
	for _, r := range ris {
		out = append(out, r.Image)
	}
	return out
}

// splitDocs splits Ferry's own multi-document output at its "---" lines.
func splitDocs(data []byte) [][]byte {
	if len(data) == 0 {
		return nil
	}
	return bytes.Split(data, []byte("---\n"))
}

// BenchmarkLargeCatalog measures Build + Files on the certified catalog.
func BenchmarkLargeCatalog(b *testing.B) {
	in, _ := largeInput(b)
	for b.Loop() {
		set, err := Build(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := set.Files(DefaultOptions()); err != nil {
			b.Fatal(err)
		}
	}
}

// TestLargeCatalogKeepSourceRegistry: with the source host kept in
// destination paths, the certified catalog has no collision and nothing
// needs blocking.
func TestLargeCatalogKeepSourceRegistry(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: skipping the large catalog")
	}
	in, _ := largeInput(t)
	in.Mirror.BlockedImages = nil
	in.Mirror.KeepSourceRegistry = true
	set, err := Build(in)
	if err != nil {
		t.Fatal(err)
	}
	for _, img := range set.Images {
		host, _, _ := strings.Cut(img.Repository, "/")
		if !img.InPlace && !strings.HasPrefix(img.DestinationRepository, "mirror.example.com:5000/ferry/"+host+"/") {
			t.Errorf("%s -> %s: the source host is not in the destination", img.Source, img.Destination)
		}
	}
	if len(set.Blocked) != 0 {
		t.Errorf("%d images blocked", len(set.Blocked))
	}
}
