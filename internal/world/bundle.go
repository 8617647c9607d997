package world

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"sigs.k8s.io/yaml"
)

// newBundleImage packs b the way `opm alpha bundle generate` + a container
// build does: one layer holding manifests/ and metadata/, built FROM
// scratch, with every annotation repeated as an image label (opm identifies
// bundle images by those labels, not by the files).
func newBundleImage(b *bundleContent, f flavour) (v1.Image, error) {
	files, err := b.files()
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", b.name, err)
	}
	return bundleImageFromFiles(files, b.annotations, f)
}

func bundleImageFromFiles(files []file, annotations map[string]string, f flavour) (v1.Image, error) {
	layer, err := newTarLayer(files, f.layerType())
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	for k, v := range annotations {
		labels[k] = v
	}
	return newImage(imageSpec{
		flavour:  f,
		platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		layers:   []*blobLayer{layer},
		config:   v1.Config{Labels: labels},
		history:  []string{"COPY manifests/ metadata/ /"},
	})
}

// PushBundleDir packs a registry+v1 bundle directory (manifests/,
// metadata/annotations.yaml and, when present, tests/) into a bundle image
// labelled from its annotations.yaml, pushes it to ref and returns its
// digest. It is the "extra bundle" a Catalog spec adds, built from the real
// bundles under testdata/bundles. The image is a function of the directory's
// content only, so pushing the same directory twice yields the same digest.
func PushBundleDir(ctx context.Context, dir, ref string, opts ...remote.Option) (v1.Hash, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return v1.Hash{}, fmt.Errorf("push bundle %s: %w", dir, err)
	}
	img, err := BundleDirImage(dir)
	if err != nil {
		return v1.Hash{}, err
	}
	if err := remote.Write(r, img, append([]remote.Option{remote.WithContext(ctx)}, opts...)...); err != nil {
		return v1.Hash{}, fmt.Errorf("push bundle %s to %s: %w", dir, ref, err)
	}
	return img.Digest()
}

// BundleDirImage builds, without pushing, the image PushBundleDir pushes.
func BundleDirImage(dir string) (v1.Image, error) {
	annPath := filepath.Join(dir, "metadata", "annotations.yaml")
	raw, err := os.ReadFile(annPath)
	if err != nil {
		return nil, fmt.Errorf("bundle %s: %w", dir, err)
	}
	var ann struct {
		Annotations map[string]string `json:"annotations"`
	}
	if err := yaml.Unmarshal(raw, &ann); err != nil {
		return nil, fmt.Errorf("bundle %s: parse %s: %w", dir, annPath, err)
	}
	if ann.Annotations[labelPackage] == "" {
		return nil, fmt.Errorf("bundle %s: %s has no %s", dir, annPath, labelPackage)
	}
	var files []file
	for _, sub := range []string{"manifests", "metadata", "tests"} {
		root := filepath.Join(dir, sub)
		if _, err := os.Stat(root); os.IsNotExist(err) && sub == "tests" {
			continue
		}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			rel, err := filepath.Rel(dir, p)
			if err != nil {
				return err
			}
			files = append(files, file{Name: filepath.ToSlash(rel), Data: data})
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("bundle %s: %w", dir, err)
		}
	}
	if !hasPrefix(files, "manifests/") {
		return nil, fmt.Errorf("bundle %s: no manifests", dir)
	}
	return bundleImageFromFiles(files, ann.Annotations, docker)
}

func hasPrefix(files []file, prefix string) bool {
	for _, f := range files {
		if strings.HasPrefix(f.Name, prefix) {
			return true
		}
	}
	return false
}
