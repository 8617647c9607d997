package mirror_test

import (
	"context"
	"errors"
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

	"github.com/ferry-gitops/ferry/internal/mirror"
	"github.com/ferry-gitops/ferry/internal/registry"
)

// Copy an image into a mirror twice: the second run finds it there with
// one HEAD. A caller keeps Report.Blobs for the next run's BlobHints and
// moves forward only destinations that are Complete.
func ExampleCopy() {
	src := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer src.Close()
	dst := httptest.NewServer(ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0))))
	defer dst.Close()
	srcHost, dstHost := strings.TrimPrefix(src.URL, "http://"), strings.TrimPrefix(dst.URL, "http://")

	img, _ := random.Image(1024, 2)
	digest, _ := img.Digest()
	ref, _ := name.ParseReference(srcHost + "/operators/example@" + digest.String())
	_ = remote.Write(ref, img)

	// Credentials come from a docker config.json or podman auth.json.
	dir, _ := os.MkdirTemp("", "example")
	defer os.RemoveAll(dir)
	auth := filepath.Join(dir, "auth.json")
	_ = os.WriteFile(auth, []byte(`{"auths":{}}`), 0o600)
	client, err := registry.New(registry.Options{AuthFile: auth})
	if err != nil {
		log.Fatal(err)
	}

	pairs := []mirror.Pair{{Source: ref.String(), Destination: dstHost + "/mirror/operators/example:v1"}}
	opts := mirror.DefaultOptions(client)
	var hints mirror.BlobLocations
	for range 2 {
		opts.BlobHints = hints
		rep, err := mirror.Copy(context.Background(), pairs, opts)
		var incomplete *mirror.IncompleteError
		if errors.As(err, &incomplete) {
			for _, f := range incomplete.Failed {
				fmt.Println("failed:", f.Reason)
			}
		}
		hints = rep.Blobs
		fmt.Println(rep.Images[0].Action, rep.Complete(pairs[0].Destination), rep.Registry(dstHost).Writes == 0)
	}
	// Output:
	// Copied true false
	// Present true true
}
