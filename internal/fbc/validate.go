package fbc

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/blang/semver/v4"
	"github.com/distribution/reference"
	sigsyaml "sigs.k8s.io/yaml"
)

// Code names a kind of validation problem.
type Code string

// The problems Validate reports; together they are what `opm validate`
// (declcfg.ConvertToModel and model.Validate in operator-registry) rejects.
const (
	CodePackageName        Code = "package-name"         // empty, or not a DNS-1123 label
	CodeDuplicatePackage   Code = "duplicate-package"    // two olm.package blobs with one name
	CodeUnknownPackage     Code = "unknown-package"      // a blob names a package that has no olm.package blob
	CodeNoDefaultChannel   Code = "no-default-channel"   // defaultChannel is empty
	CodeMissingDefault     Code = "missing-default"      // defaultChannel names no channel of the package
	CodeNoChannels         Code = "no-channels"          // a package without channels
	CodeChannelName        Code = "channel-name"         // empty channel name
	CodeDuplicateChannel   Code = "duplicate-channel"    // two olm.channel blobs with one name in a package
	CodeDuplicateEntry     Code = "duplicate-entry"      // a bundle listed twice in one channel
	CodeEmptyChannel       Code = "empty-channel"        // a channel without entries
	CodeEntryWithoutBundle Code = "entry-without-bundle" // a channel entry no olm.bundle blob backs
	CodeBundleNotInChannel Code = "bundle-not-in-channel"
	CodeBundleName         Code = "bundle-name"      // empty, or not <package>-v<version>-<release> when a release is set
	CodeDuplicateBundle    Code = "duplicate-bundle" // two olm.bundle blobs with one name in a package
	CodeNoHead             Code = "no-channel-head"  // every entry has an incoming replaces/skips edge
	CodeMultipleHeads      Code = "multiple-channel-heads"
	CodeReplacesCycle      Code = "replaces-cycle"
	CodeStranded           Code = "stranded-bundles" // neither on the replaces chain from the head nor skipped
	CodeEmptySkip          Code = "empty-skip"
	CodeSkipRange          Code = "invalid-skip-range"
	CodePackageProperty    Code = "package-property" // not exactly one olm.package property, or one naming another package
	CodeProperty           Code = "invalid-property" // a property value that does not parse as its type
	CodeVersion            Code = "invalid-version"
	CodeRelease            Code = "invalid-release"
	CodeDuplicateVersion   Code = "duplicate-version" // two bundles of a package with one version (and release)
	CodeMissingImage       Code = "missing-image"     // no image and no olm.bundle.object property
	CodeImage              Code = "invalid-image"     // an image or related image that is not a valid pull spec
	CodeDeprecation        Code = "invalid-deprecation"

	// CodeDanglingReplaces is a warning: an entry replaces a bundle that is
	// not in its channel. opm accepts it (real catalogs prune old bundles
	// and keep the edge) and the upgrade chain simply ends there.
	CodeDanglingReplaces Code = "dangling-replaces"
)

// Problem is one validation finding, located by package, channel and bundle
// (empty where they do not apply).
type Problem struct {
	Code    Code
	Package string
	Channel string
	Bundle  string
	Message string
}

func (p Problem) String() string {
	var b strings.Builder
	if p.Package != "" {
		fmt.Fprintf(&b, "package %q ", p.Package)
	}
	if p.Channel != "" {
		fmt.Fprintf(&b, "channel %q ", p.Channel)
	}
	if p.Bundle != "" {
		fmt.Fprintf(&b, "bundle %q ", p.Bundle)
	}
	if b.Len() > 0 {
		return strings.TrimSuffix(b.String(), " ") + ": " + p.Message
	}
	return p.Message
}

// ValidationError is every problem Validate found.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "invalid catalog: %d problem(s)", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteString("\n  ")
		b.WriteString(p.String())
	}
	return b.String()
}

// Has reports whether a problem with code c was found.
func (e *ValidationError) Has(c Code) bool {
	return slices.ContainsFunc(e.Problems, func(p Problem) bool { return p.Code == c })
}

// Report is the full result of Check.
type Report struct {
	Problems []Problem // what makes opm reject the catalog
	Warnings []Problem // what opm accepts but deserves a look
}

// Err returns a *ValidationError listing r.Problems, or nil.
func (r *Report) Err() error {
	if len(r.Problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: r.Problems}
}

// Validate checks cfg with the rules `opm validate` applies and returns nil
// or a *ValidationError with every problem at once.
func Validate(cfg *DeclarativeConfig) error {
	return Check(cfg).Err()
}

// Check validates cfg like Validate and also returns warnings. Problems and
// warnings are sorted by package, channel, bundle and code.
func Check(cfg *DeclarativeConfig) *Report {
	v := validator{pkgs: map[string]*vPackage{}}
	v.packages(cfg.Packages)
	v.channels(cfg.Channels)
	v.bundles(cfg.Bundles)
	v.deprecations(cfg.Deprecations)
	for _, name := range sortedKeys(v.pkgs) {
		v.model(v.pkgs[name])
	}
	sortProblems(v.report.Problems)
	sortProblems(v.report.Warnings)
	return &v.report
}

func sortProblems(ps []Problem) {
	slices.SortStableFunc(ps, func(a, b Problem) int {
		return cmp.Or(cmp.Compare(a.Package, b.Package), cmp.Compare(a.Channel, b.Channel),
			cmp.Compare(a.Bundle, b.Bundle), cmp.Compare(a.Code, b.Code), cmp.Compare(a.Message, b.Message))
	})
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

type validator struct {
	pkgs   map[string]*vPackage
	report Report
}

type vPackage struct {
	pkg         *Package
	channels    map[string]*vChannel
	bundles     map[string]*vBundle
	inChannels  map[string]bool // bundle names listed by some channel
	deprecation bool
}

type vChannel struct {
	ch      *Channel
	entries map[string]*ChannelEntry
}

type vBundle struct {
	b           *Bundle
	version     semver.Version
	release     []semver.PRVersion
	versionOK   bool
	hasObjects  bool
	propertyErr bool
}

func (v *validator) add(c Code, pkg, ch, bundle, format string, args ...any) {
	v.report.Problems = append(v.report.Problems, Problem{Code: c, Package: pkg, Channel: ch, Bundle: bundle, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) warn(c Code, pkg, ch, bundle, format string, args ...any) {
	v.report.Warnings = append(v.report.Warnings, Problem{Code: c, Package: pkg, Channel: ch, Bundle: bundle, Message: fmt.Sprintf(format, args...)})
}

func (v *validator) packages(pkgs []Package) {
	for i := range pkgs {
		p := &pkgs[i]
		switch {
		case p.Name == "":
			v.add(CodePackageName, "", "", "", "an olm.package blob has no name")
			continue
		case v.pkgs[p.Name] != nil:
			v.add(CodeDuplicatePackage, p.Name, "", "", "more than one olm.package blob")
			continue
		}
		if msg := dns1123Label(p.Name); msg != "" {
			v.add(CodePackageName, p.Name, "", "", "invalid package name: %s", msg)
		}
		v.pkgs[p.Name] = &vPackage{
			pkg:        p,
			channels:   map[string]*vChannel{},
			bundles:    map[string]*vBundle{},
			inChannels: map[string]bool{},
		}
	}
}

// dns1123Label is k8s.io/apimachinery's IsDNS1123Label, which opm applies to
// package names.
func dns1123Label(s string) string {
	if len(s) > 63 {
		return "must be no more than 63 characters"
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && (c != '-' || i == 0 || i == len(s)-1) {
			return "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character"
		}
	}
	return ""
}

func (v *validator) channels(chs []Channel) {
	for i := range chs {
		c := &chs[i]
		p := v.pkgs[c.Package]
		switch {
		case p == nil:
			v.add(CodeUnknownPackage, c.Package, c.Name, "", "channel of a package that has no olm.package blob")
			continue
		case c.Name == "":
			v.add(CodeChannelName, c.Package, "", "", "an olm.channel blob has no name")
			continue
		case p.channels[c.Name] != nil:
			v.add(CodeDuplicateChannel, c.Package, c.Name, "", "more than one olm.channel blob")
			continue
		}
		vc := &vChannel{ch: c, entries: map[string]*ChannelEntry{}}
		for j := range c.Entries {
			e := &c.Entries[j]
			if vc.entries[e.Name] != nil {
				v.add(CodeDuplicateEntry, c.Package, c.Name, e.Name, "listed more than once")
				continue
			}
			vc.entries[e.Name] = e
			p.inChannels[e.Name] = true
		}
		p.channels[c.Name] = vc
	}
}

func (v *validator) bundles(bs []Bundle) {
	for i := range bs {
		b := &bs[i]
		p := v.pkgs[b.Package]
		switch {
		case b.Package == "":
			v.add(CodeUnknownPackage, "", "", b.Name, "an olm.bundle blob has no package")
			continue
		case p == nil:
			v.add(CodeUnknownPackage, b.Package, "", b.Name, "bundle of a package that has no olm.package blob")
			continue
		case p.bundles[b.Name] != nil:
			v.add(CodeDuplicateBundle, b.Package, "", b.Name, "more than one olm.bundle blob")
			continue
		}
		vb := &vBundle{b: b}
		p.bundles[b.Name] = vb
		if b.Name == "" {
			v.add(CodeBundleName, b.Package, "", "", "an olm.bundle blob has no name")
		}
		v.bundleProperties(vb)
		if b.Image != "" {
			if _, err := reference.ParseNormalizedNamed(b.Image); err != nil {
				v.add(CodeImage, b.Package, "", b.Name, "invalid image pull spec %q: %v", b.Image, err)
			}
		} else if !vb.hasObjects {
			v.add(CodeMissingImage, b.Package, "", b.Name, "bundle image must be set (or the bundle carry olm.bundle.object properties)")
		}
		for j, ri := range b.RelatedImages {
			if ri.Image == "" {
				continue
			}
			if _, err := reference.ParseNormalizedNamed(ri.Image); err != nil {
				v.add(CodeImage, b.Package, "", b.Name, "relatedImages[%d]: invalid image pull spec %q: %v", j, ri.Image, err)
			}
		}
		if !p.inChannels[b.Name] {
			v.add(CodeBundleNotInChannel, b.Package, "", b.Name, "bundle is in no channel")
		}
	}
}

// Property value shapes opm decodes (operator-registry alpha/property).
type (
	propPackage struct {
		PackageName string `json:"packageName"`
		Version     string `json:"version"`
		Release     string `json:"release"`
	}
	propPackageRequired struct {
		PackageName  string `json:"packageName"`
		VersionRange string `json:"versionRange"`
	}
	propGVK struct {
		Group   string `json:"group"`
		Kind    string `json:"kind"`
		Version string `json:"version"`
	}
	propBundleObject struct {
		Data []byte `json:"data"`
	}
	propChannel struct {
		ChannelName string `json:"channelName"`
		Priority    int    `json:"priority"`
	}
	// propCSVMetadata checks the scalar and list fields of olm.csv.metadata;
	// the nested CRD and API service descriptions are only required to be
	// JSON objects.
	propCSVMetadata struct {
		Annotations           map[string]string `json:"annotations"`
		APIServiceDefinitions map[string]any    `json:"apiServiceDefinitions"`
		CRDDescriptions       map[string]any    `json:"crdDescriptions"`
		Description           string            `json:"description"`
		DisplayName           string            `json:"displayName"`
		InstallModes          []struct {
			Type      string `json:"type"`
			Supported bool   `json:"supported"`
		} `json:"installModes"`
		Keywords []string          `json:"keywords"`
		Labels   map[string]string `json:"labels"`
		Links    []struct {
			Name string `json:"name"`
			URL  string `json:"url"`
		} `json:"links"`
		Maintainers []struct {
			Name  string `json:"name"`
			Email string `json:"email"`
		} `json:"maintainers"`
		Maturity       string `json:"maturity"`
		MinKubeVersion string `json:"minKubeVersion"`
		NativeAPIs     []struct {
			Group   string `json:"group"`
			Version string `json:"version"`
			Kind    string `json:"kind"`
		} `json:"nativeAPIs"`
		Provider struct {
			Name string `json:"name"`
			URL  string `json:"url"`
		} `json:"provider"`
	}
)

func (v *validator) bundleProperties(vb *vBundle) {
	b := vb.b
	var pkgs []propPackage
	for i, prop := range b.Properties {
		var err error
		switch prop.Type {
		case PropertyPackage:
			var pp propPackage
			if err = json.Unmarshal(prop.Value, &pp); err == nil {
				pkgs = append(pkgs, pp)
			}
		case PropertyPackageRequired:
			var pr propPackageRequired
			err = json.Unmarshal(prop.Value, &pr)
		case PropertyGVK, PropertyGVKRequired:
			var g propGVK
			err = json.Unmarshal(prop.Value, &g)
		case PropertyBundleObject:
			var o propBundleObject
			if err = json.Unmarshal(prop.Value, &o); err == nil {
				vb.hasObjects = true
				// opm converts each object to JSON when it loads the catalog.
				if _, yerr := sigsyaml.YAMLToJSON(o.Data); yerr != nil {
					err = fmt.Errorf("object is not YAML or JSON: %v", yerr)
				}
			}
		case PropertyCSVMetadata:
			var m propCSVMetadata
			err = json.Unmarshal(prop.Value, &m)
		case "olm.channel":
			var c propChannel
			err = json.Unmarshal(prop.Value, &c)
		default:
			var raw json.RawMessage
			err = json.Unmarshal(prop.Value, &raw)
		}
		if err != nil {
			vb.propertyErr = true
			v.add(CodeProperty, b.Package, "", b.Name, "property %d (%s): %v", i, prop.Type, err)
		}
	}
	if vb.propertyErr {
		return
	}
	if len(pkgs) != 1 {
		v.add(CodePackageProperty, b.Package, "", b.Name, "must have exactly one %q property, found %d", PropertyPackage, len(pkgs))
		return
	}
	pp := pkgs[0]
	if pp.PackageName != b.Package {
		v.add(CodePackageProperty, b.Package, "", b.Name, "%q property names package %q", PropertyPackage, pp.PackageName)
	}
	ver, err := semver.Parse(pp.Version)
	if err != nil {
		v.add(CodeVersion, b.Package, "", b.Name, "invalid version %q: %v", pp.Version, err)
		return
	}
	rel, err := parseRelease(pp.Release)
	if err != nil {
		v.add(CodeRelease, b.Package, "", b.Name, "%v", err)
		return
	}
	vb.version, vb.release, vb.versionOK = ver, rel, true
	if len(ver.Build) > 0 && len(rel) > 0 {
		v.add(CodeVersion, b.Package, "", b.Name, "cannot use build metadata in version with a release version")
	}
	if len(rel) > 0 {
		if want := b.Package + "-v" + vb.versionString(); b.Name != want {
			v.add(CodeBundleName, b.Package, "", b.Name, "name %q does not match normalized name %q", b.Name, want)
		}
	}
}

// parseRelease is operator-registry's model.NewRelease.
func parseRelease(s string) ([]semver.PRVersion, error) {
	if s == "" {
		return nil, nil
	}
	if len(s) > 20 {
		return nil, fmt.Errorf("invalid release %q: exceeds maximum length of 20 characters", s)
	}
	var out []semver.PRVersion
	var errs []error
	for i, seg := range strings.Split(s, ".") {
		pr, err := semver.NewPRVersion(seg)
		if err != nil {
			errs = append(errs, fmt.Errorf("segment %d: %v", i, err))
			continue
		}
		out = append(out, pr)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("invalid release %q: %v", s, err)
	}
	return out, nil
}

// versionString is operator-registry's Bundle.VersionString: the version,
// then "-" and the release when there is one.
func (vb *vBundle) versionString() string {
	if len(vb.release) == 0 {
		return vb.version.String()
	}
	parts := make([]string, len(vb.release))
	for i, pr := range vb.release {
		parts[i] = pr.String()
	}
	return vb.version.String() + "-" + strings.Join(parts, ".")
}

func (v *validator) deprecations(deps []Deprecation) {
	for i := range deps {
		d := &deps[i]
		p := v.pkgs[d.Package]
		switch {
		case d.Package == "":
			v.add(CodeDeprecation, "", "", "", "an olm.deprecations blob has no package")
			continue
		case p == nil:
			v.add(CodeUnknownPackage, d.Package, "", "", "deprecations for a package that has no olm.package blob")
			continue
		case p.deprecation:
			v.add(CodeDeprecation, d.Package, "", "", "more than one olm.deprecations blob")
			continue
		}
		p.deprecation = true
		seen := map[PackageScopedReference]bool{}
		for j, e := range d.Entries {
			ref := e.Reference
			if ref.Schema == "" {
				v.add(CodeDeprecation, d.Package, "", "", "entry %d: reference schema must be set", j)
				continue
			}
			if seen[ref] {
				v.add(CodeDeprecation, d.Package, "", "", "entry %d: duplicate reference to %s %q", j, ref.Schema, ref.Name)
				continue
			}
			seen[ref] = true
			var ch, bundle string
			switch ref.Schema {
			case SchemaBundle:
				bundle = ref.Name
				if p.bundles[ref.Name] == nil {
					v.add(CodeDeprecation, d.Package, "", ref.Name, "cannot deprecate bundle %q: bundle not found", ref.Name)
					continue
				}
			case SchemaChannel:
				ch = ref.Name
				if p.channels[ref.Name] == nil {
					v.add(CodeDeprecation, d.Package, ref.Name, "", "cannot deprecate channel %q: channel not found", ref.Name)
					continue
				}
			case SchemaPackage:
				if ref.Name != "" {
					v.add(CodeDeprecation, d.Package, "", "", "entry %d: a package reference must not have a name (has %q)", j, ref.Name)
					continue
				}
			default:
				v.add(CodeDeprecation, d.Package, "", "", "entry %d: cannot deprecate an object of schema %q", j, ref.Schema)
				continue
			}
			if e.Message == "" {
				v.add(CodeDeprecation, d.Package, ch, bundle, "deprecation message must be set")
			}
		}
	}
}

// model applies model.Package.Validate and what ConvertToModel checks
// across a package's blobs.
func (v *validator) model(p *vPackage) {
	name := p.pkg.Name
	switch {
	case p.pkg.DefaultChannel == "":
		v.add(CodeNoDefaultChannel, name, "", "", "default channel must be set")
	case p.channels[p.pkg.DefaultChannel] == nil:
		v.add(CodeMissingDefault, name, p.pkg.DefaultChannel, "", "default channel %q not found in channels", p.pkg.DefaultChannel)
	}
	if len(p.channels) == 0 {
		v.add(CodeNoChannels, name, "", "", "package must contain at least one channel")
	}

	versions := map[string][]string{} // version string -> bundle names
	for _, chName := range sortedKeys(p.channels) {
		vc := p.channels[chName]
		if len(vc.entries) == 0 {
			v.add(CodeEmptyChannel, name, chName, "", "channel must contain at least one bundle")
			continue
		}
		v.replacesChain(name, vc)
		for _, en := range sortedKeys(vc.entries) {
			e := vc.entries[en]
			for k, s := range e.Skips {
				if s == "" {
					v.add(CodeEmptySkip, name, chName, en, "skips[%d] is empty", k)
				}
			}
			if e.SkipRange != "" {
				if _, err := semver.ParseRange(e.SkipRange); err != nil {
					v.add(CodeSkipRange, name, chName, en, "invalid skipRange %q: %v", e.SkipRange, err)
				}
			}
			vb := p.bundles[en]
			if vb == nil {
				v.add(CodeEntryWithoutBundle, name, chName, en, "channel entry has no olm.bundle blob")
				continue
			}
			if vb.versionOK {
				vs := vb.versionString()
				if !slices.Contains(versions[vs], en) {
					versions[vs] = append(versions[vs], en)
				}
			}
			if e.Replaces != "" && vc.entries[e.Replaces] == nil {
				where := "in the channel"
				if p.bundles[e.Replaces] == nil {
					where = "in the catalog"
				}
				v.warn(CodeDanglingReplaces, name, chName, en, "replaces %q, which is not %s", e.Replaces, where)
			}
		}
	}
	for _, vs := range sortedKeys(versions) {
		if names := versions[vs]; len(names) > 1 {
			slices.Sort(names)
			v.add(CodeDuplicateVersion, name, "", "", "bundles %s share version %s", strings.Join(names, ", "), vs)
		}
	}
}

// replacesChain is operator-registry's Channel.Head and
// validateReplacesChain: exactly one entry without incoming replaces/skips
// edges; following replaces from it (stopping at a skipped entry) must not
// loop; and every entry must be on that chain or skipped.
func (v *validator) replacesChain(pkg string, vc *vChannel) {
	ch := vc.ch.Name
	skipped := map[string]bool{}
	for _, e := range vc.entries {
		for _, s := range e.Skips {
			skipped[s] = true
		}
	}
	heads := ChannelHeads(vc.ch.Entries)
	switch len(heads) {
	case 0:
		v.add(CodeNoHead, pkg, ch, "", "no channel head found in graph")
		return
	case 1:
	default:
		v.add(CodeMultipleHeads, pkg, ch, "", "multiple channel heads found in graph: %s", strings.Join(heads, ", "))
		return
	}

	chain := map[string]bool{heads[0]: true}
	path := []string{heads[0]}
	for cur := vc.entries[heads[0]]; cur != nil; cur = vc.entries[cur.Replaces] {
		if skipped[cur.Replaces] {
			break
		}
		if chain[cur.Replaces] {
			start := slices.Index(path, cur.Replaces)
			loop := append(slices.Clone(path[start:]), cur.Replaces)
			v.add(CodeReplacesCycle, pkg, ch, "", "detected cycle in replaces chain of upgrade graph: %s", strings.Join(loop, " -> "))
			return
		}
		chain[cur.Replaces] = true
		path = append(path, cur.Replaces)
	}
	var stranded []string
	for name := range vc.entries {
		if !chain[name] && !skipped[name] {
			stranded = append(stranded, name)
		}
	}
	if len(stranded) > 0 {
		slices.Sort(stranded)
		v.add(CodeStranded, pkg, ch, "", "channel contains one or more stranded bundles: %s", strings.Join(stranded, ", "))
	}
}
