package spec

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

// FuzzLoad feeds arbitrary bytes to the loader as one spec file. It must
// never panic, and must either load or explain itself with located
// problems.
func FuzzLoad(f *testing.F) {
	seeds, _ := filepath.Glob("testdata/load/*/*.yaml")
	more, _ := filepath.Glob("../examples/*.yaml")
	isc, _ := filepath.Glob("../testdata/oc-mirror/imageset-configs/v1/docs/examples/*.yaml")
	for _, p := range append(append(seeds, more...), isc...) {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	// Alias-heavy seeds, so mutations explore around the alias limits:
	// nested lists of aliases in free-form and typed fields, aliases
	// nested past the depth limit, a recursive alias, an alias used as a
	// key, aliases in a Ferry kind.
	for _, s := range []string{
		billionLaughs(10),
		billionLaughs(4),
		typedLaughs(50),
		typedLaughs(2),
		"apiVersion: mirror.openshift.io/v1alpha2\nkind: ImageSetConfiguration\nstorageConfig: &s {local: {again: *s}}\nmirror: {}\n",
		"apiVersion: mirror.openshift.io/v1alpha2\nkind: ImageSetConfiguration\nstorageConfig: [&a [x], &b [*a], &c [*b], &d [*c], &e [*d], &f [*e], &g [*f], &h [*g], &i [*h], &j [*i], &k [*j], *k]\nmirror: {}\n",
		"apiVersion: ferry.dev/v1alpha1\nkind: Mirror\nmetadata: {name: &n lab, labels: {*n : *n}}\nspec: {registry: mirror.example.com, additionalImages: &l [quay.io/a/b:1], blockedImages: *l}\n",
		"apiVersion: ferry.dev/v1alpha1\nkind: Catalog\nmetadata: {name: c}\nspec: {source: &s registry.example.com/a/b:1, base: *s, bundles: [*s, *s], packages: [&p {name: x, channels: [&c {name: a}, *c]}, *p]}\n",
		"---\n---\n# only comments\n---\n~\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Load(fstest.MapFS{"spec.yaml": {Data: data}}, LoadOptions{})
		if err == nil {
			if cfg == nil {
				t.Fatal("nil config without error")
			}
			return
		}
		var invalid *InvalidError
		if !errors.As(err, &invalid) {
			t.Fatalf("error is not *InvalidError: %v", err)
		}
		if len(invalid.Problems.Errors()) == 0 {
			t.Fatal("InvalidError without an error-severity problem")
		}
		for _, p := range invalid.Problems {
			if p.File != "spec.yaml" || p.Message == "" {
				t.Fatalf("problem without file or message: %#v", p)
			}
		}
	})
}
