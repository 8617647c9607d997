package filter

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/blang/semver/v4"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// catalog indexes a DeclarativeConfig by package, channel and bundle so the
// selection can walk graphs without rescanning blobs.
type catalog struct {
	pkgs     map[string]*pkg
	pkgNames []string // sorted
	// gvkProviders lists, per olm.gvk, the bundles that provide it, sorted
	// by package then version.
	gvkProviders map[fbc.GVK][]*bundle
	// orphans are blobs whose package has no olm.package blob; opm rejects
	// them, so they matter only when the whole catalog is passed through.
	orphans []string
}

type pkg struct {
	blob        *fbc.Package
	channels    map[string]*channel
	chNames     []string // sorted
	bundles     map[string]*bundle
	deprecation *fbc.Deprecation
}

type bundle struct {
	blob *fbc.Bundle
	pkg  string
	// version and release come from the olm.package property; versionErr
	// is set when there is none or it does not parse.
	version    semver.Version
	release    []semver.PRVersion
	versionErr error
	provides   []fbc.GVK
	// requires are the olm.package.required and olm.gvk.required
	// properties in property order.
	requires []requirement
	channels []string // names of the channels listing it, sorted
}

// requirement is one olm.package.required or olm.gvk.required property.
type requirement struct {
	pkg     *fbc.PackageRequired // olm.package.required
	gvk     *fbc.GVK             // olm.gvk.required
	rng     semver.Range         // parsed pkg.VersionRange
	problem string               // set when the property does not decode or parse
}

func (r requirement) String() string {
	switch {
	case r.pkg != nil:
		return fmt.Sprintf("%s %s %s", fbc.PropertyPackageRequired, r.pkg.PackageName, r.pkg.VersionRange)
	case r.gvk != nil:
		return fmt.Sprintf("%s %s/%s %s", fbc.PropertyGVKRequired, r.gvk.Group, r.gvk.Version, r.gvk.Kind)
	}
	return "requirement"
}

func newCatalog(cfg *fbc.DeclarativeConfig) (*catalog, []Problem) {
	var problems []Problem
	c := &catalog{pkgs: map[string]*pkg{}, gvkProviders: map[fbc.GVK][]*bundle{}}
	for i := range cfg.Packages {
		p := &cfg.Packages[i]
		if _, dup := c.pkgs[p.Name]; dup {
			problems = append(problems, Problem{Kind: InvalidSource, Package: p.Name, Message: "the source catalog has more than one olm.package blob for it"})
			continue
		}
		c.pkgs[p.Name] = &pkg{blob: p, channels: map[string]*channel{}, bundles: map[string]*bundle{}}
		c.pkgNames = append(c.pkgNames, p.Name)
	}
	slices.Sort(c.pkgNames)

	for i := range cfg.Bundles {
		b := &cfg.Bundles[i]
		p, ok := c.pkgs[b.Package]
		if !ok {
			c.orphans = append(c.orphans, fmt.Sprintf("olm.bundle %q of unknown package %q", b.Name, b.Package))
			continue
		}
		if _, dup := p.bundles[b.Name]; dup {
			problems = append(problems, Problem{Kind: InvalidSource, Package: b.Package, Message: fmt.Sprintf("the source catalog has bundle %q twice", b.Name)})
			continue
		}
		p.bundles[b.Name] = newBundle(b)
	}

	for i := range cfg.Channels {
		ch := &cfg.Channels[i]
		p, ok := c.pkgs[ch.Package]
		if !ok {
			c.orphans = append(c.orphans, fmt.Sprintf("olm.channel %q of unknown package %q", ch.Name, ch.Package))
			continue
		}
		if _, dup := p.channels[ch.Name]; dup {
			problems = append(problems, Problem{Kind: InvalidSource, Package: ch.Package, Channel: ch.Name, Message: "the source catalog has this channel twice"})
			continue
		}
		g := newChannel(p, ch)
		p.channels[ch.Name] = g
		p.chNames = append(p.chNames, ch.Name)
		for _, e := range ch.Entries {
			if b, ok := p.bundles[e.Name]; ok {
				b.channels = append(b.channels, ch.Name)
			}
		}
	}

	for i := range cfg.Deprecations {
		d := &cfg.Deprecations[i]
		p, ok := c.pkgs[d.Package]
		switch {
		case !ok:
			c.orphans = append(c.orphans, fmt.Sprintf("olm.deprecations of unknown package %q", d.Package))
		case p.deprecation != nil:
			problems = append(problems, Problem{Kind: InvalidSource, Package: d.Package, Message: "the source catalog has more than one olm.deprecations blob for it"})
		default:
			p.deprecation = d
		}
	}

	for _, name := range c.pkgNames {
		p := c.pkgs[name]
		slices.Sort(p.chNames)
		for _, b := range p.sortedBundles() {
			slices.Sort(b.channels)
			b.channels = slices.Compact(b.channels)
			for _, g := range b.provides {
				c.gvkProviders[g] = append(c.gvkProviders[g], b)
			}
		}
	}
	return c, problems
}

func newBundle(b *fbc.Bundle) *bundle {
	nb := &bundle{blob: b, pkg: b.Package}
	found := false
	for _, p := range b.Properties {
		switch p.Type {
		case fbc.PropertyPackage:
			if found {
				nb.versionErr = fmt.Errorf("more than one %s property", fbc.PropertyPackage)
				continue
			}
			found = true
			var v fbc.PackageProperty
			if err := json.Unmarshal(p.Value, &v); err != nil {
				nb.versionErr = fmt.Errorf("%s property: %w", fbc.PropertyPackage, err)
				continue
			}
			ver, err := semver.Parse(v.Version)
			if err != nil {
				nb.versionErr = fmt.Errorf("version %q: %w", v.Version, err)
				continue
			}
			nb.version = ver
			if v.Release != "" {
				// opm orders releases like semver pre-release identifiers.
				for _, part := range strings.Split(v.Release, ".") {
					pr, err := semver.NewPRVersion(part)
					if err != nil {
						nb.versionErr = fmt.Errorf("release %q: %w", v.Release, err)
						break
					}
					nb.release = append(nb.release, pr)
				}
			}
		case fbc.PropertyGVK:
			var g fbc.GVK
			if json.Unmarshal(p.Value, &g) == nil {
				nb.provides = append(nb.provides, g)
			}
		case fbc.PropertyGVKRequired:
			var g fbc.GVK
			if err := json.Unmarshal(p.Value, &g); err != nil {
				nb.requires = append(nb.requires, requirement{gvk: &g, problem: err.Error()})
				continue
			}
			nb.requires = append(nb.requires, requirement{gvk: &g})
		case fbc.PropertyPackageRequired:
			var r fbc.PackageRequired
			if err := json.Unmarshal(p.Value, &r); err != nil {
				nb.requires = append(nb.requires, requirement{pkg: &r, problem: err.Error()})
				continue
			}
			req := requirement{pkg: &r}
			rng, err := semver.ParseRange(r.VersionRange)
			if err != nil {
				req.problem = fmt.Sprintf("versionRange %q: %v", r.VersionRange, err)
			}
			req.rng = rng
			nb.requires = append(nb.requires, req)
		}
	}
	if !found && nb.versionErr == nil {
		nb.versionErr = fmt.Errorf("no %s property", fbc.PropertyPackage)
	}
	return nb
}

// compareBundles orders bundles the way opm does (version, then release,
// a bundle without release before one with), then by name so the order is
// total and the output deterministic.
func compareBundles(a, b *bundle) int {
	if a.versionErr != nil || b.versionErr != nil {
		switch {
		case a.versionErr == nil:
			return 1 // unparsable versions sort first
		case b.versionErr == nil:
			return -1
		}
		return strings.Compare(a.blob.Name, b.blob.Name)
	}
	if c := a.version.Compare(b.version); c != 0 {
		return c
	}
	switch {
	case len(a.release) == 0 && len(b.release) > 0:
		return -1
	case len(a.release) > 0 && len(b.release) == 0:
		return 1
	}
	ra := semver.Version{Pre: a.release}
	rb := semver.Version{Pre: b.release}
	if c := ra.Compare(rb); c != 0 {
		return c
	}
	return strings.Compare(a.blob.Name, b.blob.Name)
}

func (p *pkg) sortedBundles() []*bundle {
	out := make([]*bundle, 0, len(p.bundles))
	for _, b := range p.bundles {
		out = append(out, b)
	}
	slices.SortFunc(out, compareBundles)
	return out
}

// sortNames sorts bundle names of package p by version, names without a
// bundle last by name.
func (p *pkg) sortNames(names []string) {
	slices.SortFunc(names, func(x, y string) int {
		bx, by := p.bundles[x], p.bundles[y]
		switch {
		case bx != nil && by != nil:
			return compareBundles(bx, by)
		case bx != nil:
			return -1
		case by != nil:
			return 1
		}
		return strings.Compare(x, y)
	})
}
