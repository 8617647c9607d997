package mirror

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"

	"go.yaml.in/yaml/v3"

	"github.com/ferry-gitops/ferry/spec"
)

// The API versions of the cluster mirror objects.
const (
	ConfigAPIVersion   = "config.openshift.io/v1"
	OperatorAPIVersion = "operator.openshift.io/v1alpha1"
)

// CatalogLabel is the label oc puts on the ImageContentSourcePolicies it
// renders for catalogs; Ferry keeps it so existing tooling finds them.
const CatalogLabel = "operators.openshift.org/catalog"

// DefaultMaxObjectBytes is where objects are split, oc's --max-icsp-size
// default: client-side apply copies each object into the
// kubectl.kubernetes.io/last-applied-configuration annotation, and all
// annotations of an object together may not exceed 262144 bytes.
const DefaultMaxObjectBytes = 250000

// Options shapes the rendered files.
type Options struct {
	// NamePrefix names the objects of each kind <prefix>-0, <prefix>-1, ...
	// in the order of their sources, so names stay stable from run to run.
	NamePrefix string
	// MaxObjectBytes bounds each object's YAML and JSON encodings.
	MaxObjectBytes int
	// Labels are put on every object (ownership labels).
	Labels map[string]string
}

// DefaultOptions names objects ferry-N and splits them at 250000 bytes.
func DefaultOptions() Options {
	return Options{NamePrefix: "ferry", MaxObjectBytes: DefaultMaxObjectBytes}
}

// entry is one source repository and its mirror, the element of
// imageDigestMirrors, imageTagMirrors and repositoryDigestMirrors. Sources
// never carry a tag or digest: the cluster matches repositories.
type entry struct {
	Source             string   `json:"source" yaml:"source"`
	Mirrors            []string `json:"mirrors" yaml:"mirrors"`
	MirrorSourcePolicy string   `json:"mirrorSourcePolicy,omitempty" yaml:"mirrorSourcePolicy,omitempty"`
}

type objectMeta struct {
	Name   string            `json:"name" yaml:"name"`
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
}

type mirrorSetSpec struct {
	ImageDigestMirrors      []entry `json:"imageDigestMirrors,omitempty" yaml:"imageDigestMirrors,omitempty"`
	ImageTagMirrors         []entry `json:"imageTagMirrors,omitempty" yaml:"imageTagMirrors,omitempty"`
	RepositoryDigestMirrors []entry `json:"repositoryDigestMirrors,omitempty" yaml:"repositoryDigestMirrors,omitempty"`
}

type object struct {
	APIVersion string        `json:"apiVersion" yaml:"apiVersion"`
	Kind       string        `json:"kind" yaml:"kind"`
	Metadata   objectMeta    `json:"metadata" yaml:"metadata"`
	Spec       mirrorSetSpec `json:"spec" yaml:"spec"`
}

// entries returns one entry per mirrored source repository, sorted by
// source: those referenced by digest when digest is set (IDMS, ICSP),
// those referenced by tag otherwise (ITMS). The scope is always the
// repository: a namespace or registry scope would also redirect images
// that were never mirrored, which NeverContactSource turns into pull
// failures.
func (s *Set) entries(digest bool, policy string) []entry {
	byRepo := map[string]string{}
	for i := range s.Images {
		img := &s.Images[i]
		if img.InPlace || img.ByDigest() != digest {
			continue
		}
		byRepo[img.Repository] = img.DestinationRepository
	}
	out := make([]entry, 0, len(byRepo))
	for _, src := range sortedKeys(byRepo) {
		out = append(out, entry{Source: src, Mirrors: []string{byRepo[src]}, MirrorSourcePolicy: policy})
	}
	return out
}

// objects splits entries into objects of one kind, each under
// opts.MaxObjectBytes in both YAML (what oc measures) and JSON (what the
// last-applied annotation holds).
func objects(kind string, entries []entry, opts Options) ([]object, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	mk := func(i int, es []entry) object {
		o := object{Kind: kind, Metadata: objectMeta{Name: fmt.Sprintf("%s-%d", opts.NamePrefix, i)}}
		if len(opts.Labels) > 0 {
			o.Metadata.Labels = maps.Clone(opts.Labels)
		}
		switch kind {
		case spec.ObjectIDMS:
			o.APIVersion, o.Spec.ImageDigestMirrors = ConfigAPIVersion, es
		case spec.ObjectITMS:
			o.APIVersion, o.Spec.ImageTagMirrors = ConfigAPIVersion, es
		case spec.ObjectICSP:
			o.APIVersion, o.Spec.RepositoryDigestMirrors = OperatorAPIVersion, es
			if o.Metadata.Labels == nil {
				o.Metadata.Labels = map[string]string{}
			}
			o.Metadata.Labels[CatalogLabel] = "true"
		}
		return o
	}
	// An entry costs its compact JSON plus a margin that covers YAML's
	// indentation and dashes (measured: YAML is JSON + 5 to 12 bytes per
	// entry); each chunk is then measured for real.
	base, err := size(mk(1<<20, []entry{{}}))
	if err != nil {
		return nil, err
	}
	costs := make([]int, len(entries))
	for i, e := range entries {
		j, err := json.Marshal(e)
		if err != nil {
			return nil, err
		}
		costs[i] = len(j) + 16
		if base+costs[i] > opts.MaxObjectBytes {
			return nil, fmt.Errorf("%s entry for %s alone exceeds %d bytes", kind, e.Source, opts.MaxObjectBytes)
		}
	}
	for budget := opts.MaxObjectBytes; budget > base; budget -= budget / 20 {
		var out []object
		start, used := 0, base
		for i := range entries {
			if used+costs[i] > budget && i > start {
				out = append(out, mk(len(out), entries[start:i]))
				start, used = i, base
			}
			used += costs[i]
		}
		out = append(out, mk(len(out), entries[start:]))
		fits := true
		for _, o := range out {
			n, err := size(o)
			if err != nil {
				return nil, err
			}
			if n > opts.MaxObjectBytes {
				fits = false
				break
			}
		}
		if fits {
			return out, nil
		}
	}
	return nil, fmt.Errorf("%s: cannot split %d entries under %d bytes", kind, len(entries), opts.MaxObjectBytes)
}

// size is the larger of an object's YAML and compact JSON encodings.
func size(o object) (int, error) {
	j, err := json.Marshal(o)
	if err != nil {
		return 0, err
	}
	y, err := encodeYAML(o)
	if err != nil {
		return 0, err
	}
	return max(len(j), len(y)), nil
}

// encodeYAML writes documents with two-space indentation, separated by
// "---". Field order is the struct's, so the bytes depend only on values.
func encodeYAML(docs ...any) ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, err
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// MirrorSets renders the requested kind (spec.ObjectIDMS, ObjectITMS or
// ObjectICSP) as a multi-document YAML file, or nil when the set has no
// image that kind applies to. ImageContentSourcePolicy carries the digest
// entries without mirrorSourcePolicy, which it cannot express.
func (s *Set) MirrorSets(kind string, opts Options) ([]byte, error) {
	opts = withDefaults(opts)
	var es []entry
	switch kind {
	case spec.ObjectIDMS:
		es = s.entries(true, s.Mirror.MirrorSourcePolicy)
	case spec.ObjectITMS:
		es = s.entries(false, s.Mirror.MirrorSourcePolicy)
	case spec.ObjectICSP:
		es = s.entries(true, "")
	default:
		return nil, fmt.Errorf("unknown mirror object kind %q", kind)
	}
	objs, err := objects(kind, es, opts)
	if err != nil || len(objs) == 0 {
		return nil, err
	}
	docs := make([]any, len(objs))
	for i := range objs {
		docs[i] = objs[i]
	}
	return encodeYAML(docs...)
}

func withDefaults(opts Options) Options {
	d := DefaultOptions()
	if opts.NamePrefix == "" {
		opts.NamePrefix = d.NamePrefix
	}
	if opts.MaxObjectBytes <= 0 {
		opts.MaxObjectBytes = d.MaxObjectBytes
	}
	return opts
}
