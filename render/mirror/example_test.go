package mirror_test

import (
	"fmt"
	"os"

	"github.com/ferry-gitops/ferry/internal/fbc"
	"github.com/ferry-gitops/ferry/render/mirror"
	"github.com/ferry-gitops/ferry/spec"
)

// The caller's part of a run: list the tags, resolve them (here a fixed
// answer stands in for a registry), build the set, hand the copy pairs to
// the copy engine, write the files.
func Example() {
	catalog := &fbc.DeclarativeConfig{Bundles: []fbc.Bundle{{
		Schema:  fbc.SchemaBundle,
		Name:    "etcd.v0.9.4",
		Package: "etcd",
		Image:   "quay.io/coreos/etcd-operator@sha256:db563baa8194fcfe39d1df744ed70024b0f1f9e9b55b5923c2f3a413c44dc6b8",
		RelatedImages: []fbc.RelatedImage{
			{Name: "etcd", Image: "quay.io/coreos/etcd:v3.5.0"},
		},
	}}}
	in := mirror.Input{
		Mirror: &spec.MirrorSpec{
			Registry:           "mirror.example.com:5000/ocp",
			MaxPathComponents:  2,
			Objects:            []string{spec.ObjectIDMS, spec.ObjectITMS},
			MirrorSourcePolicy: spec.NeverContactSource,
		},
		Catalogs: []mirror.Catalog{{Name: "community", Config: catalog}},
		Revision: "4b825dc",
	}

	tags, err := mirror.Unresolved(in)
	if err != nil {
		panic(err)
	}
	in.Resolved = map[string]string{}
	for _, ref := range tags { // a registry HEAD per tag, once per run
		in.Resolved[ref] = "sha256:9c6ec8d5b3c8d6c4a1e0b0f8d2a4c1f6e3b5a7d9c1e3f5a7b9d1c3e5f7a9b1d3"
	}

	set, err := mirror.Build(in)
	if err != nil {
		panic(err) // collisions, unresolved tags, invalid references: all at once
	}
	for _, c := range set.CopyPairs() {
		fmt.Println("copy", c.Source, "->", c.Destination)
	}
	files, err := set.Files(mirror.DefaultOptions())
	if err != nil {
		panic(err)
	}
	os.Stdout.Write(files[mirror.IDMSFile])
	// Output:
	// copy quay.io/coreos/etcd-operator@sha256:db563baa8194fcfe39d1df744ed70024b0f1f9e9b55b5923c2f3a413c44dc6b8 -> mirror.example.com:5000/ocp/coreos-etcd-operator:b56e2636
	// copy quay.io/coreos/etcd@sha256:9c6ec8d5b3c8d6c4a1e0b0f8d2a4c1f6e3b5a7d9c1e3f5a7b9d1c3e5f7a9b1d3 -> mirror.example.com:5000/ocp/coreos-etcd:v3.5.0
	// apiVersion: config.openshift.io/v1
	// kind: ImageDigestMirrorSet
	// metadata:
	//   name: ferry-0
	// spec:
	//   imageDigestMirrors:
	//     - source: quay.io/coreos/etcd-operator
	//       mirrors:
	//         - mirror.example.com:5000/ocp/coreos-etcd-operator
	//       mirrorSourcePolicy: NeverContactSource
}
