package spec

import (
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite golden files")

// TestLoadGolden loads each directory under testdata/load and compares the
// outcome with <case>.golden: the effective objects (defaults applied) for
// a valid input, every problem for an invalid one.
func TestLoadGolden(t *testing.T) {
	dirs, err := filepath.Glob("testdata/load/*")
	if err != nil {
		t.Fatal(err)
	}
	cases := 0
	for _, dir := range dirs {
		if fi, err := os.Stat(dir); err != nil || !fi.IsDir() {
			continue
		}
		cases++
		name := filepath.Base(dir)
		t.Run(name, func(t *testing.T) {
			cfg, loadErr := Load(os.DirFS(dir), DefaultLoadOptions())
			got := describeOutcome(t, cfg, loadErr)
			golden := dir + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./spec -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("outcome differs from %s (-want +got):\n%s", golden, diff)
			}
			// Only the cases named valid-* may load.
			if wantValid := strings.HasPrefix(name, "valid"); wantValid != (loadErr == nil) {
				t.Errorf("valid = %v, want %v", loadErr == nil, wantValid)
			}
		})
	}
	if cases < 10 {
		t.Fatalf("only %d golden cases found", cases)
	}
}

func describeOutcome(t *testing.T, cfg *Config, err error) string {
	t.Helper()
	var invalid *InvalidError
	if errors.As(err, &invalid) {
		var b strings.Builder
		b.WriteString("invalid\n")
		for _, p := range invalid.Problems {
			b.WriteString(p.String() + "\n")
		}
		return b.String()
	}
	if err != nil {
		t.Fatalf("unexpected error: %v", err)
	}
	out := map[string]any{"files": cfg.Files, "catalogs": cfg.Catalogs, "mirror": cfg.Mirror, "samples": cfg.Samples, "warnings": cfg.Warnings}
	j, err := json.Marshal(out)
	if err != nil {
		t.Fatal(err)
	}
	y, err := yaml.JSONToYAML(j)
	if err != nil {
		t.Fatal(err)
	}
	return "valid\n" + string(y)
}

// TestEveryProblemHasALocation guards the promise that each finding names
// file, line, object and field.
func TestEveryProblemHasALocation(t *testing.T) {
	for _, dir := range []string{"unknown-field", "malformed-digest", "invalid-range", "mirror-inconsistent", "samples-invalid", "conflicting-targets", "wrong-types", "invalid-regex"} {
		_, err := Load(os.DirFS("testdata/load/"+dir), DefaultLoadOptions())
		var invalid *InvalidError
		if !errors.As(err, &invalid) {
			t.Fatalf("%s: want *InvalidError, got %v", dir, err)
		}
		for _, p := range invalid.Problems {
			if p.File == "" || p.Line == 0 || p.Kind == "" || p.Field == "" {
				t.Errorf("%s: problem lacks a location: %#v", dir, p)
			}
		}
	}
}

func TestRenderDirIsNotSpec(t *testing.T) {
	fsys := os.DirFS("testdata/load/valid-minimal")
	cfg, err := Load(fsys, LoadOptions{Exclude: []string{"specs.yaml"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Catalogs) != 0 || len(cfg.Files) != 0 {
		t.Errorf("excluded file was read: %+v", cfg.Files)
	}
}

func TestDestination(t *testing.T) {
	for _, tc := range []struct {
		registry string
		max      int
		repo     string
		want     string
		keep     bool
	}{
		{"mirror.example.com", 0, "redhat/redhat-operator-index", "mirror.example.com/redhat/redhat-operator-index", false},
		{"mirror.example.com:5000/olm", 0, "a/b/c", "mirror.example.com:5000/olm/a/b/c", false},
		{"mirror.example.com/olm", 2, "a/b/c", "mirror.example.com/olm/a-b-c", false},
		{"mirror.example.com/olm", 3, "a/b/c", "mirror.example.com/olm/a/b-c", false},
		{"mirror.example.com", 2, "a", "mirror.example.com/a", false},
		{"mirror.example.com", 1, "a/b", "mirror.example.com/a-b", false},
		{"mirror.example.com/olm", 0, "netapp/trident", "mirror.example.com/olm/quay.io/netapp/trident", true},
		{"mirror.example.com/olm", 3, "netapp/trident", "mirror.example.com/olm/quay.io/netapp-trident", true},
		{"mirror.example.com", 0, "a/b", "mirror.example.com/quay.io/a/b", true},
	} {
		m := MirrorSpec{Registry: tc.registry, MaxPathComponents: tc.max, KeepSourceRegistry: tc.keep}
		if got := m.Destination("quay.io", tc.repo); got != tc.want {
			t.Errorf("Destination(%q, %q, max %d) = %q, want %q", tc.registry, tc.repo, tc.max, got, tc.want)
		}
	}
}

func TestProblemString(t *testing.T) {
	for _, tc := range []struct {
		p    Problem
		want string
	}{
		{Problem{File: "a.yaml", Line: 3, Kind: "Catalog", Name: "x", Field: "spec.source", Message: "required"}, "a.yaml:3: Catalog/x: spec.source: required"},
		{Problem{File: "a.yaml", Message: "not valid YAML"}, "a.yaml: not valid YAML"},
		{Problem{Severity: SeverityWarning, File: "a.yaml", Line: 1, Kind: "ImageSetConfiguration", Field: "mirror.helm", Message: "ignored"}, "a.yaml:1: warning: ImageSetConfiguration: mirror.helm: ignored"},
	} {
		if got := tc.p.String(); got != tc.want {
			t.Errorf("got %q, want %q", got, tc.want)
		}
	}
}

func TestExamplesAreValid(t *testing.T) {
	cfg, err := Load(os.DirFS("../examples"), DefaultLoadOptions())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Catalogs) < 3 || cfg.Mirror == nil || cfg.Samples == nil {
		t.Errorf("examples should show every kind: %d catalogs, mirror %v, samples %v", len(cfg.Catalogs), cfg.Mirror != nil, cfg.Samples != nil)
	}
	if len(cfg.Warnings) != 0 {
		t.Errorf("examples have warnings: %v", cfg.Warnings)
	}
}
