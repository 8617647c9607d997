package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/google/go-containerregistry/pkg/v1/validate"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

func TestRegistryWithAuth(t *testing.T) {
	t.Parallel()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	digest := pushRandomImage(t, reg, "ferry/smoke:v1")
	ref, err := name.NewDigest(reg.Ref("ferry/smoke@" + digest.String()))
	if err != nil {
		t.Fatal(err)
	}

	t.Run("pull by digest with credentials", func(t *testing.T) {
		img, err := remote.Image(ref, remote.WithAuthFromKeychain(reg.Keychain()), remote.WithContext(t.Context()))
		if err != nil {
			t.Fatalf("pull %s: %v", ref, err)
		}
		got, err := img.Digest()
		if err != nil {
			t.Fatal(err)
		}
		if got != digest {
			t.Errorf("pulled digest %s, pushed %s", got, digest)
		}
		// Downloads every blob and checks it against its digest, so a
		// registry that kept the manifest but lost a layer fails here.
		if err := validate.Image(img); err != nil {
			t.Errorf("validate pulled image: %v", err)
		}
	})

	t.Run("anonymous pull is refused", func(t *testing.T) {
		_, err := remote.Image(ref, remote.WithContext(t.Context()))
		var terr *transport.Error
		if !errors.As(err, &terr) || terr.StatusCode != http.StatusUnauthorized {
			t.Fatalf("anonymous pull: got error %v, want HTTP 401", err)
		}
	})

	t.Run("skopeo sees the same manifest", func(t *testing.T) {
		stdout, stderr, err := testenv.RunSkopeo(t, "inspect", "--raw", "--tls-verify=false",
			"--creds", reg.Creds(), "docker://"+ref.String())
		if err != nil {
			t.Fatalf("skopeo inspect: %v\n%s", err, stderr)
		}
		sum := sha256.Sum256([]byte(stdout))
		if got := hex.EncodeToString(sum[:]); got != digest.Hex {
			t.Errorf("sha256 of skopeo's manifest is %s, want %s", got, digest.Hex)
		}
	})
}

func TestRegistryWithoutAuth(t *testing.T) {
	t.Parallel()
	reg := testenv.StartRegistry(t, testenv.RegistryOptions{})
	digest := pushRandomImage(t, reg, "ferry/open:v1")
	ref, err := name.NewDigest(reg.Ref("ferry/open@" + digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref, remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("anonymous HEAD %s: %v", ref, err)
	}
	if desc.Digest != digest {
		t.Errorf("HEAD digest %s, pushed %s", desc.Digest, digest)
	}
}

// pushRandomImage pushes a fresh random image to repoTag in reg with reg's
// credentials and returns its digest.
func pushRandomImage(t *testing.T, reg *testenv.Registry, repoTag string) v1.Hash {
	t.Helper()
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(reg.Ref(repoTag))
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithAuth(reg.Auth()), remote.WithContext(t.Context())); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return digest
}
