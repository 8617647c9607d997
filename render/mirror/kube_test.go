package mirror

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"

	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/spec"
)

// The rendered objects are installed into a real kube-apiserver with the
// real CRDs from openshift/api (testdata/crds): schema validation (source
// and mirror patterns, enums), pruning of unknown fields and the annotation
// size limit are the API server's, not a copy of them.

var mirrorGVRs = map[string]schema.GroupVersionResource{
	spec.ObjectIDMS: {Group: "config.openshift.io", Version: "v1", Resource: "imagedigestmirrorsets"},
	spec.ObjectITMS: {Group: "config.openshift.io", Version: "v1", Resource: "imagetagmirrorsets"},
	spec.ObjectICSP: {Group: "operator.openshift.io", Version: "v1alpha1", Resource: "imagecontentsourcepolicies"},
}

const lastApplied = "kubectl.kubernetes.io/last-applied-configuration"

func skipE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

// create installs every document of a rendered file the way
// `kubectl apply` (client-side) first creates it: with the object's JSON
// in the last-applied annotation. Names get a suffix because the API server
// is shared and the objects are cluster-scoped. It returns the API server's
// error for the first object refused.
func create(t *testing.T, client dynamic.Interface, kind string, data []byte, suffix string) error {
	t.Helper()
	for _, doc := range decodeDocs(t, data) {
		obj := &unstructured.Unstructured{Object: doc}
		if obj.GetKind() != kind {
			t.Fatalf("document of kind %s in the %s file", obj.GetKind(), kind)
		}
		obj.SetName(obj.GetName() + "-" + suffix)
		applied, err := json.Marshal(obj.Object)
		if err != nil {
			t.Fatal(err)
		}
		obj.SetAnnotations(map[string]string{lastApplied: string(applied)})
		res := client.Resource(mirrorGVRs[kind])
		if _, err := res.Create(t.Context(), obj, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("%s %s (%d bytes): %w", kind, obj.GetName(), len(applied), err)
		}
		name := obj.GetName()
		t.Cleanup(func() { _ = res.Delete(t.Context(), name, metav1.DeleteOptions{}) })
		got, err := res.Get(t.Context(), name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		// A field the CRD does not know would be pruned silently.
		if diff := cmp.Diff(doc["spec"], got.Object["spec"]); diff != "" {
			t.Errorf("%s %s: stored spec differs from the rendered one (-rendered +stored):\n%s", kind, name, diff)
		}
		if diff := cmp.Diff(obj.GetLabels(), got.GetLabels()); diff != "" {
			t.Errorf("%s %s: labels (-rendered +stored):\n%s", kind, name, diff)
		}
	}
	return nil
}

func suffix() string { return strings.ToLower(rand.Text()[:8]) }

// TestKubeAcceptsRendered installs every golden case's mirror sets and
// those of the full certified v4.20 catalog (457 real repositories).
func TestKubeAcceptsRendered(t *testing.T) {
	skipE2E(t)
	t.Parallel()
	client := testenv.SharedKube(t).Dynamic()
	cases := map[string]func(t *testing.T) (*Set, Options){}
	for _, name := range goldenCases(t) {
		cases[name] = func(t *testing.T) (*Set, Options) { return loadGolden(t, name) }
	}
	if !testing.Short() {
		cases["large-certified-v4.20"] = func(t *testing.T) (*Set, Options) {
			set, _, _ := largeSet(t, DefaultOptions())
			return set, DefaultOptions()
		}
	}
	for name, load := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			set, opts := load(t)
			files, err := set.Files(opts)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, kind := range []string{spec.ObjectIDMS, spec.ObjectITMS, spec.ObjectICSP} {
				if data := files[ObjectFile(kind)]; data != nil {
					n++
					if err := create(t, client, kind, data, suffix()); err != nil {
						t.Error(err)
					}
				}
			}
			if n == 0 {
				t.Fatal("no mirror object rendered")
			}
		})
	}
}

// TestKubeSizeLimit shows that splitting is needed and sufficient: a set
// of 2,000 repositories rendered as one ImageDigestMirrorSet is refused by
// the API server once client-side apply's annotation holds it, and the same
// set split by Ferry is accepted object by object.
func TestKubeSizeLimit(t *testing.T) {
	skipE2E(t)
	t.Parallel()
	client := testenv.SharedKube(t).Dynamic()
	m := &spec.MirrorSpec{Registry: "mirror.example.com:5000/disconnected/ferry", MirrorSourcePolicy: spec.NeverContactSource, Objects: []string{spec.ObjectIDMS}}
	for i := range 2000 {
		m.AdditionalImages = append(m.AdditionalImages, fmt.Sprintf("registry.connect.redhat.com/vendor-%04d/operator-%04d-bundle@%s", i, i, fakeDigest(fmt.Sprint(i))))
	}
	set, err := Build(Input{Mirror: m})
	if err != nil {
		t.Fatal(err)
	}

	whole, err := set.MirrorSets(spec.ObjectIDMS, Options{MaxObjectBytes: 10 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if docs := splitDocs(whole); len(docs) != 1 || len(whole) <= 262144 {
		t.Fatalf("the unsplit control is %d document(s) of %d bytes: want one over 262144", len(docs), len(whole))
	}
	err = create(t, client, spec.ObjectIDMS, whole, suffix())
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "metadata.annotations") {
		t.Fatalf("unsplit object: got %v, want Invalid metadata.annotations: Too long", err)
	}

	split, err := set.MirrorSets(spec.ObjectIDMS, DefaultOptions())
	if err != nil {
		t.Fatal(err)
	}
	docs := splitDocs(split)
	if len(docs) < 2 {
		t.Fatalf("split into %d object(s)", len(docs))
	}
	t.Logf("%d bytes in one object; split: %d objects", len(whole), len(docs))
	if err := create(t, client, spec.ObjectIDMS, split, suffix()); err != nil {
		t.Fatal(err)
	}
}

// TestKubeRejectsBadSource is the control for TestKubeAcceptsRendered: the
// same path through create refuses what the CRD forbids, so acceptance
// above means something.
func TestKubeRejectsBadSource(t *testing.T) {
	skipE2E(t)
	t.Parallel()
	client := testenv.SharedKube(t).Dynamic()
	bad := []byte("apiVersion: config.openshift.io/v1\nkind: ImageDigestMirrorSet\nmetadata:\n  name: bad\nspec:\n  imageDigestMirrors:\n    - source: quay.io/a/b@sha256:" + strings.Repeat("0", 64) + "\n      mirrors:\n        - mirror.example.com/a/b\n")
	err := create(t, client, spec.ObjectIDMS, bad, suffix())
	if !apierrors.IsInvalid(err) {
		t.Fatalf("a source with a digest: got %v, want Invalid", err)
	}
}
