package world_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/ferry-gitops/ferry/internal/world"
)

// Build a world from a catalog directory into an in-process registry and
// look up where a catalog reference went.
func ExampleBuild() {
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	defer srv.Close()
	reg := strings.TrimPrefix(srv.URL, "http://")

	w, err := world.Build(context.Background(), os.DirFS("testdata/quirks"), world.DefaultOptions(reg))
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.TrimPrefix(w.Rewritten["nginx:1.25"], reg))
	fmt.Println(strings.HasPrefix(w.Catalog, reg+"/catalog@sha256:"), w.CatalogTag == reg+"/catalog:latest")
	fmt.Println(len(w.Images), "images pushed")
	// Output:
	// /docker.io/library/nginx:1.25
	// true true
	// 13 images pushed
}
