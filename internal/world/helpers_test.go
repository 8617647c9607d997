package world

import (
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/registry"
)

// startRegistry serves go-containerregistry's in-memory registry on
// 127.0.0.1 for the test and returns its host:port. Loopback means plain
// HTTP to both go-containerregistry and (with --use-http) opm.
func startRegistry(t testing.TB) string {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

func mustLoad(t testing.TB, fsys fs.FS) []doc {
	t.Helper()
	docs, err := loadFBC(fsys)
	if err != nil {
		t.Fatal(err)
	}
	return docs
}
