package bundle

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// Mode is how an added bundle is placed in channels that already have
// bundles: the add modes of `opm index add --mode`.
type Mode string

const (
	// ModeReplaces places a bundle by its CSV's replaces and skips. A
	// bundle that names neither (packages published from FBC templates
	// carry their edges only in the catalog) and whose version is above
	// the channel head becomes the new head, replacing the old one: an
	// inferred edge. Below the head it is an error naming ModeSemver.
	ModeReplaces Mode = "replaces"
	// ModeSemver ignores the CSV's replaces and skips and places the
	// bundle by version, as opm's semver mode does: it replaces the
	// highest version below it, and the lowest version above it now
	// replaces it.
	ModeSemver Mode = "semver"
	// ModeSemverSkipPatch is ModeSemver that also skips every lower
	// version of the same major.minor.
	ModeSemverSkipPatch Mode = "semver-skippatch"
)

// Modes lists the valid modes, default first.
var Modes = []Mode{ModeReplaces, ModeSemver, ModeSemverSkipPatch}

func (m Mode) valid() bool { return m == "" || slices.Contains(Modes, m) }

// orDefault is m, or ModeReplaces when unset.
func (m Mode) orDefault() Mode { return cmp.Or(m, ModeReplaces) }

// Addition is one bundle to add and how.
type Addition struct {
	Bundle    fbc.Bundle
	Placement Placement
	// Mode is the add mode; "" is ModeReplaces.
	Mode Mode
	// ReplaceExisting lets the bundle take the place of a bundle of the
	// same name that heads every channel it is in: a vendor's rebuild
	// (respin) of a released bundle, what `opm index add
	// --overwrite-latest` did. Never implied.
	ReplaceExisting bool
	// Origin names the addition in findings, for example
	// "spec.bundles[2] (catalogs/a.yaml:14)".
	Origin string
}

// Edge is a channel entry whose upgrade edges Add chose rather than read
// from the bundle's CSV: an inferred replaces, a placement by version, or
// a neighbour re-linked around a bundle placed by version. Plans show them
// so a reviewer sees every edge nobody wrote.
type Edge struct {
	Package string `json:"package"`
	Channel string `json:"channel"`
	// Bundle is the entry whose edges were chosen.
	Bundle   string   `json:"bundle"`
	Replaces string   `json:"replaces,omitempty"`
	Skips    []string `json:"skips,omitempty"`
	Mode     Mode     `json:"mode"`
	// Reason says why, in a sentence.
	Reason string `json:"reason"`
	// Origin is the Origin of the addition that caused it.
	Origin string `json:"origin,omitempty"`
}

// AdditionError is why one addition was refused.
type AdditionError struct {
	// Index is the addition's position in AddAll's input.
	Index  int
	Origin string
	// Image is the bundle's image as the spec names it, for problems
	// found before the bundle could be read.
	Image   string
	Package string
	Bundle  string
	Err     error
}

func (e *AdditionError) Error() string {
	where := e.Origin
	if where == "" {
		where = fmt.Sprintf("bundle %d", e.Index)
	}
	msg := strings.ReplaceAll(e.Err.Error(), "\n", "\n    ")
	if e.Bundle == "" {
		return fmt.Sprintf("%s: %s:\n    %s", where, e.Image, msg)
	}
	return fmt.Sprintf("%s: bundle %q of package %q:\n    %s", where, e.Bundle, e.Package, msg)
}

func (e *AdditionError) Unwrap() error { return e.Err }

// Error lists every refused addition, in input order.
type Error struct {
	Additions []*AdditionError
}

func (e *Error) Error() string {
	lines := make([]string, len(e.Additions))
	for i, a := range e.Additions {
		lines[i] = a.Error()
	}
	return fmt.Sprintf("%d of the bundles cannot be added:\n%s", len(e.Additions), strings.Join(lines, "\n"))
}

// Unwrap lets errors.Is find the kind of every problem (ErrDuplicateName,
// ErrGraphConflict, ...).
func (e *Error) Unwrap() []error {
	out := make([]error, len(e.Additions))
	for i, a := range e.Additions {
		out[i] = a
	}
	return out
}

// AddAll adds every addition to cfg, all or nothing, and returns the edges
// it inferred. On error cfg is unchanged and the *Error lists every
// addition that cannot be added, each with all its problems; the others
// were tried too, so one run reports everything there is to fix.
//
// Additions of one package are placed in version order, whatever their
// input order, so adding 1.2.0 and 1.1.0 to a channel headed by 1.0.0 in
// ModeReplaces gives 1.0.0 <- 1.1.0 <- 1.2.0. A conflict names where the
// copy already in the catalog came from: the source catalog, or the Origin
// of the addition that added it.
func AddAll(cfg *fbc.DeclarativeConfig, adds []Addition) ([]Edge, error) {
	if cfg == nil {
		return nil, errors.New("no catalog")
	}
	order := make([]int, len(adds))
	versions := make([]pkgVersion, len(adds))
	for i := range adds {
		order[i] = i
		versions[i], _ = bundleVersion(adds[i].Bundle)
	}
	slices.SortStableFunc(order, func(i, j int) int {
		return cmp.Or(cmp.Compare(adds[i].Bundle.Package, adds[j].Bundle.Package), versions[i].compare(versions[j]))
	})
	a := newAdder(cfg)
	var edges []Edge
	var bad []*AdditionError
	for _, i := range order {
		x := adds[i]
		e, err := a.add(x)
		if err != nil {
			bad = append(bad, &AdditionError{Index: i, Origin: x.Origin, Image: x.Bundle.Image, Package: x.Bundle.Package, Bundle: x.Bundle.Name, Err: err})
			continue
		}
		a.from[key(x.Bundle.Package, x.Bundle.Name)] = x.Origin
		edges = append(edges, e...)
	}
	if len(bad) > 0 {
		slices.SortFunc(bad, func(x, y *AdditionError) int { return cmp.Compare(x.Index, y.Index) })
		return nil, &Error{Additions: bad}
	}
	a.commit(cfg)
	return edges, nil
}

func key(pkg, name string) string { return pkg + "\x00" + name }

// adder holds a working copy of a catalog: slices are copied, and entries
// of a changed channel get a new slice, so the caller's catalog is only
// touched by commit.
type adder struct {
	work fbc.DeclarativeConfig
	// from records which addition added a bundle, for conflict messages.
	from map[string]string
}

func newAdder(cfg *fbc.DeclarativeConfig) *adder {
	a := &adder{work: *cfg, from: map[string]string{}}
	a.work.Packages = slices.Clone(cfg.Packages)
	a.work.Channels = slices.Clone(cfg.Channels)
	a.work.Bundles = slices.Clone(cfg.Bundles)
	return a
}

func (a *adder) commit(cfg *fbc.DeclarativeConfig) { *cfg = a.work }

// copyOf says where the package's bundle name came from.
func (a *adder) copyOf(pkg, name string) string {
	if o, ok := a.from[key(pkg, name)]; ok {
		if o == "" {
			return "an earlier addition"
		}
		return o
	}
	return "the source catalog"
}

// add places one addition in the working copy, or changes nothing and
// returns every problem.
func (a *adder) add(x Addition) ([]Edge, error) {
	cfg := &a.work
	b, p, mode := x.Bundle, x.Placement, x.Mode.orDefault()
	version, probs := checkBundle(b, p)
	if !x.Mode.valid() {
		probs = append(probs, newProblem(ErrInvalid, "unknown add mode %q (want one of %s)", x.Mode, joinModes()))
	}
	channels := cleanChannels(p.Channels)
	if len(channels) == 0 {
		probs = append(probs, newProblem(ErrInvalid, "placement names no channel"))
	}
	entry := fbc.ChannelEntry{Name: b.Name, Replaces: p.Replaces, Skips: slices.Clone(p.Skips), SkipRange: p.SkipRange}
	probs = append(probs, checkEntry(entry)...)
	if len(probs) > 0 {
		return nil, errors.Join(probs...)
	}

	pkgIdx := slices.IndexFunc(cfg.Packages, func(x fbc.Package) bool { return x.Name == b.Package })

	// The package's other bundles: names and versions must not repeat,
	// except the bundle a respin replaces.
	highest := true
	replaced := -1
	versions := map[string]pkgVersion{b.Name: version}
	for i, o := range cfg.Bundles {
		if o.Package != b.Package {
			continue
		}
		if o.Name == b.Name {
			if x.ReplaceExisting {
				replaced = i
				continue
			}
			msg := fmt.Sprintf("package %q already has a bundle named %q, from %s", b.Package, b.Name, a.copyOf(b.Package, b.Name))
			if o.Image != "" && o.Image != b.Image && a.copyOf(b.Package, b.Name) == "the source catalog" {
				msg += fmt.Sprintf(" (image %s); if this is a rebuild of it, set replaceExisting to replace it", o.Image)
			}
			probs = append(probs, newProblem(ErrDuplicateName, "%s", msg))
			continue
		}
		ov, err := bundleVersion(o)
		if err != nil {
			continue // not ours to judge; opm validate will
		}
		versions[o.Name] = ov
		if ov.String() == version.String() {
			probs = append(probs, newProblem(ErrDuplicateVersion, "package %q already has version %s: bundle %q, from %s", b.Package, version, o.Name, a.copyOf(b.Package, o.Name)))
		}
		if ov.compare(version) >= 0 {
			highest = false
		}
	}
	if x.ReplaceExisting && replaced < 0 {
		probs = append(probs, newProblem(ErrInvalid, "replaceExisting is set, but package %q has no bundle named %q to replace", b.Package, b.Name))
	}

	// A respin takes its predecessor's place: that bundle must head every
	// channel it is in (opm's --overwrite-latest rule), and its entries
	// are removed before the new ones are placed.
	removed := map[string]fbc.ChannelEntry{} // channel -> the replaced bundle's entry
	channelsNow := map[string][]fbc.ChannelEntry{}
	if replaced >= 0 {
		for _, c := range cfg.Channels {
			if c.Package != b.Package {
				continue
			}
			i := slices.IndexFunc(c.Entries, func(e fbc.ChannelEntry) bool { return e.Name == b.Name })
			if i < 0 {
				continue
			}
			var by []string
			for _, e := range c.Entries {
				if e.Replaces == b.Name || slices.Contains(e.Skips, b.Name) {
					by = append(by, e.Name)
				}
			}
			if len(by) > 0 {
				probs = append(probs, newProblem(ErrGraphConflict, "replaceExisting: %q is not the head of channel %q (%s upgrades from it); only a channel head can be replaced by a rebuild", b.Name, c.Name, strings.Join(by, ", ")))
				continue
			}
			removed[c.Name] = c.Entries[i]
			channelsNow[c.Name] = slices.Delete(slices.Clone(c.Entries), i, i+1)
		}
	}
	entriesOf := func(idx int) []fbc.ChannelEntry {
		if e, ok := channelsNow[cfg.Channels[idx].Name]; ok {
			return e
		}
		return cfg.Channels[idx].Entries
	}

	// Channels: new entries, checked as opm validate checks them.
	type change struct {
		name    string
		idx     int // in cfg.Channels, -1 for a new channel
		entries []fbc.ChannelEntry
	}
	var changes []change
	var edges []Edge
	edgeless := entry.Replaces == "" && len(entry.Skips) == 0
	for _, name := range channels {
		e := entry
		if old, ok := removed[name]; ok && edgeless {
			e.Replaces, e.Skips = old.Replaces, slices.Clone(old.Skips)
			e.SkipRange = cmp.Or(e.SkipRange, old.SkipRange)
			if e.Replaces != "" || len(e.Skips) > 0 {
				edges = append(edges, Edge{Package: b.Package, Channel: name, Bundle: b.Name, Replaces: e.Replaces, Skips: e.Skips, Mode: mode, Origin: x.Origin,
					Reason: "replaceExisting: the rebuild names no replaces or skips, so it keeps the edges of the bundle it replaces"})
			}
		}
		idx := slices.IndexFunc(cfg.Channels, func(c fbc.Channel) bool { return c.Package == b.Package && c.Name == name })
		if idx < 0 || len(entriesOf(idx)) == 0 {
			changes = append(changes, change{name: name, idx: idx, entries: []fbc.ChannelEntry{e}})
			continue
		}
		old := entriesOf(idx)
		if slices.ContainsFunc(old, func(o fbc.ChannelEntry) bool { return o.Name == b.Name }) {
			probs = append(probs, newProblem(ErrGraphConflict, "channel %q already has an entry %q", name, b.Name))
			continue
		}
		var entries []fbc.ChannelEntry
		var err error
		var chEdges []Edge
		switch {
		case mode == ModeSemver || mode == ModeSemverSkipPatch:
			entries, err = placeBySemver(old, e, versions, mode == ModeSemverSkipPatch)
			if err == nil {
				chEdges = changedEdges(old, entries)
			}
		default:
			entries, chEdges, err = placeByReplaces(old, e, versions, removed[name].Name != "")
		}
		if err != nil {
			probs = append(probs, fmt.Errorf("channel %q: %w", name, err))
			continue
		}
		for _, ce := range chEdges {
			ce.Package, ce.Channel, ce.Mode, ce.Origin = b.Package, name, mode, x.Origin
			edges = append(edges, ce)
		}
		changes = append(changes, change{name: name, idx: idx, entries: entries})
	}
	// Channels the replaced bundle was in and the rebuild is not: its
	// entry goes, and the channel must still be valid (or go too).
	var dropped []string
	for name, entries := range channelsNow {
		if slices.Contains(channels, name) {
			continue
		}
		idx := slices.IndexFunc(cfg.Channels, func(c fbc.Channel) bool { return c.Package == b.Package && c.Name == name })
		if len(entries) == 0 {
			dropped = append(dropped, name)
			continue
		}
		if err := checkGraph(entries); err != nil {
			probs = append(probs, newProblem(ErrGraphConflict, "channel %q without %q (replaceExisting; the rebuild is not in that channel): %v", name, b.Name, err))
			continue
		}
		changes = append(changes, change{name: name, idx: idx, entries: entries})
	}

	// The package and its default channel.
	var pkg fbc.Package
	if pkgIdx >= 0 {
		pkg = cfg.Packages[pkgIdx]
		if p.DefaultChannel != "" && highest {
			pkg.DefaultChannel = p.DefaultChannel
		}
	} else {
		pkg = fbc.Package{Schema: fbc.SchemaPackage, Name: b.Package, DefaultChannel: p.DefaultChannel, Icon: p.Icon}
		if pkg.DefaultChannel == "" && len(channels) == 1 {
			pkg.DefaultChannel = channels[0]
		}
		if pkg.DefaultChannel == "" {
			probs = append(probs, newProblem(ErrInvalid, "package %q is new and the bundle names no default channel among its channels %s", b.Package, strings.Join(channels, ", ")))
		}
	}
	if pkg.DefaultChannel != "" && !slices.Contains(channels, pkg.DefaultChannel) &&
		(slices.Contains(dropped, pkg.DefaultChannel) ||
			!slices.ContainsFunc(cfg.Channels, func(c fbc.Channel) bool { return c.Package == b.Package && c.Name == pkg.DefaultChannel })) {
		probs = append(probs, newProblem(ErrGraphConflict, "default channel %q of package %q would not exist: the bundle's channels are %s", pkg.DefaultChannel, b.Package, strings.Join(channels, ", ")))
	}
	if len(probs) > 0 {
		return nil, errors.Join(probs...)
	}

	// Commit to the working copy.
	if pkgIdx >= 0 {
		cfg.Packages[pkgIdx] = pkg
	} else {
		cfg.Packages = append(cfg.Packages, pkg)
	}
	for _, ch := range changes {
		if ch.idx >= 0 {
			cfg.Channels[ch.idx].Entries = ch.entries
			continue
		}
		cfg.Channels = append(cfg.Channels, fbc.Channel{Schema: fbc.SchemaChannel, Name: ch.name, Package: b.Package, Entries: ch.entries})
	}
	if len(dropped) > 0 {
		cfg.Channels = slices.DeleteFunc(cfg.Channels, func(c fbc.Channel) bool { return c.Package == b.Package && slices.Contains(dropped, c.Name) })
	}
	if b.Schema == "" {
		b.Schema = fbc.SchemaBundle
	}
	if replaced >= 0 {
		cfg.Bundles[replaced] = b
	} else {
		cfg.Bundles = append(cfg.Bundles, b)
	}
	return edges, nil
}

func joinModes() string {
	s := make([]string, len(Modes))
	for i, m := range Modes {
		s[i] = string(m)
	}
	return strings.Join(s, ", ")
}

// placeByReplaces adds e to a channel by its own edges. An entry without
// edges whose version is above the channel head replaces the head (the
// inferred edge is returned); anywhere else it is an error that names the
// mode that places it.
func placeByReplaces(old []fbc.ChannelEntry, e fbc.ChannelEntry, versions map[string]pkgVersion, respin bool) ([]fbc.ChannelEntry, []Edge, error) {
	entries := append(slices.Clip(old), e)
	err := checkGraph(entries)
	if err == nil {
		return entries, nil, nil
	}
	if e.Replaces != "" || len(e.Skips) > 0 {
		return nil, nil, graphProblem(old, e, err)
	}
	if prev := checkGraph(old); prev != nil {
		return nil, nil, graphProblem(old, e, err)
	}
	head := fbc.ChannelHeads(old)[0]
	hv, ok := versions[head]
	if !ok {
		return nil, nil, newProblem(ErrGraphConflict, "the bundle names no replaces or skips and the channel head %q has no usable version to compare with", head)
	}
	v := versions[e.Name]
	if v.compare(hv) < 0 {
		below := ""
		if lower := lowerNeighbour(old, versions, v); lower != "" {
			below = fmt.Sprintf(", between %q and %q", lower, nextAbove(old, versions, v))
		}
		return nil, nil, newProblem(ErrGraphConflict,
			"the bundle names no replaces or skips and its version %s is below the channel head %q (%s)%s; in add mode %q only a newer bundle can be placed without edges: set addMode to %q (or %q) to insert it by version",
			v, head, hv, below, ModeReplaces, ModeSemver, ModeSemverSkipPatch)
	}
	e.Replaces = head
	entries = append(slices.Clip(old), e)
	if err := checkGraph(entries); err != nil {
		return nil, nil, graphProblem(old, e, err)
	}
	reason := fmt.Sprintf("the bundle names no replaces or skips and its version %s is above the channel head's (%s)", v, hv)
	if respin {
		reason = "replaceExisting: " + reason
	}
	return entries, []Edge{{Bundle: e.Name, Replaces: head, Reason: reason}}, nil
}

// nextAbove is the entry with the lowest version above v, "" if none.
func nextAbove(entries []fbc.ChannelEntry, versions map[string]pkgVersion, v pkgVersion) string {
	best := ""
	for _, e := range entries {
		ev, ok := versions[e.Name]
		if ok && ev.compare(v) > 0 && (best == "" || ev.compare(versions[best]) < 0) {
			best = e.Name
		}
	}
	return best
}

// lowerNeighbour is the entry with the highest version below v, "" if none.
func lowerNeighbour(entries []fbc.ChannelEntry, versions map[string]pkgVersion, v pkgVersion) string {
	best := ""
	for _, e := range entries {
		ev, ok := versions[e.Name]
		if ok && ev.compare(v) < 0 && (best == "" || ev.compare(versions[best]) > 0) {
			best = e.Name
		}
	}
	return best
}

// changedEdges lists the entries of after that are new or whose replaces
// or skips differ from before.
func changedEdges(before, after []fbc.ChannelEntry) []Edge {
	prev := map[string]fbc.ChannelEntry{}
	for _, e := range before {
		prev[e.Name] = e
	}
	var out []Edge
	for _, e := range after {
		p, ok := prev[e.Name]
		switch {
		case !ok:
			out = append(out, Edge{Bundle: e.Name, Replaces: e.Replaces, Skips: e.Skips, Reason: "placed by version"})
		case p.Replaces != e.Replaces || !slices.Equal(p.Skips, e.Skips):
			out = append(out, Edge{Bundle: e.Name, Replaces: e.Replaces, Skips: e.Skips, Reason: "re-linked by version; it had " + describeEdges(p)})
		}
	}
	return out
}

func describeEdges(e fbc.ChannelEntry) string {
	var parts []string
	if e.Replaces != "" {
		parts = append(parts, "replaces "+e.Replaces)
	}
	if len(e.Skips) > 0 {
		parts = append(parts, "skips "+strings.Join(e.Skips, ", "))
	}
	if len(parts) == 0 {
		return "no edges"
	}
	return strings.Join(parts, ", ")
}
