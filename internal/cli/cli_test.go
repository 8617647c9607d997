package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRoot()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err := root.Execute()
	code = ExitCode(err, &errOut)
	return out.String(), errOut.String(), code
}

func TestValidateExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		code     int
		stdout   []string
		stderr   []string
		noStdout bool
	}{
		{
			name:   "examples are valid",
			args:   []string{"validate", "../../examples"},
			code:   ExitOK,
			stdout: []string{"valid: 5 file(s), 4 Catalog(s), 1 Mirror, 1 Samples", "Catalog/certified-operators", "Mirror/disconnected"},
		},
		{
			name:     "every problem listed with file and line",
			args:     []string{"validate", "../../spec/testdata/load/malformed-digest"},
			code:     ExitInvalid,
			stderr:   []string{"catalog.yaml:6: Catalog/digests: spec.source:", "catalog.yaml:13: Catalog/digests: spec.bundles[4]:", "invalid: 6 error(s)"},
			noStdout: true,
		},
		{
			name:   "unknown field",
			args:   []string{"validate", "../../spec/testdata/load/unknown-field"},
			code:   ExitInvalid,
			stderr: []string{`spec.pacakges: unknown field "pacakges" (did you mean "packages"?)`},
		},
		{
			name:   "missing directory is a usage error",
			args:   []string{"validate", "/nonexistent/dir"},
			code:   ExitInvalid,
			stderr: []string{"error: spec directory"},
		},
		{
			name:   "bad flag is a usage error",
			args:   []string{"validate", "--bogus"},
			code:   ExitInvalid,
			stderr: []string{"unknown flag: --bogus"},
		},
		{
			name:   "version",
			args:   []string{"version"},
			code:   ExitOK,
			stdout: []string{"ferry "},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := run(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.code, stdout, stderr)
			}
			for _, s := range tc.stdout {
				if !strings.Contains(stdout, s) {
					t.Errorf("stdout lacks %q:\n%s", s, stdout)
				}
			}
			for _, s := range tc.stderr {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			if tc.noStdout && stdout != "" {
				t.Errorf("invalid input printed to stdout:\n%s", stdout)
			}
		})
	}
}

func TestValidateJSON(t *testing.T) {
	stdout, _, code := run(t, "validate", "-o", "json", "../../spec/testdata/load/invalid-regex")
	if code != ExitInvalid {
		t.Fatalf("exit %d", code)
	}
	var report struct {
		Valid    bool `json:"valid"`
		Problems []struct {
			File  string `json:"file"`
			Line  int    `json:"line"`
			Field string `json:"field"`
		} `json:"problems"`
	}
	if err := json.Unmarshal([]byte(stdout), &report); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, stdout)
	}
	if report.Valid || len(report.Problems) != 3 {
		t.Fatalf("got valid=%v with %d problems, want invalid with 3", report.Valid, len(report.Problems))
	}
	if p := report.Problems[1]; !strings.HasSuffix(p.File, "invalid-regex/mirror.yaml") || p.Line != 10 || p.Field != "spec.blockedImages[0]" {
		t.Errorf("problem location = %+v", p)
	}
}
