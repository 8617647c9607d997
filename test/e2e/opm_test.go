package e2e

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

func TestOPMValidate(t *testing.T) {
	t.Parallel()
	valid := filepath.Join(testenv.RepoRoot(t), "testdata/fbc/small/community-operators-prod/v4.20/kubevirt-wol")

	// The broken copy points the package's defaultChannel at a channel that
	// does not exist, which opm's model validation must reject.
	catalog, err := os.ReadFile(filepath.Join(valid, "catalog.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	const from, to = "defaultChannel: stable-v0", "defaultChannel: no-such-channel"
	if !strings.Contains(string(catalog), from) {
		t.Fatalf("test data changed: %s/catalog.yaml has no %q", valid, from)
	}
	broken := t.TempDir()
	if err := os.WriteFile(filepath.Join(broken, "catalog.yaml"), []byte(strings.Replace(string(catalog), from, to, 1)), 0o644); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		dir       string
		wantValid bool
		wantInErr string
	}{
		{name: "upstream catalog", dir: valid, wantValid: true},
		{name: "missing default channel", dir: broken, wantInErr: "no-such-channel"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, stderr, err := testenv.RunOPM(t, "validate", tc.dir)
			if tc.wantValid {
				if err != nil {
					t.Fatalf("opm validate %s: %v\n%s", tc.dir, err, stderr)
				}
				return
			}
			var exitErr *exec.ExitError
			if !errors.As(err, &exitErr) {
				t.Fatalf("opm validate %s: got %v, want a non-zero exit\n%s", tc.dir, err, stderr)
			}
			if !strings.Contains(stderr, tc.wantInErr) {
				t.Errorf("opm validate stderr does not mention %q:\n%s", tc.wantInErr, stderr)
			}
		})
	}
}
