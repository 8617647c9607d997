package bundle

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/internal/sqlite"
	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
)

// The add modes are judged against opm's own loader: `opm registry add
// --mode M` on a SQLite index (operator-registry v1.73.0, the last release
// that implements the modes) and Ferry's AddAll in mode M on the same
// index read as FBC must give the same channels.

// tempoPkg is tempo-operator, published from an FBC template: its CSVs
// carry no replaces, skips or skipRange, so its edges exist only in the
// catalog. Variants of its real 0.22.0 bundle at other versions model the
// package's other releases.
const tempoPkg = "tempo-operator"

// variant is a bundle made from a real bundle directory with the CSV's
// name, version and edges and the channels changed.
type variant struct {
	version  string
	replaces string // a version, made into a CSV name
	channels string
}

// writeVariant copies the real tempo bundle with the CSV and annotations
// rewritten for v; without v.replaces the CSV has no edges, as the real one.
func writeVariant(t *testing.T, v variant) string {
	t.Helper()
	src := bundleDir(t, tempoBundle)
	dst := t.TempDir()
	for _, sub := range []string{"manifests", "metadata"} {
		if err := os.CopyFS(filepath.Join(dst, sub), os.DirFS(filepath.Join(src, sub))); err != nil {
			t.Fatal(err)
		}
	}
	file := filepath.Join(dst, "manifests", "tempo-operator.clusterserviceversion.yaml")
	var csv map[string]any
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &csv); err != nil {
		t.Fatal(err)
	}
	md, spec := csv["metadata"].(map[string]any), csv["spec"].(map[string]any)
	md["name"] = tempoPkg + ".v" + v.version
	spec["version"] = v.version
	delete(spec, "replaces")
	if v.replaces != "" {
		spec["replaces"] = tempoPkg + ".v" + v.replaces
	}
	out, err := yaml.Marshal(csv)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, out, 0o644); err != nil {
		t.Fatal(err)
	}
	ann := map[string]any{"annotations": map[string]string{
		"operators.operatorframework.io.bundle.mediatype.v1":       "registry+v1",
		"operators.operatorframework.io.bundle.manifests.v1":       "manifests/",
		"operators.operatorframework.io.bundle.metadata.v1":        "metadata/",
		"operators.operatorframework.io.bundle.package.v1":         tempoPkg,
		"operators.operatorframework.io.bundle.channels.v1":        v.channels,
		"operators.operatorframework.io.bundle.channel.default.v1": "alpha",
	}}
	if out, err = yaml.Marshal(ann); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dst, "metadata", "annotations.yaml"), out, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// modeCase is one index built by opm, one bundle added to it in one mode.
type modeCase struct {
	name string
	// build: the bundles opm adds one by one in buildMode to make the
	// index before.
	buildMode string
	build     []variant
	mode      Mode
	add       variant
	// opmRefuses: opm's loader fails with this, and Ferry gives
	// ferryWhenOPMRefuses instead (by channel, as channelLines writes).
	opmRefuses          string
	ferryWhenOPMRefuses map[string][]string
	// differs: the documented difference from opm in replaces mode, for a
	// bundle without edges: opm keeps only the new bundle in the channel,
	// Ferry infers the edge. ferry is what Ferry gives.
	differs map[string][]string
	// note: part of testdata/modes/tempo-operator.txt.
	note bool
}

var patchesOnly = []variant{{version: "0.21.0", channels: "alpha"}, {version: "0.21.1", channels: "alpha"}}

// csvChained is the same releases with replaces in their CSVs.
var csvChained = []variant{{version: "0.20.0", channels: "alpha"}, {version: "0.21.0", replaces: "0.20.0", channels: "alpha"}, {version: "0.21.1", replaces: "0.21.0", channels: "alpha"}}

// templateBuilt is tempo's channel as a semver template builds it.
var templateBuilt = []variant{{version: "0.20.0", channels: "alpha"}, {version: "0.21.0", channels: "alpha"}, {version: "0.21.1", channels: "alpha"}}

var modeCases = []modeCase{
	{name: "replaces/csv-edges", buildMode: "replaces", build: csvChained, mode: ModeReplaces,
		add: variant{version: "0.22.0", replaces: "0.21.1", channels: "alpha"}},
	// opm's SQLite channels hold everything the head's replaces chain
	// reaches, so a new channel gets the older bundles too; an FBC channel
	// lists its entries, and the bundle's annotation names only itself.
	{name: "replaces/csv-edges-new-channel", buildMode: "replaces", build: csvChained, mode: ModeReplaces,
		add: variant{version: "0.22.0", replaces: "0.21.1", channels: "alpha,beta"},
		differs: map[string][]string{
			"alpha": {"tempo-operator.v0.20.0", "tempo-operator.v0.21.0 < tempo-operator.v0.20.0", "tempo-operator.v0.21.1 < tempo-operator.v0.21.0", "tempo-operator.v0.22.0 < tempo-operator.v0.21.1"},
			"beta":  {"tempo-operator.v0.22.0 < tempo-operator.v0.21.1"},
		}},
	// opm's replaces mode rebuilds the channel from the CSVs' replaces,
	// so edges that live only in the catalog are lost with the bundles
	// below them; Ferry keeps the channel and adds to it.
	{name: "replaces/edge-to-template-built-head", buildMode: "semver", build: templateBuilt, mode: ModeReplaces,
		add:     variant{version: "0.22.0", replaces: "0.21.1", channels: "alpha"},
		differs: map[string][]string{"alpha": {"tempo-operator.v0.20.0", "tempo-operator.v0.21.0 < tempo-operator.v0.20.0", "tempo-operator.v0.21.1 < tempo-operator.v0.21.0", "tempo-operator.v0.22.0 < tempo-operator.v0.21.1"}}},
	{name: "replaces/newer-minor-without-edges", buildMode: "semver", build: templateBuilt, mode: ModeReplaces,
		add:     variant{version: "0.22.0", channels: "alpha"},
		differs: map[string][]string{"alpha": {"tempo-operator.v0.20.0", "tempo-operator.v0.21.0 < tempo-operator.v0.20.0", "tempo-operator.v0.21.1 < tempo-operator.v0.21.0", "tempo-operator.v0.22.0 < tempo-operator.v0.21.1"}}},
	{name: "replaces/newer-patch-without-edges", buildMode: "semver", build: templateBuilt, mode: ModeReplaces, note: true,
		add:     variant{version: "0.21.2", channels: "alpha"},
		differs: map[string][]string{"alpha": {"tempo-operator.v0.20.0", "tempo-operator.v0.21.0 < tempo-operator.v0.20.0", "tempo-operator.v0.21.1 < tempo-operator.v0.21.0", "tempo-operator.v0.21.2 < tempo-operator.v0.21.1"}}},
	{name: "semver/newer-patch", buildMode: "semver", build: templateBuilt, mode: ModeSemver, note: true,
		add: variant{version: "0.21.2", channels: "alpha"}},
	{name: "semver/newer", buildMode: "semver", build: templateBuilt, mode: ModeSemver,
		add: variant{version: "0.22.0", channels: "alpha"}},
	{name: "semver/between", buildMode: "semver", build: templateBuilt, mode: ModeSemver,
		add: variant{version: "0.20.5", channels: "alpha"}},
	{name: "semver/lowest", buildMode: "semver", build: templateBuilt, mode: ModeSemver,
		add: variant{version: "0.19.0", channels: "alpha"}},
	{name: "semver/new-channel", buildMode: "semver", build: templateBuilt, mode: ModeSemver,
		add: variant{version: "0.22.0", channels: "alpha,beta"}},
	{name: "semver/ignores-csv-replaces", buildMode: "semver", build: templateBuilt, mode: ModeSemver,
		add: variant{version: "0.20.5", replaces: "0.21.1", channels: "alpha"}},
	{name: "semver-skippatch/newer-patch", buildMode: "semver-skippatch", build: patchesOnly, mode: ModeSemverSkipPatch,
		add: variant{version: "0.21.2", channels: "alpha"}},
	{name: "semver-skippatch/newer-minor", buildMode: "semver-skippatch", build: patchesOnly, mode: ModeSemverSkipPatch,
		add: variant{version: "0.22.0", channels: "alpha"}},
	{name: "semver-skippatch/older-minor", buildMode: "semver-skippatch", build: patchesOnly, mode: ModeSemverSkipPatch,
		add: variant{version: "0.20.9", channels: "alpha"}},
	{name: "semver/into-skippatch-index", buildMode: "semver-skippatch", build: patchesOnly, mode: ModeSemver,
		add: variant{version: "0.20.9", channels: "alpha"}},
	// opm refuses its own graph when an older minor remains below the
	// skipped patches; Ferry links the new patch to that minor.
	{name: "semver-skippatch/patch-above-older-minor", buildMode: "semver", build: templateBuilt, mode: ModeSemverSkipPatch, note: true,
		add:        variant{version: "0.21.2", channels: "alpha"},
		opmRefuses: "Invalid graph",
		ferryWhenOPMRefuses: map[string][]string{"alpha": {"tempo-operator.v0.20.0", "tempo-operator.v0.21.0", "tempo-operator.v0.21.1",
			"tempo-operator.v0.21.2 < tempo-operator.v0.20.0 skips tempo-operator.v0.21.0, tempo-operator.v0.21.1"}}},
}

// TestAddModesMatchOPM builds each case's index with opm, adds the bundle
// with opm and with AddAll, and compares the channels; every Ferry result
// also passes opm validate. It writes testdata/modes/tempo-operator.txt,
// the channels of the template-built package before and after a newer
// bundle in each mode (regenerate with -update).
func TestAddModesMatchOPM(t *testing.T) {
	skipE2E(t)
	testenv.OPM(t)
	reg := startRegistry(t)
	pushed := map[string]string{}
	push := func(t *testing.T, v variant) (string, string) {
		key := v.version + "/" + v.replaces + "/" + v.channels
		dir := writeVariant(t, v)
		if ref, ok := pushed[key]; ok {
			return ref, dir
		}
		ref := fmt.Sprintf("%s/bundles/%s:%d", reg, tempoPkg, len(pushed))
		if _, err := world.PushBundleDir(t.Context(), dir, ref); err != nil {
			t.Fatal(err)
		}
		pushed[key] = ref
		return ref, dir
	}
	opmAdd := func(db, mode, ref string) error {
		_, stderr, err := testenv.RunOPM(t, "registry", "add", "--use-http", "--mode", mode, "-d", db, "-b", ref)
		if err != nil {
			return fmt.Errorf("%v: %s", err, errorLines(stderr))
		}
		return nil
	}
	var note strings.Builder
	for _, tc := range modeCases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			before := filepath.Join(dir, "before.db")
			for _, v := range tc.build {
				ref, _ := push(t, v)
				if err := opmAdd(before, tc.buildMode, ref); err != nil {
					t.Fatalf("build the index: %v", err)
				}
			}
			src, err := sqlite.Load(t.Context(), before)
			if err != nil {
				t.Fatal(err)
			}
			ref, vdir := push(t, tc.add)
			b, p, err := Render(dirFS(vdir), ref, Options{})
			if err != nil {
				t.Fatal(err)
			}
			cfg := clone(t, src)
			edges, ferryErr := AddAll(cfg, []Addition{{Bundle: b, Placement: p, Mode: tc.mode}})

			after := filepath.Join(dir, "after.db")
			copyFile(t, before, after)
			opmErr := opmAdd(after, string(tc.mode), ref)
			if tc.note {
				fmt.Fprintf(&note, "## add mode %s: %s %s added\n\nbefore:\n%s\nFerry:\n%s\n", tc.mode, tempoPkg, tc.add.version, noteLines(channelLines(src)), noteLines(channelLines(cfg)))
				if opmErr != nil {
					fmt.Fprintf(&note, "opm registry add --mode %s: refuses: %s\n\n", tc.mode, tc.opmRefuses)
				} else {
					fmt.Fprintf(&note, "opm registry add --mode %s:\n%s\n", tc.mode, noteLines(channelLines(opmRendered(t, after))))
				}
			}
			switch {
			case tc.opmRefuses != "":
				if opmErr == nil || !strings.Contains(opmErr.Error(), tc.opmRefuses) {
					t.Fatalf("opm registry add: got %v, want it to refuse with %q", opmErr, tc.opmRefuses)
				}
				if ferryErr != nil {
					t.Fatalf("AddAll: %v", ferryErr)
				}
				if diff := cmp.Diff(tc.ferryWhenOPMRefuses, channelLines(cfg)); diff != "" {
					t.Errorf("Ferry's channels where opm refuses (-want +got):\n%s", diff)
				}
			default:
				if opmErr != nil {
					t.Fatalf("opm registry add: %v", opmErr)
				}
				if ferryErr != nil {
					t.Fatalf("AddAll: %v", ferryErr)
				}
				want := channelLines(opmRendered(t, after))
				got := channelLines(cfg)
				if tc.differs != nil {
					if diff := cmp.Diff(want, got); diff == "" {
						t.Errorf("Ferry gives what opm gives; the documented difference is gone")
					}
					want = tc.differs
				}
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("channels differ (-want +got):\n%s", diff)
				}
			}
			if err := opmValidate(t, writeCatalog(t, cfg)); err != nil {
				t.Errorf("opm validate: %v", err)
			}
			t.Logf("%d inferred edge(s): %v", len(edges), edges)
		})
	}
	golden := filepath.Join("testdata", "modes", "tempo-operator.txt")
	got := "# " + tempoPkg + ", published from an FBC template (no replaces in its CSVs): its channel\n" +
		"# before and after adding a newer patch in each add mode, with what opm's loader gives\n" +
		"# on a SQLite index. Written by TestAddModesMatchOPM (-update).\n\n" + note.String()
	if *update {
		if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run with -update)", err)
	}
	if diff := cmp.Diff(string(want), got); diff != "" {
		t.Errorf("%s differs (-want +got):\n%s", golden, diff)
	}
}

func noteLines(chs map[string][]string) string {
	var b strings.Builder
	for _, c := range sortedKeys(chs) {
		fmt.Fprintf(&b, "  channel %s\n", c)
		lines := slices.Clone(chs[c])
		slices.Reverse(lines) // newest first reads like a channel
		for _, l := range lines {
			fmt.Fprintf(&b, "    %s\n", l)
		}
	}
	return b.String()
}

// channelLines writes each channel's entries as sorted lines
// "name < replaces skips a, b".
func channelLines(cfg *fbc.DeclarativeConfig) map[string][]string {
	out := map[string][]string{}
	for _, c := range cfg.Channels {
		for _, e := range c.Entries {
			out[c.Name] = append(out[c.Name], entryLine(e))
		}
		slices.Sort(out[c.Name])
	}
	return out
}

func entryLine(e fbc.ChannelEntry) string {
	s := e.Name
	if e.Replaces != "" {
		s += " < " + e.Replaces
	}
	if len(e.Skips) > 0 {
		skips := slices.Clone(e.Skips)
		slices.Sort(skips)
		s += " skips " + strings.Join(skips, ", ")
	}
	return s
}

// opmRendered is `opm render` of a copy of db (opm migrates what it reads).
func opmRendered(t *testing.T, db string) *fbc.DeclarativeConfig {
	t.Helper()
	cp := filepath.Join(t.TempDir(), "render.db")
	copyFile(t, db, cp)
	out, stderr, err := testenv.RunOPM(t, "render", cp, "-o", "json")
	if err != nil {
		t.Fatalf("opm render: %v\n%s", err, errorLines(stderr))
	}
	cfg, err := fbc.LoadFS(t.Context(), fstest.MapFS{"catalog.json": {Data: []byte(out)}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// clone copies cfg deeply enough for AddAll to change it freely.
func clone(t *testing.T, cfg *fbc.DeclarativeConfig) *fbc.DeclarativeConfig {
	t.Helper()
	out := *cfg
	out.Channels = slices.Clone(cfg.Channels)
	for i := range out.Channels {
		out.Channels[i].Entries = slices.Clone(out.Channels[i].Entries)
	}
	out.Bundles = slices.Clone(cfg.Bundles)
	out.Packages = slices.Clone(cfg.Packages)
	return &out
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
