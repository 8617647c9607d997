package filter

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/spec"
)

// TestFilterKeeps: bundles named in Options.Keep (added by spec.bundles)
// are served whatever the selection, joined to their channel.
func TestFilterKeeps(t *testing.T) {
	// b is a package the spec does not name.
	src := synth(
		synthPkg{name: "a", def: "stable", channels: []synthChannel{
			ch("stable", e("a.v1.0.0", ""), e("a.v1.1.0", "a.v1.0.0"), e("a.v1.2.0", "a.v1.1.0"), e("a.v1.3.0", "a.v1.2.0"), e("a.v1.4.0", "a.v1.3.0")),
			ch("fast", e("a.v1.3.0", ""), e("a.v1.4.0", "a.v1.3.0"), e("a.v2.0.0", "a.v1.4.0")),
		}},
		synthPkg{name: "b", def: "stable", channels: []synthChannel{
			ch("stable", e("b.v1.0.0", ""), e("b.v1.1.0", "b.v1.0.0")),
			ch("candidate", e("b.v1.2.0", "b.v1.1.0")),
		}},
	)
	for _, tc := range []struct {
		name string
		spec spec.CatalogSpec
		keep map[string][]string
		want map[string]shape
	}{
		{
			name: "a bundle below the head keeps the chain from the head down to it",
			spec: pkgs(spec.Package{Name: "a"}),
			keep: map[string][]string{"a": {"a.v1.2.0"}},
			want: map[string]shape{"a": {Default: "stable",
				Channels: map[string][]string{"stable": {"a.v1.2.0", "a.v1.3.0", "a.v1.4.0"}},
				Bundles:  []string{"a.v1.2.0", "a.v1.3.0", "a.v1.4.0"}}},
		},
		{
			name: "a bundle above a range joins it through the chain",
			spec: pkgs(spec.Package{Name: "a", Channels: []spec.Channel{{Name: "stable", MaxVersion: "1.1.0"}}}),
			keep: map[string][]string{"a": {"a.v1.3.0"}},
			want: map[string]shape{"a": {Default: "stable",
				Channels: map[string][]string{"stable": {"a.v1.0.0", "a.v1.1.0", "a.v1.2.0", "a.v1.3.0"}, "fast": {"a.v1.3.0"}},
				Bundles:  []string{"a.v1.0.0", "a.v1.1.0", "a.v1.2.0", "a.v1.3.0"}}},
		},
		{
			name: "a package the spec does not name: its default head and the bundle",
			spec: pkgs(spec.Package{Name: "a"}),
			keep: map[string][]string{"b": {"b.v1.2.0"}},
			want: map[string]shape{
				"a": {Default: "stable", Channels: map[string][]string{"stable": {"a.v1.4.0"}}, Bundles: []string{"a.v1.4.0"}},
				"b": {Default: "stable", Channels: map[string][]string{"stable": {"b.v1.1.0"}, "candidate": {"b.v1.2.0"}}, Bundles: []string{"b.v1.1.0", "b.v1.2.0"}},
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, _, err := FilterWith(src, tc.spec, Options{Keep: tc.keep})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, shapeOf(out)); diff != "" {
				t.Errorf("result (-want +got):\n%s", diff)
			}
			if problems := validateResult(out); len(problems) > 0 {
				t.Errorf("result is invalid: %v", problems)
			}
		})
	}
}
