// Command image is `make image`: Ferry's container image, built without a
// container engine. For each platform it cross-compiles a static ferry
// binary (CGO_ENABLED=0), puts it on a scratch base that holds only CA
// certificates (the build machine's Debian ca-certificates bundle), a
// passwd/group naming the non-root user 65532 and a /tmp, and assembles a
// multi-arch OCI index with go-containerregistry. The index is written to
// an OCI layout directory and/or pushed with -a credentials.
//
//	go run ./hack/image -o bin/image                       # OCI layout
//	go run ./hack/image -push registry.example/ferry:v1 -a auth.json
package main

import (
	"archive/tar"
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-gitops/ferry/internal/registry"
)

// UID is the image's user: the conventional "nonroot" of distroless
// images, which restricted SecurityContexts (runAsNonRoot) accept.
const UID = 65532

// Options say what to build.
type Options struct {
	Platforms []string // os/arch
	Version   string
	CABundle  string // PEM bundle copied to /etc/ssl/certs/ca-certificates.crt
	Source    string // the module root to build
	WorkDir   string // where binaries are built
	Created   time.Time
}

func main() {
	var (
		out, push, auth, platforms, version, caBundle string
	)
	flag.StringVar(&out, "o", "", "write the image index to this OCI layout directory")
	flag.StringVar(&push, "push", "", "push the image index to this reference")
	flag.StringVar(&auth, "a", "", "registry credentials for -push (docker config.json or podman auth.json)")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "platforms to build")
	flag.StringVar(&version, "version", "dev", "version stamped into the binary and the image labels")
	flag.StringVar(&caBundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA certificates to include (Debian's ca-certificates package)")
	flag.Parse()
	if out == "" && push == "" {
		log.Fatal("nothing to do: give -o DIR and/or -push REF")
	}
	work, err := os.MkdirTemp("", "ferry-image-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)
	root, err := os.Getwd()
	if err != nil {
		log.Fatal(err)
	}
	idx, err := Build(Options{Platforms: strings.Split(platforms, ","), Version: version, CABundle: caBundle, Source: root, WorkDir: work, Created: created()})
	if err != nil {
		log.Fatal(err)
	}
	if err := Describe(os.Stdout, idx); err != nil {
		log.Fatal(err)
	}
	if out != "" {
		if err := os.RemoveAll(out); err != nil {
			log.Fatal(err)
		}
		p, err := layout.Write(out, empty.Index)
		if err != nil {
			log.Fatal(err)
		}
		if err := p.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": version})); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("wrote OCI layout %s\n", out)
	}
	if push != "" {
		reg, err := registry.New(registry.Options{AuthFile: auth})
		if err != nil {
			log.Fatal(err)
		}
		ref, err := reg.Reference(push)
		if err != nil {
			log.Fatal(err)
		}
		if err := remote.WriteIndex(ref, idx, reg.Remote(ref)...); err != nil {
			log.Fatal(err)
		}
		d, _ := idx.Digest()
		fmt.Printf("pushed %s@%s\n", ref.Context(), d)
	}
}

// created is SOURCE_DATE_EPOCH when set (reproducible builds), else the
// Unix epoch: the image's bytes depend on its inputs only.
func created() time.Time {
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	return time.Unix(0, 0).UTC()
}

// Build builds the multi-arch index.
func Build(o Options) (v1.ImageIndex, error) {
	ca, err := os.ReadFile(o.CABundle)
	if err != nil {
		return nil, fmt.Errorf("CA bundle (apt-get install ca-certificates): %w", err)
	}
	base, err := baseLayer(ca, o.Created)
	if err != nil {
		return nil, err
	}
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	for _, p := range o.Platforms {
		osName, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok {
			return nil, fmt.Errorf("platform %q: want os/arch", p)
		}
		bin := filepath.Join(o.WorkDir, "ferry-"+osName+"-"+arch)
		if err := compile(o.Source, bin, osName, arch, o.Version); err != nil {
			return nil, err
		}
		img, err := image(base, bin, osName, arch, o)
		if err != nil {
			return nil, err
		}
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: osName, Architecture: arch}}})
	}
	return idx, nil
}

// compile builds a static ferry binary for one platform.
func compile(src, out, goos, goarch, version string) error {
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X github.com/ferry-gitops/ferry/internal/cli.version="+version, "-o", out, "./cmd/ferry")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("go build %s/%s: %w", goos, goarch, err)
	}
	return nil
}

// file is one entry of a layer.
type file struct {
	name string
	mode int64
	uid  int
	dir  bool
	body []byte
}

func tarLayer(files []file, mtime time.Time) (v1.Layer, error) {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Uid: f.uid, Gid: f.uid, ModTime: mtime, Format: tar.FormatPAX}
		if f.dir {
			h.Typeflag = tar.TypeDir
		} else {
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(f.body))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if _, err := tw.Write(f.body); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := b.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithMediaType(types.OCILayer))
}

// baseLayer is everything but the binary: CA certificates, the non-root
// user, a world-writable /tmp (an emptyDir is mounted there in the
// cluster, but the image works without one).
func baseLayer(ca []byte, mtime time.Time) (v1.Layer, error) {
	passwd := fmt.Sprintf("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/home/nonroot:/sbin/nologin\n", UID, UID)
	group := fmt.Sprintf("root:x:0:\nnonroot:x:%d:\n", UID)
	return tarLayer([]file{
		{name: "etc/", mode: 0o755, dir: true},
		{name: "etc/passwd", mode: 0o644, body: []byte(passwd)},
		{name: "etc/group", mode: 0o644, body: []byte(group)},
		{name: "etc/ssl/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/", mode: 0o755, dir: true},
		{name: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, body: ca},
		{name: "home/", mode: 0o755, dir: true},
		{name: "home/nonroot/", mode: 0o700, uid: UID, dir: true},
		{name: "tmp/", mode: 0o1777, dir: true},
	}, mtime)
}

func image(base v1.Layer, bin, goos, goarch string, o Options) (v1.Image, error) {
	body, err := os.ReadFile(bin)
	if err != nil {
		return nil, err
	}
	binLayer, err := tarLayer([]file{{name: "ferry", mode: 0o755, body: body}}, o.Created)
	if err != nil {
		return nil, err
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.AppendLayers(img, base, binLayer)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture = goos, goarch
	cf.Created = v1.Time{Time: o.Created}
	cf.Config.User = fmt.Sprintf("%d:%d", UID, UID)
	cf.Config.Entrypoint = []string{"/ferry"}
	cf.Config.WorkingDir = "/home/nonroot"
	cf.Config.Env = []string{"SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt", "HOME=/home/nonroot"}
	cf.Config.Labels = map[string]string{
		"org.opencontainers.image.title":       "ferry",
		"org.opencontainers.image.description": "Declarative operator catalogs, mirrors and samples for disconnected OpenShift",
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.licenses":    "Apache-2.0",
	}
	return mutate.ConfigFile(img, cf)
}

// Describe prints each platform's image with its compressed size (what a
// node pulls) and uncompressed size.
func Describe(w io.Writer, idx v1.ImageIndex) error {
	m, err := idx.IndexManifest()
	if err != nil {
		return err
	}
	d, err := idx.Digest()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "index %s (built with %s)\n", d, runtime.Version())
	for _, desc := range m.Manifests {
		img, err := idx.Image(desc.Digest)
		if err != nil {
			return err
		}
		layers, err := img.Layers()
		if err != nil {
			return err
		}
		var compressed, uncompressed int64
		for _, l := range layers {
			s, err := l.Size()
			if err != nil {
				return err
			}
			compressed += s
			rc, err := l.Uncompressed()
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, rc)
			rc.Close()
			if err != nil {
				return err
			}
			uncompressed += n
		}
		fmt.Fprintf(w, "  %s/%s %s: %.1f MiB compressed, %.1f MiB uncompressed, %d layers\n",
			desc.Platform.OS, desc.Platform.Architecture, desc.Digest, float64(compressed)/(1<<20), float64(uncompressed)/(1<<20), len(layers))
	}
	return nil
}
