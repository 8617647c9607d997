package e2e

import (
	"testing"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

// Startup costs of the test environment, measured here rather than asserted
// in tests. Instances stay up until the benchmark ends, so keep -benchtime
// small:
//
//	go test ./test/e2e/ -run '^$' -bench Start -benchtime 3x

func BenchmarkStartRegistry(b *testing.B) {
	for b.Loop() {
		testenv.StartRegistry(b, testenv.RegistryOptions{Auth: true})
	}
}

func BenchmarkStartKube(b *testing.B) {
	for b.Loop() {
		testenv.StartKube(b)
	}
}

func BenchmarkStartGitServerAndSeed(b *testing.B) {
	for b.Loop() {
		srv := testenv.StartGitServer(b, testenv.GitOptions{})
		srv.Seed("fleet", map[string]string{"README.md": "fleet\n"})
	}
}
