package filter

import (
	"os"
	"strings"
	"testing"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

// TestChannelCheckAgreesWithOPM: Filter's promise of a valid result rests
// on channel.check reproducing opm's channel rules (operator-registry
// alpha/model Channel.Validate), including the quirk that the replaces
// chain stops at a bundle some other bundle skips. Each case is judged by
// both; they must agree.
func TestChannelCheckAgreesWithOPM(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries synthChannel
		valid   bool
		opmSays string // a substring of opm's complaint when invalid
	}{
		{
			name:    "linear, tail replaces a missing bundle",
			entries: ch("stable", e("c.v1.0.0", "c.v0.9.0"), e("c.v1.1.0", "c.v1.0.0")),
			valid:   true,
		},
		{
			name:    "skips reach what replaces does not",
			entries: ch("stable", e("c.v1.0.0", ""), e("c.v1.0.1", "c.v1.0.0"), e("c.v1.1.0", "c.v1.0.0", "c.v1.0.1")),
			valid:   true,
		},
		{
			name:    "two heads",
			entries: ch("stable", e("c.v1.0.0", ""), e("c.v1.1.0", "")),
			opmSays: "multiple channel heads",
		},
		{
			name:    "skipRange is not an edge for opm",
			entries: ch("stable", e("c.v1.0.0", ""), sr(e("c.v1.1.0", ""), "<1.1.0")),
			opmSays: "multiple channel heads",
		},
		{
			name: "replaced only by a skipped bundle: stranded",
			entries: ch("stable",
				e("c.v1.0.0", ""), e("c.v1.1.0", "c.v1.0.0"), e("c.v1.2.0", "", "c.v1.1.0")),
			opmSays: "stranded",
		},
		{
			name: "the chain stops at a bundle another one skips",
			entries: ch("stable",
				e("c.v1.0.0", ""),
				e("c.v1.1.0", "c.v1.0.0"),
				e("c.v1.1.1", "", "c.v1.1.0"),
				e("c.v1.2.0", "c.v1.1.0", "c.v1.1.1")),
			opmSays: "stranded",
		},
		{
			name: "replaces cycle below the head",
			entries: ch("stable",
				e("c.v1.0.0", "c.v1.1.0"), e("c.v1.1.0", "c.v1.0.0"), e("c.v1.2.0", "c.v1.1.0")),
			opmSays: "cycle",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := synth(synthPkg{name: "c", def: "stable", channels: []synthChannel{tc.entries}})
			cat, _ := newCatalog(cfg)
			g := cat.pkgs["c"].channels["stable"]
			all := set{}
			for n := range g.entries {
				all[n] = true
			}
			_, err := g.check(all)
			if (err == nil) != tc.valid {
				t.Errorf("check: %v, want valid=%v", err, tc.valid)
			}
			if os.Getenv("FERRY_SKIP_E2E") != "" {
				return
			}
			dir := t.TempDir()
			writeDir(t, dir, cfg)
			_, stderr, opmErr := testenv.RunOPM(t, "validate", dir)
			if (opmErr == nil) != tc.valid {
				t.Errorf("opm validate: %v, want valid=%v\n%s", opmErr, tc.valid, stderr)
			}
			if !tc.valid && !strings.Contains(stderr, tc.opmSays) {
				t.Errorf("opm says %q, want it to mention %q", stderr, tc.opmSays)
			}
		})
	}
}

// TestRepairKeepsTheTop: repair never drops the designated top while it is
// a head, and drops transitively what only dropped bundles skipped.
func TestRepairKeepsTheTop(t *testing.T) {
	cfg := synth(synthPkg{name: "c", def: "stable", channels: []synthChannel{ch("stable",
		e("c.v1.0.0", ""),
		sr(e("c.v1.1.0", "", "c.v1.0.0"), "<1.1.0"),
		sr(e("c.v1.2.0", ""), "<1.2.0"),
	)}})
	cat, _ := newCatalog(cfg)
	g := cat.pkgs["c"].channels["stable"]
	keep, dropped, err := g.repair(set{"c.v1.0.0": true, "c.v1.1.0": true, "c.v1.2.0": true}, "c.v1.2.0")
	if err != nil {
		t.Fatal(err)
	}
	// c.v1.1.0 reaches the top only by skipRange: stranded; then c.v1.0.0,
	// which only c.v1.1.0 skipped, is stranded too.
	if len(keep) != 1 || !keep["c.v1.2.0"] {
		t.Errorf("kept %v, want only c.v1.2.0", keep)
	}
	if strings.Join(dropped, ",") != "c.v1.0.0,c.v1.1.0" {
		t.Errorf("dropped %v", dropped)
	}
}
