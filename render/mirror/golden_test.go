package mirror

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/spec"
)

// goldenInput is testdata/<case>.input.yaml: a Mirror, catalogs read from
// the repository's testdata/fbc, and rendering options. Tags are resolved
// with fakeDigest.
type goldenInput struct {
	Revision string          `json:"revision"`
	Mirror   spec.MirrorSpec `json:"mirror"`
	Options  Options         `json:"options"`
	Catalogs []struct {
		Name         string `json:"name"`
		FBC          string `json:"fbc"` // relative to the repository root
		Source       string `json:"source"`
		SourceDigest string `json:"sourceDigest"`
		Target       string `json:"target"`
		Digest       string `json:"digest"`
	} `json:"catalogs"`
}

// goldenCases lists testdata/*.input.yaml.
func goldenCases(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*.input.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden cases in testdata (%v)", err)
	}
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".input.yaml"))
	}
	return out
}

// goldenInputFor reads one case into an Input, tags unresolved.
func goldenInputFor(t *testing.T, name string) (Input, Options) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".input.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var gi goldenInput
	if err := yaml.UnmarshalStrict(data, &gi); err != nil {
		t.Fatalf("%s.input.yaml: %v", name, err)
	}
	if len(gi.Mirror.Objects) == 0 {
		gi.Mirror.Objects = []string{spec.ObjectIDMS, spec.ObjectITMS} // spec's default
	}
	in := Input{Mirror: &gi.Mirror, Revision: gi.Revision}
	root := testenv.RepoRoot(t)
	for _, c := range gi.Catalogs {
		in.Catalogs = append(in.Catalogs, Catalog{
			Name:         c.Name,
			Config:       loadDir(t, filepath.Join(root, c.FBC)),
			Source:       c.Source,
			SourceDigest: c.SourceDigest,
			Target:       c.Target,
			Digest:       c.Digest,
		})
	}
	return in, gi.Options
}

// loadGolden builds the image set of one case, tags resolved by
// fakeDigest.
func loadGolden(t *testing.T, name string) (*Set, Options) {
	t.Helper()
	in, opts := goldenInputFor(t, name)
	in.Resolved = resolveAll(t, in)
	set, err := Build(in)
	if err != nil {
		t.Fatalf("build: %v", err)
	}
	return set, opts
}

// TestGolden renders each case and compares every output file with
// testdata/<case>.golden.<file>.
func TestGolden(t *testing.T) {
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			set, opts := loadGolden(t, name)
			files, err := set.Files(opts)
			if err != nil {
				t.Fatal(err)
			}
			for _, f := range []string{MappingFile, IDMSFile, ITMSFile, ICSPFile, LockFile} {
				goldenFile(t, name+".golden."+filepath.Base(f), files[f])
			}
			// Same inputs, same bytes: a second build renders identically.
			again, _ := loadGolden(t, name)
			files2, err := again.Files(opts)
			if err != nil {
				t.Fatal(err)
			}
			for f, data := range files {
				if string(files2[f]) != string(data) {
					t.Errorf("%s differs between two runs on the same inputs", f)
				}
			}
		})
	}
}
