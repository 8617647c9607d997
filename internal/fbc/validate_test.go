package fbc

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// validBase is a small valid catalog: package foo, channel stable with
// foo.v1.0.0 <- foo.v1.1.0 <- foo.v1.2.0 (the head), and channel fast with
// foo.v1.2.0 only.
func validBase() *DeclarativeConfig {
	cfg := &DeclarativeConfig{
		Packages: []Package{{Schema: SchemaPackage, Name: "foo", DefaultChannel: "stable"}},
		Channels: []Channel{
			{Schema: SchemaChannel, Package: "foo", Name: "stable", Entries: []ChannelEntry{
				{Name: "foo.v1.0.0"},
				{Name: "foo.v1.1.0", Replaces: "foo.v1.0.0"},
				{Name: "foo.v1.2.0", Replaces: "foo.v1.1.0", SkipRange: ">=1.0.0 <1.2.0"},
			}},
			{Schema: SchemaChannel, Package: "foo", Name: "fast", Entries: []ChannelEntry{{Name: "foo.v1.2.0"}}},
		},
	}
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0"} {
		cfg.Bundles = append(cfg.Bundles, testBundle("foo", v))
	}
	return cfg
}

func testBundle(pkg, version string) Bundle {
	return Bundle{
		Schema:     SchemaBundle,
		Name:       pkg + ".v" + version,
		Package:    pkg,
		Image:      "quay.io/example/" + pkg + "-bundle:v" + version,
		Properties: []Property{packageProperty(pkg, version)},
	}
}

func packageProperty(pkg, version string) Property {
	v, _ := json.Marshal(PackageProperty{PackageName: pkg, Version: version})
	return Property{Type: PropertyPackage, Value: v}
}

func (cfg *DeclarativeConfig) testBundle(name string) *Bundle {
	for i := range cfg.Bundles {
		if cfg.Bundles[i].Name == name {
			return &cfg.Bundles[i]
		}
	}
	panic("no bundle " + name)
}

func (cfg *DeclarativeConfig) testChannel(name string) *Channel {
	for i := range cfg.Channels {
		if cfg.Channels[i].Name == name {
			return &cfg.Channels[i]
		}
	}
	panic("no channel " + name)
}

func (c *Channel) testEntry(name string) *ChannelEntry {
	for i := range c.Entries {
		if c.Entries[i].Name == name {
			return &c.Entries[i]
		}
	}
	panic("no entry " + name)
}

// validationCase breaks validBase in one way. want lists the problem codes
// Check must report (exactly); warn the warning codes. The e2e test checks
// that real opm agrees: it rejects every case with problems and accepts the
// others.
type validationCase struct {
	name  string
	edit  func(*DeclarativeConfig)
	want  []Code
	warn  []Code
	onOPM bool // also run through real opm validate in the e2e test
}

var validationCases = []validationCase{
	{name: "valid", edit: func(*DeclarativeConfig) {}, onOPM: true},
	{name: "missing default channel", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.Packages[0].DefaultChannel = "beta" },
		want: []Code{CodeMissingDefault}},
	{name: "no default channel", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.Packages[0].DefaultChannel = "" },
		want: []Code{CodeNoDefaultChannel}},
	{name: "two heads", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			ch := c.testChannel("stable")
			ch.Entries = append(ch.Entries, ChannelEntry{Name: "foo.v2.0.0"})
			c.Bundles = append(c.Bundles, testBundle("foo", "2.0.0"))
		},
		want: []Code{CodeMultipleHeads}},
	{name: "no head", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.testChannel("stable").testEntry("foo.v1.0.0").Replaces = "foo.v1.2.0" },
		want: []Code{CodeNoHead}},
	{name: "replaces cycle", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.testChannel("stable").testEntry("foo.v1.0.0").Replaces = "foo.v1.1.0" },
		want: []Code{CodeReplacesCycle}},
	{name: "stranded bundle", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			// foo.v1.0.5 is only reachable from foo.v1.1.5, which the head skips.
			ch := c.testChannel("stable")
			ch.testEntry("foo.v1.2.0").Skips = []string{"foo.v1.1.5"}
			ch.Entries = append(ch.Entries,
				ChannelEntry{Name: "foo.v1.1.5", Replaces: "foo.v1.0.5"},
				ChannelEntry{Name: "foo.v1.0.5"})
			c.Bundles = append(c.Bundles, testBundle("foo", "1.1.5"), testBundle("foo", "1.0.5"))
		},
		want: []Code{CodeStranded}},
	{name: "bad skipRange", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.testChannel("stable").testEntry("foo.v1.2.0").SkipRange = ">=1.0.0 <<1.2.0"
		},
		want: []Code{CodeSkipRange}},
	{name: "duplicate version", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.testBundle("foo.v1.1.0").Properties = []Property{packageProperty("foo", "1.0.0")}
		},
		want: []Code{CodeDuplicateVersion}},
	{name: "no olm.package property", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.testBundle("foo.v1.1.0").Properties = nil },
		want: []Code{CodePackageProperty}},
	{name: "two olm.package properties", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			b := c.testBundle("foo.v1.1.0")
			b.Properties = append(b.Properties, packageProperty("foo", "1.1.0"))
		},
		want: []Code{CodePackageProperty}},
	{name: "olm.package property of another package", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.testBundle("foo.v1.1.0").Properties = []Property{packageProperty("bar", "1.1.0")}
		},
		want: []Code{CodePackageProperty}},
	{name: "malformed property", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			b := c.testBundle("foo.v1.1.0")
			b.Properties = append(b.Properties, Property{Type: PropertyGVK, Value: json.RawMessage(`{"group":1}`)})
		},
		want: []Code{CodeProperty}},
	{name: "bad version", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.testBundle("foo.v1.1.0").Properties = []Property{packageProperty("foo", "1.1")}
		},
		want: []Code{CodeVersion}},
	{name: "bad release", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.testBundle("foo.v1.1.0").Properties = []Property{{Type: PropertyPackage,
				Value: json.RawMessage(`{"packageName":"foo","version":"1.1.0","release":"01"}`)}}
		},
		want: []Code{CodeRelease}},
	{name: "release without normalized name", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.testBundle("foo.v1.1.0").Properties = []Property{{Type: PropertyPackage,
				Value: json.RawMessage(`{"packageName":"foo","version":"1.1.0","release":"2"}`)}}
		},
		want: []Code{CodeBundleName}},
	{name: "entry without bundle", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			ch := c.testChannel("stable")
			ch.Entries = append(ch.Entries, ChannelEntry{Name: "foo.v1.3.0", Replaces: "foo.v1.2.0"})
		},
		want: []Code{CodeEntryWithoutBundle}},
	{name: "entry without bundle in first channel", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			// opm's ConvertToModel only cross-checks the last channel it reads
			// of each package; model validation catches the others.
			ch := c.testChannel("fast")
			ch.Entries = []ChannelEntry{{Name: "foo.v1.3.0", Replaces: "foo.v1.2.0"}, {Name: "foo.v1.2.0"}}
			slices.Reverse(c.Channels)
		},
		want: []Code{CodeEntryWithoutBundle}},
	{name: "bundle in no channel", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.Bundles = append(c.Bundles, testBundle("foo", "3.0.0")) },
		want: []Code{CodeBundleNotInChannel}},
	{name: "duplicate bundle", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.Bundles = append(c.Bundles, testBundle("foo", "1.0.0")) },
		want: []Code{CodeDuplicateBundle}},
	{name: "missing image", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.testBundle("foo.v1.1.0").Image = "" },
		want: []Code{CodeMissingImage}},
	{name: "image with bundle objects", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			b := c.testBundle("foo.v1.1.0")
			b.Image = ""
			b.Properties = append(b.Properties, Property{Type: PropertyBundleObject,
				Value: json.RawMessage(`{"data":"eyJraW5kIjoiQ29uZmlnTWFwIn0="}`)})
		}},
	{name: "invalid image", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.testBundle("foo.v1.1.0").Image = "quay.io/Example/Foo:v1" },
		want: []Code{CodeImage}},
	{name: "invalid related image", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.testBundle("foo.v1.1.0").RelatedImages = []RelatedImage{{Name: "op", Image: "quay.io/x/y@sha256:123"}}
		},
		want: []Code{CodeImage}},
	{name: "empty channel", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.Channels = append(c.Channels, Channel{Schema: SchemaChannel, Package: "foo", Name: "empty", Entries: []ChannelEntry{}})
		},
		want: []Code{CodeEmptyChannel}},
	{name: "duplicate channel", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.Channels = append(c.Channels, c.Channels[1]) },
		want: []Code{CodeDuplicateChannel}},
	{name: "duplicate entry", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			ch := c.testChannel("fast")
			ch.Entries = append(ch.Entries, ch.Entries[0])
		},
		want: []Code{CodeDuplicateEntry}},
	{name: "empty skip", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.testChannel("stable").testEntry("foo.v1.2.0").Skips = []string{""} },
		want: []Code{CodeEmptySkip}},
	{name: "channel of unknown package", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.Channels = append(c.Channels, Channel{Schema: SchemaChannel, Package: "bar", Name: "stable", Entries: []ChannelEntry{{Name: "bar.v1"}}})
		},
		want: []Code{CodeUnknownPackage}},
	{name: "bad package name", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.Packages = append(c.Packages, Package{Schema: SchemaPackage, Name: "Bar", DefaultChannel: "stable"})
			c.Channels = append(c.Channels, Channel{Schema: SchemaChannel, Package: "Bar", Name: "stable", Entries: []ChannelEntry{{Name: "Bar.v1.0.0"}}})
			b := testBundle("Bar", "1.0.0")
			b.Image = "quay.io/example/bar-bundle:v1.0.0"
			c.Bundles = append(c.Bundles, b)
		},
		want: []Code{CodePackageName}},
	{name: "deprecations", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.Deprecations = []Deprecation{{Schema: SchemaDeprecations, Package: "foo", Entries: []DeprecationEntry{
				{Reference: PackageScopedReference{Schema: SchemaPackage}, Message: "use bar"},
				{Reference: PackageScopedReference{Schema: SchemaChannel, Name: "fast"}, Message: "gone"},
				{Reference: PackageScopedReference{Schema: SchemaBundle, Name: "foo.v1.0.0"}, Message: "broken"},
			}}}
		}},
	{name: "deprecation of unknown bundle", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.Deprecations = []Deprecation{{Schema: SchemaDeprecations, Package: "foo", Entries: []DeprecationEntry{
				{Reference: PackageScopedReference{Schema: SchemaBundle, Name: "foo.v9.0.0"}, Message: "x"},
			}}}
		},
		want: []Code{CodeDeprecation}},
	{name: "two deprecations", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			d := Deprecation{Schema: SchemaDeprecations, Package: "foo", Entries: []DeprecationEntry{
				{Reference: PackageScopedReference{Schema: SchemaPackage}, Message: "x"}}}
			c.Deprecations = []Deprecation{d, d}
		},
		want: []Code{CodeDeprecation}},
	{name: "deprecation without message", onOPM: true,
		edit: func(c *DeclarativeConfig) {
			c.Deprecations = []Deprecation{{Schema: SchemaDeprecations, Package: "foo", Entries: []DeprecationEntry{
				{Reference: PackageScopedReference{Schema: SchemaChannel, Name: "fast"}}}}}
		},
		want: []Code{CodeDeprecation}},
	{name: "dangling replaces", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.testChannel("stable").testEntry("foo.v1.0.0").Replaces = "foo.v0.9.0" },
		warn: []Code{CodeDanglingReplaces}},
	{name: "replaces bundle of another channel", onOPM: true,
		edit: func(c *DeclarativeConfig) { c.testChannel("fast").testEntry("foo.v1.2.0").Replaces = "foo.v1.1.0" },
		warn: []Code{CodeDanglingReplaces}},
	{name: "several problems at once",
		edit: func(c *DeclarativeConfig) {
			c.Packages[0].DefaultChannel = "beta"
			c.testChannel("stable").testEntry("foo.v1.2.0").SkipRange = "nope"
			c.testBundle("foo.v1.1.0").Image = ""
		},
		want: []Code{CodeMissingDefault, CodeMissingImage, CodeSkipRange}},
}

func codes(ps []Problem) []Code {
	var out []Code
	for _, p := range ps {
		out = append(out, p.Code)
	}
	slices.Sort(out)
	return out
}

func TestCheck(t *testing.T) {
	for _, tc := range validationCases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := validBase()
			tc.edit(cfg)
			r := Check(cfg)
			want := slices.Clone(tc.want)
			slices.Sort(want)
			if diff := cmp.Diff(want, codes(r.Problems)); diff != "" {
				t.Errorf("problem codes (-want +got):\n%s\nproblems: %v", diff, r.Problems)
			}
			if diff := cmp.Diff(tc.warn, codes(r.Warnings)); diff != "" {
				t.Errorf("warning codes (-want +got):\n%s\nwarnings: %v", diff, r.Warnings)
			}
			err := Validate(cfg)
			var verr *ValidationError
			switch {
			case len(tc.want) == 0 && err != nil:
				t.Errorf("Validate: %v", err)
			case len(tc.want) > 0 && !errors.As(err, &verr):
				t.Errorf("Validate returned %v, want a *ValidationError", err)
			}
		})
	}
}

func TestValidationErrorNamesEverything(t *testing.T) {
	cfg := validBase()
	cfg.Packages[0].DefaultChannel = "beta"
	cfg.testChannel("stable").testEntry("foo.v1.2.0").SkipRange = "nope"
	err := Validate(cfg)
	want := `invalid catalog: 2 problem(s)
  package "foo" channel "beta": default channel "beta" not found in channels
  package "foo" channel "stable" bundle "foo.v1.2.0": invalid skipRange "nope": Could not get version from string: "nope"`
	if err == nil || err.Error() != want {
		t.Errorf("got\n%v\nwant\n%s", err, want)
	}
	var verr *ValidationError
	if !errors.As(err, &verr) || !verr.Has(CodeSkipRange) || verr.Has(CodeStranded) {
		t.Errorf("Has does not report the right codes: %#v", verr)
	}
}

func TestValidateRealCatalogs(t *testing.T) {
	for _, dir := range allCatalogDirs(t) {
		if err := Validate(mustLoadDir(t, dir)); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
	}
}

func ExampleValidate() {
	cfg := &DeclarativeConfig{
		Packages: []Package{{Schema: SchemaPackage, Name: "foo", DefaultChannel: "stable"}},
		Channels: []Channel{{Schema: SchemaChannel, Package: "foo", Name: "stable", Entries: []ChannelEntry{
			{Name: "foo.v1.0.0"}, {Name: "foo.v2.0.0"},
		}}},
		Bundles: []Bundle{testBundle("foo", "1.0.0"), testBundle("foo", "2.0.0")},
	}
	fmt.Println(Validate(cfg))
	// Output:
	// invalid catalog: 1 problem(s)
	//   package "foo" channel "stable": multiple channel heads found in graph: foo.v1.0.0, foo.v2.0.0
}
