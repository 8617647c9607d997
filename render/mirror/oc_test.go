package mirror

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/distribution/reference"
	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/spec"
)

// Real outputs of oc and oc-mirror (testdata/mirror-outputs,
// testdata/oc-mirror/docs) are what Ferry's files must look like to the
// tools and clusters that read them.

// parseMappingLine reads one mapping.txt line the way `oc image mirror -f`
// does: blank lines and # comments are skipped; SRC=DST, or SRC DST...
// separated by spaces; each side a valid reference.
func parseMappingLine(line string) (src string, dsts []string, skip bool, err error) {
	line = strings.TrimSpace(line)
	if line == "" || strings.HasPrefix(line, "#") {
		return "", nil, true, nil
	}
	var parts []string
	if strings.Contains(line, "=") {
		parts = strings.Split(line, "=")
		if len(parts) != 2 {
			return "", nil, false, fmt.Errorf("%q: want exactly one '='", line)
		}
	} else {
		parts = strings.Fields(line)
	}
	if len(parts) < 2 {
		return "", nil, false, fmt.Errorf("%q: want a source and at least one destination", line)
	}
	for _, p := range parts {
		if _, err := reference.ParseNormalizedNamed(p); err != nil {
			return "", nil, false, fmt.Errorf("%q: %q: %v", line, p, err)
		}
	}
	return parts[0], parts[1:], false, nil
}

// TestMappingParser checks the test's reading of mapping files against
// oc-mirror's own valid and invalid mapping fixtures, so the checks below
// that rely on it mean something.
func TestMappingParser(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "oc-mirror", "docs", "v1", "pkg", "image", "testdata", "mappings")
	for file, wantErr := range map[string]bool{"valid.txt": false, "invalid.txt": true} {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		var errs int
		for _, l := range strings.Split(string(data), "\n") {
			if _, _, _, err := parseMappingLine(l); err != nil {
				errs++
			}
		}
		if (errs > 0) != wantErr {
			t.Errorf("%s: %d line(s) rejected, want rejected: %v", file, errs, wantErr)
		}
	}
}

// TestMatchesRealOCOutput rebuilds a real `oc adm catalog mirror` result
// (waynedovey/quay-disconnected: four images mirrored to
// registry.ocp4.gsslab.brq.redhat.com:443) and compares it with what oc
// wrote: the same sources, the same destination repositories, the same
// ImageContentSourcePolicy entries. That oc's mapping.txt has no
// destination tag for digest sources is the one expected difference: newer
// oc versions, and Ferry, add the source hash as the tag.
func TestMatchesRealOCOutput(t *testing.T) {
	dir := filepath.Join(testenv.RepoRoot(t), "testdata", "mirror-outputs", "waynedovey-quay-disconnected")
	ocMapping, err := os.ReadFile(filepath.Join(dir, "mapping.txt"))
	if err != nil {
		t.Fatal(err)
	}
	ocMap := map[string]string{}
	for _, l := range strings.Split(string(ocMapping), "\n") {
		src, dsts, skip, err := parseMappingLine(l)
		if err != nil {
			t.Fatalf("oc's own mapping: %v", err)
		}
		if !skip {
			ocMap[src] = dsts[0]
		}
	}
	if len(ocMap) != 4 {
		t.Fatalf("read %d mappings from oc's file, want 4", len(ocMap))
	}
	m := &spec.MirrorSpec{Registry: "registry.ocp4.gsslab.brq.redhat.com:443", MaxPathComponents: 2, Objects: []string{spec.ObjectICSP}}
	for src := range ocMap {
		m.AdditionalImages = append(m.AdditionalImages, src)
	}
	sort.Strings(m.AdditionalImages)
	set, err := Build(Input{Mirror: m})
	if err != nil {
		t.Fatal(err)
	}
	files, err := set.Files(DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}

	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(files[MappingFile]))
	for sc.Scan() {
		src, dsts, skip, err := parseMappingLine(sc.Text())
		if err != nil {
			t.Fatalf("Ferry's mapping: %v", err)
		}
		if skip {
			t.Errorf("Ferry's mapping has a blank or comment line: %q", sc.Text())
			continue
		}
		dst := dsts[0]
		if want := HashTag(src); !strings.HasSuffix(dst, ":"+want) {
			t.Errorf("%s -> %s: want the tag %s derived from the source", src, dst, want)
		}
		got[src] = repoOf(dst)
	}
	if diff := cmp.Diff(ocMap, got); diff != "" {
		t.Errorf("mapping differs from oc's (-oc +Ferry):\n%s", diff)
	}

	// ImageContentSourcePolicy: compare the entries, not the name, and the
	// shape (apiVersion, kind, spec.repositoryDigestMirrors[] {source,
	// mirrors}).
	ocICSP := decodeDocs(t, readFile(t, filepath.Join(dir, "imageContentSourcePolicy.yaml")))
	ours := decodeDocs(t, files[ICSPFile])
	if len(ocICSP) != 1 || len(ours) != 1 {
		t.Fatalf("documents: oc %d, Ferry %d; want 1 each", len(ocICSP), len(ours))
	}
	for _, f := range []string{"apiVersion", "kind"} {
		if ocICSP[0][f] != ours[0][f] {
			t.Errorf("%s: oc %v, Ferry %v", f, ocICSP[0][f], ours[0][f])
		}
	}
	if diff := cmp.Diff(entrySet(t, ocICSP[0], "repositoryDigestMirrors"), entrySet(t, ours[0], "repositoryDigestMirrors")); diff != "" {
		t.Errorf("ICSP entries differ (-oc +Ferry):\n%s", diff)
	}
}

// TestMirrorSetShapeMatchesReal compares the fields of Ferry's
// ImageDigestMirrorSet entries with real ones written by hand for
// production pipelines (stackrox/operator-index, openshift-priv/art-fbc).
func TestMirrorSetShapeMatchesReal(t *testing.T) {
	realKeys := map[string]bool{}
	files, _ := filepath.Glob(filepath.Join(testenv.RepoRoot(t), "testdata", "mirror-outputs", "idms-real", "*.yaml"))
	if len(files) == 0 {
		t.Fatal("no real ImageDigestMirrorSets")
	}
	for _, f := range files {
		for _, doc := range decodeDocs(t, readFile(t, f)) {
			if doc["kind"] != spec.ObjectIDMS {
				t.Fatalf("%s: kind %v", f, doc["kind"])
			}
			for _, e := range specList(t, doc, "imageDigestMirrors") {
				for k := range e {
					realKeys[k] = true
				}
			}
		}
	}
	set, _ := loadGolden(t, "certified")
	data, err := set.MirrorSets(spec.ObjectIDMS, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	for _, doc := range decodeDocs(t, data) {
		if doc["apiVersion"] != ConfigAPIVersion {
			t.Errorf("apiVersion %v", doc["apiVersion"])
		}
		for _, e := range specList(t, doc, "imageDigestMirrors") {
			for k := range e {
				if !realKeys[k] && k != "mirrorSourcePolicy" {
					t.Errorf("entry field %q is not in any real ImageDigestMirrorSet (%v)", k, realKeys)
				}
			}
			if src := e["source"].(string); strings.ContainsAny(src[strings.LastIndex(src, "/"):], ":@") {
				t.Errorf("source %s carries a tag or digest", src)
			}
		}
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// decodeDocs splits a multi-document YAML file into generic objects.
func decodeDocs(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, d := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(d)) == 0 || bytes.HasPrefix(bytes.TrimSpace(d), []byte("#")) && !bytes.Contains(d, []byte("kind:")) {
			continue
		}
		var m map[string]any
		if err := yaml.Unmarshal(d, &m); err != nil {
			t.Fatalf("decode: %v\n%s", err, d)
		}
		if m != nil {
			out = append(out, m)
		}
	}
	return out
}

func specList(t *testing.T, doc map[string]any, field string) []map[string]any {
	t.Helper()
	s, _ := doc["spec"].(map[string]any)
	list, _ := s[field].([]any)
	var out []map[string]any
	for _, e := range list {
		m, ok := e.(map[string]any)
		if !ok {
			t.Fatalf("spec.%s entry %v is not an object", field, e)
		}
		out = append(out, m)
	}
	return out
}

// entrySet turns entries into sorted "source -> mirror, ..." strings.
func entrySet(t *testing.T, doc map[string]any, field string) []string {
	var out []string
	for _, e := range specList(t, doc, field) {
		var mirrors []string
		for _, m := range e["mirrors"].([]any) {
			mirrors = append(mirrors, m.(string))
		}
		out = append(out, fmt.Sprintf("%v -> %s", e["source"], strings.Join(mirrors, ", ")))
	}
	sort.Strings(out)
	return out
}
