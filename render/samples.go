package render

import (
	"fmt"
	"sort"
	"strings"

	"sigs.k8s.io/yaml"

	"github.com/ferry-gitops/ferry/spec"
)

// SampleImage is one image a sample imagestream tag imports, and where the
// samples operator will look for it once samplesRegistry is set.
type SampleImage struct {
	Stream, Tag string
	// Source is the image as the operator's inventory names it.
	Source string
	// Destination is Source rewritten the way the operator rewrites it.
	Destination string
}

// samplesKnownRegistries are the registries the samples operator replaces
// with samplesRegistry by prefix (cluster-samples-operator,
// pkg/stub/imagestreams.go, updateDockerPullSpec).
var samplesKnownRegistries = []string{"docker.io", "registry.redhat.io", "registry.access.redhat.com", "quay.io", "registry.svc.ci.openshift.org"}

// SampleDestination is where the samples operator imports image from once
// samplesRegistry is registry. It reproduces the operator's rewrite, quirks
// included, because the mirror must hold exactly what it will ask for:
//
//   - a reference already under registry is left alone;
//   - host/namespace/name (two slashes) starting with one of the registries
//     the operator knows has that prefix replaced; with another host, the
//     host is replaced;
//   - any other shape (no host, or more than two slashes) gets registry
//     put in front of the whole reference.
//
// The tag (or digest) is kept: imagestreams import by it.
func SampleDestination(image, registry string) string {
	if strings.HasPrefix(image, registry) {
		return image
	}
	if strings.Count(image, "/") == 2 {
		for _, known := range samplesKnownRegistries {
			if strings.HasPrefix(image, known) {
				return strings.Replace(image, known, registry, 1)
			}
		}
		parts := strings.Split(image, "/")
		return registry + "/" + parts[1] + "/" + parts[2]
	}
	return registry + "/" + image
}

// ParseSampleImages reads the samples operator's imagestreamtag-to-image
// list: the ConfigMap as JSON or YAML (its data), or a plain mapping of
// "<stream>_<tag>" to image.
func ParseSampleImages(b []byte) (map[string]string, error) {
	var cm struct {
		Kind string            `json:"kind"`
		Data map[string]string `json:"data"`
	}
	if err := yaml.Unmarshal(b, &cm); err == nil && cm.Kind == "ConfigMap" {
		return cm.Data, nil
	}
	var plain map[string]string
	if err := yaml.Unmarshal(b, &plain); err != nil {
		return nil, fmt.Errorf("not an imagestreamtag-to-image ConfigMap or a mapping of <stream>_<tag> to image: %w", err)
	}
	return plain, nil
}

// SampleImages lists the images to mirror for s from the operator's list:
// every <stream>_<tag> whose stream is not skipped, with its destination
// under s.SamplesRegistry. Streams named jenkins* are left out: the
// operator never rewrites them (they come from the release payload).
func SampleImages(s *spec.SamplesSpec, list map[string]string) []SampleImage {
	skipped := map[string]bool{}
	for _, n := range s.SkippedImagestreams {
		skipped[n] = true
	}
	var out []SampleImage
	for key, image := range list {
		stream, tag, ok := strings.Cut(key, "_")
		if !ok || skipped[stream] || strings.HasPrefix(stream, "jenkins") || image == "" {
			continue
		}
		out = append(out, SampleImage{Stream: stream, Tag: tag, Source: image, Destination: SampleDestination(image, s.SamplesRegistry)})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Stream != out[j].Stream {
			return out[i].Stream < out[j].Stream
		}
		return out[i].Tag < out[j].Tag
	})
	return out
}

// SamplesMapping renders samples/mapping.txt: one SRC=DST line per image
// copied, what `oc image mirror -f` reads. Sources are by tag, as the
// operator imports them.
func SamplesMapping(images []SampleImage) []byte {
	seen := map[string]bool{}
	var lines []string
	for _, im := range images {
		l := im.Source + "=" + im.Destination
		if !seen[l] {
			seen[l] = true
			lines = append(lines, l)
		}
	}
	sort.Strings(lines)
	if len(lines) == 0 {
		return nil
	}
	return []byte(strings.Join(lines, "\n") + "\n")
}

// SamplePlatforms maps the samples operator's architecture names to the
// image platforms to copy.
func SamplePlatforms(architectures []string) []string {
	var out []string
	for _, a := range architectures {
		switch a {
		case "x86_64":
			out = append(out, "linux/amd64")
		case "aarch64":
			out = append(out, "linux/arm64")
		case "ppc64le", "s390x":
			out = append(out, "linux/"+a)
		}
	}
	return out
}
