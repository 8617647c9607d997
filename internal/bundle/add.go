package bundle

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/blang/semver/v4"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// Errors Add's problems wrap, for callers that branch on the kind of
// conflict (errors.Is).
var (
	// ErrInvalid: the bundle or its placement is unusable on its own (no
	// name, no olm.package property, no channel, a bad skipRange...).
	ErrInvalid = errors.New("invalid bundle or placement")
	// ErrDuplicateName: the package already has a bundle of that name.
	ErrDuplicateName = errors.New("bundle name already in package")
	// ErrDuplicateVersion: the package already has a bundle of that
	// version (opm validate allows one bundle per version per package).
	ErrDuplicateVersion = errors.New("bundle version already in package")
	// ErrGraphConflict: the new entry would break a channel's upgrade
	// graph (two heads, a cycle, a stranded bundle) or its package's
	// default channel.
	ErrGraphConflict = errors.New("conflicting upgrade graph")
)

// problem is one reason Add refuses a bundle.
type problem struct {
	kind error
	msg  string
}

func (p *problem) Error() string { return p.msg }
func (p *problem) Unwrap() error { return p.kind }

func newProblem(kind error, format string, args ...any) error {
	return &problem{kind: kind, msg: fmt.Sprintf(format, args...)}
}

// Add inserts bundle b into cfg where p places it, in the default mode
// (ModeReplaces), all or nothing: on error cfg is unchanged, and the error
// lists every problem found. It is AddAll for one bundle; the edges it
// infers are not returned.
//
// The package is created if it is missing, with p.DefaultChannel as its
// default channel (or the bundle's only channel) and p.Icon. In an existing
// package, p.DefaultChannel becomes the default channel when b's version is
// higher than every other bundle's, which is the rule `opm index add`
// applied. Each channel in p.Channels gets the entry {name, replaces,
// skips, skipRange}; missing channels are created.
//
// Add refuses a bundle whose name or version the package already has, and
// an entry that leaves a channel with other than one head, a replaces
// cycle or a stranded bundle (the rules of `opm validate`), for example a
// bundle replacing one that another entry already replaces. A replaces or
// skip naming a bundle that is not in the channel is accepted, as opm
// accepts it.
func Add(cfg *fbc.DeclarativeConfig, b fbc.Bundle, p Placement) error {
	if cfg == nil {
		return errors.New("no catalog")
	}
	a := newAdder(cfg)
	if _, err := a.add(Addition{Bundle: b, Placement: p}); err != nil {
		return fmt.Errorf("add bundle %q to package %q: %w", b.Name, b.Package, err)
	}
	a.commit(cfg)
	return nil
}

// checkBundle checks what opm validate requires of a bundle on its own and
// returns its version.
func checkBundle(b fbc.Bundle, p Placement) (pkgVersion, []error) {
	var probs []error
	if b.Schema != "" && b.Schema != fbc.SchemaBundle {
		probs = append(probs, newProblem(ErrInvalid, "schema is %q, not %q", b.Schema, fbc.SchemaBundle))
	}
	if b.Name == "" {
		probs = append(probs, newProblem(ErrInvalid, "bundle has no name"))
	}
	if b.Package == "" {
		probs = append(probs, newProblem(ErrInvalid, "bundle has no package"))
	}
	if p.Package != "" && p.Package != b.Package {
		probs = append(probs, newProblem(ErrInvalid, "placement is for package %q, the bundle is in %q", p.Package, b.Package))
	}
	if b.Image == "" && !slices.ContainsFunc(b.Properties, func(x fbc.Property) bool { return x.Type == typeBundleObject }) {
		probs = append(probs, newProblem(ErrInvalid, "bundle has neither an image nor olm.bundle.object properties"))
	}
	var pkgProps []fbc.PackageProperty
	for _, prop := range b.Properties {
		if prop.Type != typePackage {
			continue
		}
		var v fbc.PackageProperty
		if err := json.Unmarshal(prop.Value, &v); err != nil {
			probs = append(probs, newProblem(ErrInvalid, "olm.package property: %v", err))
			continue
		}
		pkgProps = append(pkgProps, v)
	}
	if len(pkgProps) != 1 {
		probs = append(probs, newProblem(ErrInvalid, "bundle has %d olm.package properties, want exactly one", len(pkgProps)))
		return pkgVersion{}, probs
	}
	if pkgProps[0].PackageName != b.Package {
		probs = append(probs, newProblem(ErrInvalid, "olm.package property names package %q, the bundle is in %q", pkgProps[0].PackageName, b.Package))
	}
	v, err := parseVersion(pkgProps[0])
	if err != nil {
		probs = append(probs, newProblem(ErrInvalid, "%v", err))
	}
	return v, probs
}

// checkEntry checks the edges of a new channel entry.
func checkEntry(e fbc.ChannelEntry) []error {
	var probs []error
	if e.Replaces != "" && e.Replaces == e.Name {
		probs = append(probs, newProblem(ErrGraphConflict, "bundle replaces itself"))
	}
	for i, s := range e.Skips {
		switch s {
		case "":
			probs = append(probs, newProblem(ErrInvalid, "skips[%d] is empty", i))
		case e.Name:
			probs = append(probs, newProblem(ErrGraphConflict, "bundle skips itself"))
		}
	}
	if e.SkipRange != "" {
		if _, err := semver.ParseRange(e.SkipRange); err != nil {
			probs = append(probs, newProblem(ErrInvalid, "invalid skipRange %q: %v", e.SkipRange, err))
		}
	}
	return probs
}

// graphProblem explains why adding entry to a channel breaks its graph,
// naming the entry it collides with where there is one.
func graphProblem(old []fbc.ChannelEntry, entry fbc.ChannelEntry, err error) error {
	if prev := checkGraph(old); prev != nil {
		return newProblem(ErrGraphConflict, "%v (the channel was already invalid: %v)", err, prev)
	}
	var hints []string
	if entry.Replaces != "" {
		for _, e := range old {
			if e.Replaces == entry.Replaces && !slices.Contains(entry.Skips, e.Name) {
				hints = append(hints, fmt.Sprintf("%q already replaces %q", e.Name, entry.Replaces))
			}
		}
	}
	if heads := fbc.ChannelHeads(old); len(heads) == 1 && entry.Replaces != heads[0] && !slices.Contains(entry.Skips, heads[0]) {
		incoming := entry.Replaces == "" && len(entry.Skips) == 0
		switch {
		case incoming:
			hints = append(hints, fmt.Sprintf("the bundle neither replaces nor skips the channel head %q", heads[0]))
		case len(hints) == 0:
			hints = append(hints, fmt.Sprintf("the bundle does not replace or skip the channel head %q", heads[0]))
		}
	}
	if len(hints) > 0 {
		return newProblem(ErrGraphConflict, "%v: %s", err, strings.Join(hints, "; "))
	}
	return newProblem(ErrGraphConflict, "%v", err)
}

// cleanChannels trims names and drops empty and repeated ones.
func cleanChannels(in []string) []string {
	var out []string
	for _, c := range in {
		if c = strings.TrimSpace(c); c != "" && !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// pkgVersion is a bundle's version as opm's model holds it: the
// olm.package version and optional release.
type pkgVersion struct {
	version semver.Version
	release string
}

// String is opm's Bundle.VersionString: the version, then "-release".
func (v pkgVersion) String() string {
	if v.release == "" {
		return v.version.String()
	}
	return v.version.String() + "-" + v.release
}

// compare orders by version, then a release after none, then by release.
func (v pkgVersion) compare(o pkgVersion) int {
	if c := v.version.Compare(o.version); c != 0 {
		return c
	}
	switch {
	case v.release == o.release:
		return 0
	case v.release == "":
		return -1
	case o.release == "":
		return 1
	}
	a, _ := semver.Parse("0.0.0-" + v.release)
	b, _ := semver.Parse("0.0.0-" + o.release)
	return a.Compare(b)
}

func parseVersion(p fbc.PackageProperty) (pkgVersion, error) {
	v, err := semver.Parse(p.Version)
	if err != nil {
		return pkgVersion{}, fmt.Errorf("error parsing bundle version %q: %v", p.Version, err)
	}
	if p.Release != "" {
		if _, err := semver.Parse("0.0.0-" + p.Release); err != nil {
			return pkgVersion{}, fmt.Errorf("error parsing bundle release version %q: %v", p.Release, err)
		}
	}
	return pkgVersion{version: v, release: p.Release}, nil
}

func bundleVersion(b fbc.Bundle) (pkgVersion, error) {
	for _, prop := range b.Properties {
		if prop.Type != typePackage {
			continue
		}
		var v fbc.PackageProperty
		if err := json.Unmarshal(prop.Value, &v); err != nil {
			return pkgVersion{}, err
		}
		return parseVersion(v)
	}
	return pkgVersion{}, errors.New("no olm.package property")
}
