package airgap_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/airgap"
	"github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/internal/registry"
)

// Carry an image and a lock file across an air gap: export on the
// connected side into a tar, import on the disconnected side into the
// mirror. The destination is the mirror's name for the image; the source
// is never contacted by Import.
func ExampleExport() {
	src := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer src.Close()
	dst := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer dst.Close()
	srcHost, dstHost := strings.TrimPrefix(src.URL, "http://"), strings.TrimPrefix(dst.URL, "http://")

	img, _ := random.Image(1024, 2)
	ref, _ := name.ParseReference(srcHost + "/operators/example:v1")
	_ = remote.Write(ref, img)

	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	auth := filepath.Join(dir, "auth.json")
	_ = os.WriteFile(auth, []byte(`{"auths":{}}`), 0o600)
	client, err := registry.New(registry.Options{AuthFile: auth})
	if err != nil {
		log.Fatal(err)
	}

	archive := filepath.Join(dir, "ferry-1.tar")
	pairs := []mirror.Pair{{Source: ref.String(), Destination: dstHost + "/mirror/operators/example:v1"}}
	exp, err := airgap.Export(context.Background(), pairs, airgap.ExportOptions{
		Path:    archive,
		Remotes: client,
		Files:   map[string][]byte{"ferry.lock": []byte("lock\n")},
	})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("archived:", exp.Stats.Images, "image,", exp.Stats.Blobs, "blobs")

	// ... carried across the gap; the next export passes
	// Since: []string{archive} and holds only what is new.

	rep, files, err := airgap.Import(context.Background(), archive, airgap.ImportOptions{Remotes: client})
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(rep.Images[0].Action, rep.Complete(pairs[0].Destination), string(files["ferry.lock"]))
	// Output:
	// archived: 1 image, 3 blobs
	// Copied true lock
}
