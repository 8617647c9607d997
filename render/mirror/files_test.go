package mirror

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"go.yaml.in/yaml/v3"

	"github.com/ferry-gitops/ferry/spec"
)

// TestLockReproducesRun: the lock read back gives the same lock, and its
// Resolved map alone (no resolver) reproduces every output byte for byte.
func TestLockReproducesRun(t *testing.T) {
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			set, opts := loadGolden(t, name)
			files, err := set.Files(opts)
			if err != nil {
				t.Fatal(err)
			}
			lock, err := ReadLock(bytes.NewReader(files[LockFile]))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(set.Lock(), lock); diff != "" {
				t.Errorf("lock read back (-written +read):\n%s", diff)
			}

			// Rebuild from the same catalogs with the lock's digests only.
			in, _ := goldenInputFor(t, name)
			in.Resolved = lock.Resolved()
			again, err := Build(in)
			if err != nil {
				t.Fatalf("build from the lock: %v", err)
			}
			files2, err := again.Files(opts)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(files, files2); diff != "" {
				t.Errorf("outputs from the lock differ:\n%s", diff)
			}
		})
	}
	if _, err := ReadLock(strings.NewReader("apiVersion: v1\nkind: ConfigMap\n")); err == nil {
		t.Error("ReadLock accepted a ConfigMap")
	}
	if _, err := ReadLock(strings.NewReader("apiVersion: ferry.dev/v1alpha1\nkind: Lock\nmirror: x\nsurprise: 1\n")); err == nil {
		t.Error("ReadLock accepted an unknown field")
	}
}

// endless is a reader that never ends: what a lock linked to a device, or
// a lying server, gives.
type endless struct{ s string }

func (e endless) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], e.s)
	}
	return n, nil
}

// TestReadLockBounded: a lock that never ends, or is bigger than any image
// set, is refused after lockLimit bytes instead of being read into memory;
// one within the limit still reads.
func TestReadLockBounded(t *testing.T) {
	defer func(n int64) { lockLimit = n }(lockLimit)
	lockLimit = 64 << 10
	head := "apiVersion: ferry.dev/v1alpha1\nkind: Lock\nmirror: m.example.com\nimages:\n"
	item := "  - source: quay.io/a/b:1\n    digest: sha256:0\n    destination: m.example.com/a/b:1\n"
	_, err := ReadLock(io.MultiReader(strings.NewReader(head), endless{item}))
	if !errors.Is(err, ErrLockTooLarge) {
		t.Errorf("endless lock: got %v, want ErrLockTooLarge", err)
	}
	small := head + strings.Repeat(item, 10)
	if l, err := ReadLock(strings.NewReader(small)); err != nil || len(l.Images) != 10 {
		t.Errorf("small lock: %v, %v", l, err)
	}
}

// TestMapping checks mapping.txt's contract: sorted unique SRC=DST lines,
// source by digest, destination by tag under the Mirror, nothing for
// images already in the mirror, and one line per copy pair.
func TestMapping(t *testing.T) {
	for _, name := range goldenCases(t) {
		t.Run(name, func(t *testing.T) {
			set, _ := loadGolden(t, name)
			var b bytes.Buffer
			if err := set.WriteMapping(&b); err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n")
			if !slices.IsSorted(lines) || len(slices.Compact(slices.Clone(lines))) != len(lines) {
				t.Error("lines are not sorted and unique")
			}
			if len(lines) != len(set.CopyPairs()) {
				t.Errorf("%d lines for %d copy pairs", len(lines), len(set.CopyPairs()))
			}
			for _, l := range lines {
				src, dst, ok := strings.Cut(l, "=")
				if !ok || !strings.Contains(src, "@sha256:") || strings.Contains(dst, "@") || !strings.HasPrefix(dst, set.Mirror.Registry+"/") {
					t.Errorf("line %q: want SRC@digest=%s/...:tag", l, set.Mirror.Registry)
				}
				if strings.HasPrefix(src, set.Mirror.Registry+"/") {
					t.Errorf("line %q copies an image already in the mirror", l)
				}
			}
		})
	}
}

// TestObjectsSelection: only the kinds the Mirror asks for are rendered,
// and a kind with nothing to say has no file.
func TestObjectsSelection(t *testing.T) {
	m := &spec.MirrorSpec{Registry: "mirror.example.com", AdditionalImages: []string{"quay.io/a/b@" + dA}}
	for _, tc := range []struct {
		objects []string
		want    []string
	}{
		{nil, []string{IDMSFile}}, // default IDMS + ITMS; no tag images, so no ITMS
		{[]string{spec.ObjectICSP}, []string{ICSPFile}},
		{[]string{spec.ObjectIDMS, spec.ObjectITMS, spec.ObjectICSP}, []string{ICSPFile, IDMSFile}},
	} {
		mm := *m
		mm.Objects = tc.objects
		set, err := Build(Input{Mirror: &mm})
		if err != nil {
			t.Fatal(err)
		}
		files, err := set.Files(DefaultOptions())
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for f := range files {
			if f != MappingFile && f != LockFile {
				got = append(got, f)
			}
		}
		slices.Sort(got)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("objects %v: files (-want +got):\n%s", tc.objects, diff)
		}
	}
}

// TestSplitBoundaries: every object fits, none is empty, entries keep
// their order across objects, and an entry that cannot fit is an error.
func TestSplitBoundaries(t *testing.T) {
	var es []entry
	for i := range 200 {
		es = append(es, entry{Source: "quay.io/ns/repo-" + strings.Repeat("x", i%50) + "-" + string(rune('a'+i%26)), Mirrors: []string{"mirror.example.com/ns/repo"}, MirrorSourcePolicy: spec.NeverContactSource})
	}
	for _, limit := range []int{600, 1000, 4096, 250000} {
		objs, err := objects(spec.ObjectIDMS, es, Options{NamePrefix: "ferry", MaxObjectBytes: limit})
		if err != nil {
			t.Fatalf("limit %d: %v", limit, err)
		}
		var all []entry
		for _, o := range objs {
			n, _ := size(o)
			if n > limit || len(o.Spec.ImageDigestMirrors) == 0 {
				t.Errorf("limit %d: object %s has %d bytes, %d entries", limit, o.Metadata.Name, n, len(o.Spec.ImageDigestMirrors))
			}
			all = append(all, o.Spec.ImageDigestMirrors...)
		}
		if diff := cmp.Diff(es, all); diff != "" {
			t.Errorf("limit %d: entries lost or reordered:\n%s", limit, diff)
		}
	}
	if _, err := objects(spec.ObjectIDMS, es, Options{NamePrefix: "ferry", MaxObjectBytes: 200}); err == nil {
		t.Error("limit below one entry: no error")
	}
}

// FuzzLockScalars: whatever a lock holds reads back as the same string,
// through ReadLock and through a generic YAML decoder (what yq or a
// reviewer's tool sees), so quoting never turns a value into a number,
// bool or null.
func FuzzLockScalars(f *testing.F) {
	for _, s := range []string{"certified", "true", "Y", "ON", "null", "~", "1e3", "0x1f", "0o17", "1:20", "+1", ".inf",
		"2001-12-14", "-", "-x", "x:", "a: b", "#x", "x #y", " lead", "trail ", "\n", "é", `a"b`, `a\b`, "[x]", "{x}",
		"*a", "&a", "!t", "%x", "@x", "`x", "|", ">", "?x", "^937620572175\\.dkr\\.ecr\\.", "quay.io/a/b:v1@sha256:" + strings.Repeat("a", 64)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !utf8.ValidString(s) {
			t.Skip("YAML is UTF-8")
		}
		l := &Lock{APIVersion: LockVersion, Kind: LockKind, Revision: s, Mirror: s, Platforms: []string{s},
			Catalogs: []LockedCatalog{{Name: s, Source: s}},
			Images:   []LockedImage{{Source: s, Digest: s, Destination: s}},
			Blocked:  []LockedBlocked{{Source: s, Pattern: s}}}
		data, err := l.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadLock(bytes.NewReader(data))
		if err != nil {
			t.Fatalf("%q: %v\n%s", s, err, data)
		}
		want := *l
		if s == "" { // empty optional fields are left out
			want.Revision, want.Catalogs[0].Source = "", ""
		}
		if diff := cmp.Diff(&want, got); diff != "" {
			t.Errorf("%q: round trip (-want +got):\n%s\n%s", s, diff, data)
		}
		var generic map[string]any
		if err := yaml.Unmarshal(data, &generic); err != nil {
			t.Fatal(err)
		}
		if v, ok := generic["mirror"].(string); !ok || v != s {
			t.Errorf("%q: a generic decoder reads mirror as %#v\n%s", s, generic["mirror"], data)
		}
	})
}
