package sqlite

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
)

// variant describes a bundle made from a real bundle directory with its
// CSV's name, version and edges and its channels changed.
type variant struct {
	version        string
	replaces       string
	skips          []string
	skipRange      string
	channels       string
	defaultChannel string
}

// writeVariant copies the bundle directory src to a new directory with the
// CSV and annotations rewritten for v.
func writeVariant(t *testing.T, src, pkg string, v variant) string {
	t.Helper()
	dst := t.TempDir()
	for _, sub := range []string{"manifests", "metadata"} {
		if err := os.CopyFS(filepath.Join(dst, sub), os.DirFS(filepath.Join(src, sub))); err != nil {
			t.Fatal(err)
		}
	}
	csvs, err := filepath.Glob(filepath.Join(dst, "manifests", "*clusterserviceversion.yaml"))
	if err != nil || len(csvs) != 1 {
		t.Fatalf("want one CSV in %s, found %v (%v)", src, csvs, err)
	}
	var csv map[string]any
	data, err := os.ReadFile(csvs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &csv); err != nil {
		t.Fatal(err)
	}
	md := csv["metadata"].(map[string]any)
	spec := csv["spec"].(map[string]any)
	md["name"] = pkg + ".v" + v.version
	spec["version"] = v.version
	delete(spec, "replaces")
	delete(spec, "skips")
	ann, _ := md["annotations"].(map[string]any)
	if ann == nil {
		ann = map[string]any{}
		md["annotations"] = ann
	}
	delete(ann, "olm.skipRange")
	if v.replaces != "" {
		spec["replaces"] = pkg + ".v" + v.replaces
	}
	for _, s := range v.skips {
		spec["skips"] = append(asSlice(spec["skips"]), pkg+".v"+s)
	}
	if v.skipRange != "" {
		ann["olm.skipRange"] = v.skipRange
	}
	out, err := yaml.Marshal(csv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(csvs[0], out, 0o644); err != nil {
		t.Fatal(err)
	}
	annotations := map[string]any{"annotations": map[string]string{
		"operators.operatorframework.io.bundle.mediatype.v1":       "registry+v1",
		"operators.operatorframework.io.bundle.manifests.v1":       "manifests/",
		"operators.operatorframework.io.bundle.metadata.v1":        "metadata/",
		"operators.operatorframework.io.bundle.package.v1":         pkg,
		"operators.operatorframework.io.bundle.channels.v1":        v.channels,
		"operators.operatorframework.io.bundle.channel.default.v1": v.defaultChannel,
	}}
	if out, err = yaml.Marshal(annotations); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "metadata", "annotations.yaml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

func asSlice(v any) []any { s, _ := v.([]any); return s }

// TestLoadMatchesOPMOnLoaderBuiltIndex builds SQLite databases with opm's
// own loader (`opm registry add`, in replaces and semver mode) from bundle
// images made of the real koku-metrics-operator and tempo-operator
// bundles, so channel_entry has the layout real index images have
// (placeholder entries for skipped and replaced bundles, synthesised skip
// edges), and requires Load to give what `opm render` gives.
func TestLoadMatchesOPMOnLoaderBuiltIndex(t *testing.T) {
	skipE2E(t)
	root := testenv.RepoRoot(t)
	testenv.OPM(t)
	koku := filepath.Join(root, "testdata/bundles/community__koku-metrics-operator__4.4.1")
	tempo := filepath.Join(root, "testdata/bundles/community__tempo-operator__0.22.0")
	for _, tc := range []struct {
		name, mode, src, pkg string
		together             bool   // add all bundles in one opm call
		invalid              string // opm render and Load both fail with this
		bundles              []variant
	}{
		{"replaces", "replaces", koku, "koku-metrics-operator", false, "", []variant{
			{version: "4.4.0", channels: "alpha,beta", defaultChannel: "beta"},
			{version: "4.4.1", replaces: "4.4.0", channels: "alpha,beta", defaultChannel: "beta"},
			// skips a bundle the index never had, and one it has
			{version: "4.4.2", replaces: "4.4.1", skips: []string{"4.4.1-hotfix"}, channels: "beta"},
			// skips bundles on its replaces chain (which cuts the chain there)
			{version: "4.5.0", replaces: "4.4.2", skips: []string{"4.4.1", "4.4.0"}, skipRange: ">=4.4.0 <4.5.0", channels: "beta,stable", defaultChannel: "stable"},
			{version: "4.5.1", replaces: "4.5.0", skipRange: ">=4.5.0 <4.5.1", channels: "stable", defaultChannel: "stable"},
		}},
		{"semver", "semver", tempo, "tempo-operator", false, "", []variant{
			{version: "0.20.0", channels: "alpha"},
			{version: "0.21.0", channels: "alpha,beta", defaultChannel: "alpha"},
			{version: "0.21.1", channels: "beta", defaultChannel: "alpha"},
			{version: "0.22.0", channels: "alpha", defaultChannel: "alpha"},
		}},
		// opm's loader accepts a skip that cuts the replaces chain above a
		// bundle nothing else skips; rendering refuses the result.
		{"stranded", "replaces", koku, "koku-metrics-operator", false, "channel contains one or more stranded bundles: koku-metrics-operator.v4.4.0", []variant{
			{version: "4.4.0", channels: "beta", defaultChannel: "beta"},
			{version: "4.4.1", replaces: "4.4.0", channels: "beta"},
			{version: "4.4.2", replaces: "4.4.1", skips: []string{"4.4.1"}, channels: "beta"},
		}},
		// opm's semver-skippatch mode rejects its own graph once a minor
		// version follows skipped patches, so patches only.
		{"semver-skippatch", "semver-skippatch", tempo, "tempo-operator", true, "", []variant{
			{version: "0.21.0", channels: "alpha"},
			{version: "0.21.1", channels: "alpha"},
			{version: "0.21.2", channels: "alpha"},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			reg := startRegistry(t)
			db := filepath.Join(t.TempDir(), "index.db")
			add := func(refs ...string) {
				if _, stderr, err := testenv.RunOPM(t, "registry", "add", "--use-http", "--mode", tc.mode, "-d", db, "-b", strings.Join(refs, ",")); err != nil {
					t.Fatalf("opm registry add %s: %v\n%s", refs, err, errorLines(stderr))
				}
			}
			var refs []string
			for _, v := range tc.bundles {
				ref := reg + "/bundles/" + tc.pkg + ":v" + v.version
				if _, err := world.PushBundleDir(t.Context(), writeVariant(t, tc.src, tc.pkg, v), ref); err != nil {
					t.Fatal(err)
				}
				if tc.together {
					refs = append(refs, ref)
				} else {
					add(ref)
				}
			}
			if tc.together {
				add(refs...)
			}
			// Load first: opm render migrates the file it reads.
			cfg, err := Load(t.Context(), db)
			if tc.invalid != "" {
				_, stderr, opmErr := testenv.RunOPM(t, "render", db)
				if opmErr == nil || !strings.Contains(stderr, tc.invalid) {
					t.Errorf("opm render: got %v, want an error containing %q\n%s", opmErr, tc.invalid, errorLines(stderr))
				}
				if err == nil || !strings.Contains(err.Error(), tc.invalid) {
					t.Errorf("Load: got %v, want an error containing %q", err, tc.invalid)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := blobs(t, cfg)
			want := opmRender(t, db)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Load differs from opm render (-opm +ferry):\n%s", diff)
			}
			var skips int
			for _, c := range cfg.Channels {
				for _, e := range c.Entries {
					skips += len(e.Skips)
				}
			}
			t.Logf("%d blobs identical, %d skips", len(got), skips)
		})
	}
}

// errorLines keeps the lines of opm's log that report errors.
func errorLines(s string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "level=error") || strings.HasPrefix(l, "Error:") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
