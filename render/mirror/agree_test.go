package mirror

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/ferry-gitops/ferry/spec"
)

// TestValidateAgreesWithBuild holds `ferry validate` to what reconcile
// does: for generated Mirrors (registries, namespaces, maxPathComponents,
// keepSourceRegistry) with additional images and built catalogs, spec.Load
// reports a destination conflict exactly when Build, given the same input
// after every registry is read, returns a CollisionError. A conflict found
// only at reconcile time has no file:line and exits 1 after reading every
// registry; one found only by validate refuses a spec that works.
func TestValidateAgreesWithBuild(t *testing.T) {
	rng := rand.New(rand.NewPCG(15, 7)) // fixed: the same cases every run
	hosts := []string{"quay.io", "registry.example.com", "mirror.example.com"}
	paths := []string{"aa", "bb", "aa/bb", "aa-bb", "aa/bb/cc", "aa/bb-cc", "aa-bb/cc", "olm/aa", "olm/aa/bb", "xx/yy/zz"}
	registries := []string{"mirror.example.com", "mirror.example.com/olm", "mirror.example.com/olm/team"}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	agreed, conflicts := 0, 0
	for i := range 400 {
		m := spec.MirrorSpec{Registry: pick(registries), KeepSourceRegistry: rng.IntN(4) == 0}
		depth := strings.Count(m.Registry, "/")
		if rng.IntN(2) == 0 {
			m.MaxPathComponents = depth + 1 + rng.IntN(2)
		}
		seen := map[string]bool{}
		for range 1 + rng.IntN(3) {
			ref := fmt.Sprintf("%s/%s:%d", pick(hosts), pick(paths), 1+rng.IntN(2))
			if !seen[ref] {
				seen[ref] = true
				m.AdditionalImages = append(m.AdditionalImages, ref)
			}
		}
		var targets []string
		if rng.IntN(2) == 0 {
			targets = append(targets, fmt.Sprintf("%s/%s:%d", pick(hosts), pick(paths), 1+rng.IntN(2)))
		}

		// What validate says.
		var doc strings.Builder
		fmt.Fprintf(&doc, "apiVersion: ferry.dev/v1alpha1\nkind: Mirror\nmetadata: {name: m}\nspec:\n  registry: %s\n  keepSourceRegistry: %v\n", m.Registry, m.KeepSourceRegistry)
		if m.MaxPathComponents > 0 {
			fmt.Fprintf(&doc, "  maxPathComponents: %d\n", m.MaxPathComponents)
		}
		fmt.Fprintf(&doc, "  additionalImages: [%s]\n", strings.Join(m.AdditionalImages, ", "))
		for j, target := range targets {
			fmt.Fprintf(&doc, "---\napiVersion: ferry.dev/v1alpha1\nkind: Catalog\nmetadata: {name: c%d}\nspec:\n  source: source.example.com/index:v%d\n  target: %s\n", j, j, target)
		}
		_, err := spec.Load(fstest.MapFS{"spec.yaml": {Data: []byte(doc.String())}}, spec.LoadOptions{})
		var invalid *spec.InvalidError
		if err != nil && !errors.As(err, &invalid) {
			t.Fatal(err)
		}
		validateSays := false
		if invalid != nil {
			for _, p := range invalid.Problems.Errors() {
				if !strings.Contains(p.Message, "would be mirrored to") {
					t.Fatalf("case %d: unexpected problem %s in\n%s", i, p, doc.String())
				}
				validateSays = true
			}
		}

		// What Build says once every tag is resolved.
		in := Input{Mirror: &m}
		for j, target := range targets {
			in.Catalogs = append(in.Catalogs, Catalog{Name: fmt.Sprintf("c%d", j), Target: target, Digest: fakeDigest("built " + target)})
		}
		in.Resolved = resolveAll(t, in)
		_, err = Build(in)
		buildSays := false
		for _, e := range unjoin(err) {
			var ce *CollisionError
			if !errors.As(e, &ce) {
				t.Fatalf("case %d: unexpected error %v", i, e)
			}
			buildSays = true
		}
		if validateSays != buildSays {
			t.Errorf("case %d: validate reports a conflict: %v, Build: %v (%v)\n%s", i, validateSays, buildSays, err, doc.String())
			continue
		}
		agreed++
		if buildSays {
			conflicts++
		}
	}
	t.Logf("%d cases agree, %d of them conflicts", agreed, conflicts)
	if conflicts < 40 {
		t.Errorf("only %d conflicting cases: the generator no longer exercises collisions", conflicts)
	}
}
