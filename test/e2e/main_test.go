package e2e

import (
	"os"
	"testing"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

// TestMain runs through testenv.Main so the tests share one API server
// (testenv.SharedKube), stopped when they are done.
func TestMain(m *testing.M) {
	os.Exit(testenv.Main(m))
}
