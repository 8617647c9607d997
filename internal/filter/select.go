package filter

import (
	"cmp"
	"fmt"
	"strings"

	"github.com/blang/semver/v4"

	"github.com/ferry-gitops/ferry/spec"
)

// keptPackage is the selection for one package: which entries of which
// channels survive, and the default channel of the result.
type keptPackage struct {
	p              *pkg
	defaultChannel string
	selected       bool           // named in the spec (not only a dependency)
	channels       map[string]set // channel name -> kept entries
}

// bundles returns every bundle kept in any channel.
func (k *keptPackage) bundles() set {
	out := set{}
	for _, s := range k.channels {
		for n := range s {
			out[n] = true
		}
	}
	return out
}

// state is one Filter run.
type state struct {
	cat      *catalog
	kept     map[string]*keptPackage
	problems []Problem
	warnings []Warning
	deps     []Dependency
}

func (st *state) problem(kind ProblemKind, pkg, ch, format string, args ...any) {
	st.problems = append(st.problems, Problem{Kind: kind, Package: pkg, Channel: ch, Message: fmt.Sprintf(format, args...)})
}

func (st *state) warn(kind WarningKind, pkg, ch, b, format string, args ...any) {
	st.warnings = append(st.warnings, Warning{Kind: kind, Package: pkg, Channel: ch, Bundle: b, Message: fmt.Sprintf(format, args...)})
}

// versionRange is an inclusive [min, max] bound; a nil end is open.
type versionRange struct {
	min, max *semver.Version
}

func (r versionRange) set() bool { return r.min != nil || r.max != nil }

func (r versionRange) contains(v semver.Version) bool {
	return (r.min == nil || v.GTE(*r.min)) && (r.max == nil || v.LTE(*r.max))
}

func (r versionRange) String() string {
	var parts []string
	if r.min != nil {
		parts = append(parts, ">="+r.min.String())
	}
	if r.max != nil {
		parts = append(parts, "<="+r.max.String())
	}
	return strings.Join(parts, " ")
}

func (st *state) parseRange(pkg, ch, field, minV, maxV string) (versionRange, bool) {
	var r versionRange
	ok := true
	for _, x := range []struct {
		name, s string
		dst     **semver.Version
	}{{"minVersion", minV, &r.min}, {"maxVersion", maxV, &r.max}} {
		if x.s == "" {
			continue
		}
		v, err := semver.Parse(x.s)
		if err != nil {
			st.problem(InvalidSpec, pkg, ch, "%s%s %q is not a semantic version: %v", field, x.name, x.s, err)
			ok = false
			continue
		}
		*x.dst = &v
	}
	if ok && r.min != nil && r.max != nil && r.min.GT(*r.max) {
		st.problem(InvalidSpec, pkg, ch, "%sminVersion %s is greater than maxVersion %s", field, r.min, r.max)
		ok = false
	}
	return r, ok
}

// target is one channel to select from and how.
type target struct {
	g        *channel
	full     bool
	rng      versionRange
	explicit bool // listed in the spec: an empty range is an error, not a skip
}

// selectPackage applies one spec.Package.
func (st *state) selectPackage(sp spec.Package) {
	p, ok := st.cat.pkgs[sp.Name]
	if !ok {
		st.problem(PackageNotFound, sp.Name, "", "not in the catalog")
		return
	}
	if len(p.chNames) == 0 {
		st.problem(InvalidSource, sp.Name, "", "the package has no channels in the source catalog")
		return
	}
	pkgRange, ok := st.parseRange(sp.Name, "", "", sp.MinVersion, sp.MaxVersion)
	if !ok {
		return
	}
	// spec validation refuses these combinations; a caller that skipped it
	// gets an error rather than a guess at which setting wins.
	if sp.Full && pkgRange.set() {
		st.problem(InvalidSpec, sp.Name, "", "full cannot be combined with minVersion/maxVersion")
		return
	}
	for _, sc := range sp.Channels {
		if sc.MinVersion != "" || sc.MaxVersion != "" {
			if pkgRange.set() || sp.Full {
				st.problem(InvalidSpec, sp.Name, sc.Name, "a channel range cannot be combined with a package range or full")
				return
			}
		}
	}

	var targets []target
	switch {
	case len(sp.Channels) == 0 && sp.Full:
		for _, name := range p.chNames {
			targets = append(targets, target{g: p.channels[name], full: true})
		}
	case len(sp.Channels) == 0 && pkgRange.set():
		// A package-level range applies to every channel, as in oc-mirror;
		// channels with nothing in range are left out.
		for _, name := range p.chNames {
			targets = append(targets, target{g: p.channels[name], rng: pkgRange})
		}
	case len(sp.Channels) == 0:
		// Only the head of the default channel: the new one when the spec
		// names one (that is the channel the user says subscriptions
		// follow), else the package's.
		def := cmp.Or(sp.DefaultChannel, p.blob.DefaultChannel)
		g, ok := p.channels[def]
		switch {
		case !ok && sp.DefaultChannel != "":
			st.problem(ChannelNotFound, sp.Name, def, "defaultChannel names a channel the package does not have (it has %s)", strings.Join(p.chNames, ", "))
			return
		case !ok:
			st.problem(InvalidSource, sp.Name, def, "the package's default channel is not in the source catalog")
			return
		}
		targets = append(targets, target{g: g, explicit: true})
	default:
		bad := false
		listed := map[string]bool{}
		for _, sc := range sp.Channels {
			if listed[sc.Name] {
				st.problem(InvalidSpec, sp.Name, sc.Name, "channel listed more than once")
				bad = true
				continue
			}
			listed[sc.Name] = true
			g, ok := p.channels[sc.Name]
			if !ok {
				st.problem(ChannelNotFound, sp.Name, sc.Name, "no such channel in the package (it has %s)", strings.Join(p.chNames, ", "))
				bad = true
				continue
			}
			rng := pkgRange
			if sc.MinVersion != "" || sc.MaxVersion != "" {
				if rng, ok = st.parseRange(sp.Name, sc.Name, "", sc.MinVersion, sc.MaxVersion); !ok {
					bad = true
					continue
				}
			}
			targets = append(targets, target{g: g, full: sp.Full, rng: rng, explicit: true})
		}
		if bad {
			return
		}
	}

	kp := &keptPackage{p: p, selected: true, defaultChannel: p.blob.DefaultChannel, channels: map[string]set{}}
	failed := false
	for _, t := range targets {
		keep, ok := st.selectChannel(t)
		if !ok {
			failed = true
			continue
		}
		if keep != nil {
			kp.channels[t.g.name()] = keep
		}
	}
	if failed {
		return
	}
	if len(kp.channels) == 0 {
		// Only a package-level range over all channels gets here.
		st.problem(RangeMatchesNothing, sp.Name, "", "no bundle of any channel is in range %s", pkgRange)
		return
	}

	kept := make([]string, 0, len(kp.channels))
	for _, name := range p.chNames {
		if kp.channels[name] != nil {
			kept = append(kept, name)
		}
	}
	switch {
	case sp.DefaultChannel != "" && p.channels[sp.DefaultChannel] == nil:
		st.problem(ChannelNotFound, sp.Name, sp.DefaultChannel, "defaultChannel names a channel the package does not have (it has %s)", strings.Join(p.chNames, ", "))
		return
	case sp.DefaultChannel != "" && kp.channels[sp.DefaultChannel] == nil:
		st.problem(DefaultChannelDropped, sp.Name, sp.DefaultChannel, "defaultChannel is not among the kept channels (%s)", strings.Join(kept, ", "))
		return
	case sp.DefaultChannel != "":
		kp.defaultChannel = sp.DefaultChannel
	case p.channels[p.blob.DefaultChannel] == nil:
		st.problem(InvalidSource, sp.Name, p.blob.DefaultChannel, "the package's default channel is not in the source catalog; set defaultChannel to one of the kept channels (%s)", strings.Join(kept, ", "))
		return
	case kp.channels[p.blob.DefaultChannel] == nil:
		st.problem(DefaultChannelDropped, sp.Name, p.blob.DefaultChannel,
			"the selection drops the package's default channel and sets no defaultChannel; kept channels: %s (set defaultChannel to one of them, or keep %q)",
			strings.Join(kept, ", "), p.blob.DefaultChannel)
		return
	}
	st.kept[sp.Name] = kp
}

// selectChannel returns the entries a target keeps; nil with ok for an
// implicit range target that matches nothing (the channel is left out).
func (st *state) selectChannel(t target) (set, bool) {
	g, pkgName := t.g, t.g.pkg.blob.Name
	switch {
	case t.full:
		all := set{}
		for n := range g.entries {
			all[n] = true
		}
		if len(g.entries) != len(g.blob.Entries) {
			st.problem(InvalidSource, pkgName, g.name(), "cannot keep the whole channel: it lists a bundle twice")
			return nil, false
		}
		if err := st.checkSourceChannel(g, all); err != nil {
			st.problem(InvalidSource, pkgName, g.name(), "cannot keep the whole channel: %v", err)
			return nil, false
		}
		return all, true
	case !t.rng.set():
		h, err := g.sourceHead()
		if err != nil {
			st.problem(InvalidSource, pkgName, g.name(), "%v", err)
			return nil, false
		}
		if err := st.checkSourceChannel(g, set{h: true}); err != nil {
			st.problem(InvalidSource, pkgName, g.name(), "cannot keep the head: %v", err)
			return nil, false
		}
		return set{h: true}, true
	}
	return st.selectRange(t)
}

// selectRange keeps the bundles in range that the graph connects to the
// top of the range (normally its highest version), then drops what opm
// would call stranded.
func (st *state) selectRange(t target) (set, bool) {
	g, p := t.g, t.g.pkg
	pkgName := p.blob.Name
	in := set{}
	for _, n := range g.order {
		b := p.bundles[n]
		if b == nil {
			continue // an entry without a bundle; opm rejects the source
		}
		if b.versionErr != nil {
			st.warn(UnparsableVersion, pkgName, g.name(), n, "bundle %s has no usable version (%v), so no range includes it", n, b.versionErr)
			continue
		}
		if t.rng.contains(b.version) {
			in[n] = true
		}
	}
	if len(in) == 0 {
		if t.explicit {
			st.problem(RangeMatchesNothing, pkgName, g.name(), "no bundle of the channel is in range %s", t.rng)
			return nil, false
		}
		return nil, true
	}
	top, reached := g.rangeTop(in, g.downEdges(in))
	var lost []string
	for n := range in {
		if !reached[n] {
			lost = append(lost, n)
		}
	}
	p.sortNames(lost)
	for _, n := range lost {
		st.warn(NotConnected, pkgName, g.name(), n,
			"bundle %s (%s) is in range %s but cannot upgrade to %s, the top of the range, without leaving the range (%s); dropped",
			n, p.bundles[n].version, t.rng, top, g.describeUpgrades(n))
	}
	keep, dropped, err := g.repair(reached, top)
	if err != nil {
		st.problem(InvalidSource, pkgName, g.name(), "%v", err)
		return nil, false
	}
	for _, n := range dropped {
		st.warn(Stranded, pkgName, g.name(), n,
			"bundle %s (%s) is in range %s and OLM could upgrade it to %s, but only through skipRange or bundles that are themselves dropped; opm rejects a bundle that is neither on the replaces chain from the channel head nor skipped by a kept bundle, so it is dropped",
			n, p.bundles[n].version, t.rng, top)
	}
	return keep, true
}

// checkSourceChannel checks that entries exist as bundles and that keep is
// a valid channel; selections that copy source structure (full, head) fail
// here when the source itself is broken.
func (st *state) checkSourceChannel(g *channel, keep set) error {
	var missing []string
	for n := range keep {
		if g.pkg.bundles[n] == nil {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		g.pkg.sortNames(missing)
		return fmt.Errorf("entries without an olm.bundle blob: %s", strings.Join(missing, ", "))
	}
	_, err := g.check(keep)
	return err
}
