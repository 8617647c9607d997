package fbc

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

// The tests in this file judge Ferry's catalogs with the real opm (built
// from operator-registry v1.73.0 by hack/tools.sh). Set FERRY_SKIP_E2E to
// skip them where opm cannot be built.

func skipE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

// TestOPMValidatesWrittenCatalogs: what WriteDir writes for every large
// catalog, in both formats, passes `opm validate`, and Validate agrees.
func TestOPMValidatesWrittenCatalogs(t *testing.T) {
	skipE2E(t)
	testenv.OPM(t)
	for _, lc := range largeCatalogs(t) {
		cfg := mustLoadDir(t, lc.Dir)
		if err := Validate(cfg); err != nil {
			t.Errorf("%s: Validate: %v", lc.Name, err)
		}
		for _, format := range []Format{FormatYAML, FormatJSON} {
			t.Run(lc.Name+"/"+string(format), func(t *testing.T) {
				dir := t.TempDir()
				if err := WriteDir(context.Background(), dir, cfg, WriteOptions{Format: format}); err != nil {
					t.Fatal(err)
				}
				if _, stderr, err := testenv.RunOPM(t, "validate", dir); err != nil {
					t.Fatalf("opm validate rejected the written catalog: %v\n%s", err, stderr)
				}
			})
		}
	}
}

// TestOPMRenderMatchesWriteYAML: for catalogs opm itself rendered (the
// large ones), `opm render -o yaml` of each package and WriteYAML of what
// LoadFS read are the same bytes, except where opm normalises on render
// (it re-sorts channel entries and rewrites icons through its model).
func TestOPMRenderMatchesWriteYAML(t *testing.T) {
	skipE2E(t)
	testenv.OPM(t)
	for _, lc := range largeCatalogs(t)[:1] {
		entries, err := os.ReadDir(lc.Dir)
		if err != nil {
			t.Fatal(err)
		}
		same, differ := 0, []string{}
		for _, e := range entries {
			pkgDir := filepath.Join(lc.Dir, e.Name())
			rendered, stderr, err := testenv.RunOPM(t, "render", pkgDir, "-o", "yaml")
			if err != nil {
				t.Fatalf("opm render %s: %v\n%s", pkgDir, err, stderr)
			}
			var ours bytes.Buffer
			if err := WriteYAML(&ours, mustLoadDir(t, pkgDir)); err != nil {
				t.Fatal(err)
			}
			if ours.String() == rendered {
				same++
			} else {
				differ = append(differ, e.Name())
			}
		}
		t.Logf("%s: %d packages byte-identical to opm render, differing (opm normalised the input): %v", lc.Name, same, differ)
		if same < len(entries)*9/10 {
			t.Errorf("%s: only %d of %d packages match opm render -o yaml; differing: %v", lc.Name, same, len(entries), differ)
		}
	}
}

// TestOPMAgreesWithValidate writes each validation case with WriteDir and
// requires opm validate to reject exactly the cases Check finds problems in.
func TestOPMAgreesWithValidate(t *testing.T) {
	skipE2E(t)
	testenv.OPM(t)
	for _, tc := range validationCases {
		if !tc.onOPM {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			cfg := validBase()
			tc.edit(cfg)
			dir := t.TempDir()
			if err := WriteDir(context.Background(), dir, cfg, DefaultWriteOptions()); err != nil {
				t.Fatal(err)
			}
			_, stderr, err := testenv.RunOPM(t, "validate", dir)
			opmRejects := err != nil
			ours := Validate(cfg)
			if opmRejects != (ours != nil) {
				t.Errorf("opm validate rejects=%v (%s) but Validate returned %v", opmRejects, strings.TrimSpace(stderr), ours)
			}
		})
	}
}

// TestOPMAgreesOnLoading: documents opm loads or refuses, LoadFS does the
// same.
func TestOPMAgreesOnLoading(t *testing.T) {
	skipE2E(t)
	testenv.OPM(t)
	for _, tc := range loadCases {
		if tc.skipOPM {
			continue
		}
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, content := range tc.files {
				p := filepath.Join(dir, filepath.FromSlash(name))
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, stderr, err := testenv.RunOPM(t, "render", dir, "-o", "json")
			opmOK := err == nil
			_, ours := LoadFS(context.Background(), os.DirFS(dir))
			if opmOK != (ours == nil) {
				t.Errorf("opm render ok=%v (%s) but LoadFS returned %v", opmOK, strings.TrimSpace(stderr), ours)
			}
		})
	}
}
