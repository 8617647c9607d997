package filter

import (
	"fmt"
	"slices"
	"strings"

	"github.com/blang/semver/v4"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// channel is the upgrade graph of one source channel.
//
// Edges point the way upgrades go: from a bundle to the bundles that
// replace it, skip it, or cover its version with their skipRange. OLM
// follows all three; opm's validation (and so the shape of a valid result)
// only knows replaces and skips. That asymmetry is the reason for most of
// the code here.
type channel struct {
	pkg     *pkg
	blob    *fbc.Channel
	entries map[string]*fbc.ChannelEntry
	// order is the source order of entries (each once); warnings about
	// entries follow it.
	order []string
	// up lists, per bundle, the entries that replace or skip it, sorted by
	// version then name so searches are deterministic.
	up map[string][]string
	// skipRanges are the parsed skipRange of each entry that has a valid one.
	skipRanges map[string]semver.Range
	// head and headErr cache sourceHead.
	head     string
	headErr  error
	headDone bool
}

func newChannel(p *pkg, ch *fbc.Channel) *channel {
	g := &channel{
		pkg:        p,
		blob:       ch,
		entries:    make(map[string]*fbc.ChannelEntry, len(ch.Entries)),
		up:         map[string][]string{},
		skipRanges: map[string]semver.Range{},
	}
	for i := range ch.Entries {
		e := &ch.Entries[i]
		if _, dup := g.entries[e.Name]; dup {
			continue // opm rejects duplicate entries; selectChannel and validateResult report them
		}
		g.entries[e.Name] = e
		g.order = append(g.order, e.Name)
		if e.Replaces != "" {
			g.up[e.Replaces] = append(g.up[e.Replaces], e.Name)
		}
		for _, s := range e.Skips {
			if s != e.Replaces {
				g.up[s] = append(g.up[s], e.Name)
			}
		}
		if e.SkipRange != "" {
			if r, err := semver.ParseRange(e.SkipRange); err == nil {
				g.skipRanges[e.Name] = r
			}
		}
	}
	for k, v := range g.up {
		p.sortNames(v)
		g.up[k] = slices.Compact(v)
	}
	return g
}

func (g *channel) name() string { return g.blob.Name }

// set is a set of bundle names.
type set map[string]bool

func (s set) clone() set {
	out := make(set, len(s))
	for k := range s {
		out[k] = true
	}
	return out
}

func (s set) sorted(p *pkg) []string {
	out := make([]string, 0, len(s))
	for k := range s {
		out = append(out, k)
	}
	p.sortNames(out)
	return out
}

// heads returns the members of keep that no member of keep replaces or
// skips — opm's definition of a channel head — highest version first.
func (g *channel) heads(keep set) []string {
	incoming := set{}
	for n := range keep {
		e := g.entries[n]
		if e.Replaces != "" {
			incoming[e.Replaces] = true
		}
		for _, s := range e.Skips {
			incoming[s] = true
		}
	}
	var hs []string
	for n := range keep {
		if !incoming[n] {
			hs = append(hs, n)
		}
	}
	g.pkg.sortNames(hs)
	slices.Reverse(hs)
	return hs
}

// chain walks the replaces chain from head the way opm's
// validateReplacesChain does: it stops at a replaced bundle that some kept
// bundle skips (that one is valid as skipped, and so must be everything
// below it) or that is not kept. It returns the kept bundles on the chain
// and an error on a cycle.
func (g *channel) chain(keep set, head string) (set, error) {
	skipped := g.skipped(keep)
	onChain := set{head: true}
	path := []string{head}
	for cur := g.entries[head]; cur != nil; {
		if skipped[cur.Replaces] {
			break
		}
		if onChain[cur.Replaces] {
			return nil, fmt.Errorf("replaces cycle: %s -> %s", strings.Join(path, " -> "), cur.Replaces)
		}
		onChain[cur.Replaces] = true
		path = append(path, cur.Replaces)
		if !keep[cur.Replaces] {
			break
		}
		cur = g.entries[cur.Replaces]
	}
	return onChain, nil
}

func (g *channel) skipped(keep set) set {
	s := set{}
	for n := range keep {
		for _, sk := range g.entries[n].Skips {
			s[sk] = true
		}
	}
	return s
}

// check applies opm's channel rules to the entries keep of this channel:
// exactly one head, no replaces cycle, nothing stranded. It returns the
// head.
func (g *channel) check(keep set) (string, error) {
	if len(keep) == 0 {
		return "", fmt.Errorf("no bundles")
	}
	hs := g.heads(keep)
	switch {
	case len(hs) == 0:
		return "", fmt.Errorf("no channel head (every bundle is replaced or skipped by another)")
	case len(hs) > 1:
		slices.Sort(hs)
		return "", fmt.Errorf("multiple channel heads: %s", strings.Join(hs, ", "))
	}
	onChain, err := g.chain(keep, hs[0])
	if err != nil {
		return "", err
	}
	if st := g.stranded(keep, onChain); len(st) > 0 {
		return "", fmt.Errorf("stranded bundles (neither on the replaces chain from %s nor skipped by a kept bundle): %s", hs[0], strings.Join(st, ", "))
	}
	return hs[0], nil
}

func (g *channel) stranded(keep, onChain set) []string {
	skipped := g.skipped(keep)
	var out []string
	for n := range keep {
		if !onChain[n] && !skipped[n] {
			out = append(out, n)
		}
	}
	g.pkg.sortNames(out)
	return out
}

// repair drops from keep whatever opm would call stranded, until the rest
// is valid: it takes top as the head if it is one (else the
// highest-version head; any other head is stranded by definition) and
// removes every bundle neither on its replaces chain nor skipped by a kept
// bundle; removing one can strand what only it skipped, hence the loop. It
// returns what was dropped, in version order, and an error only when no
// head is left (a cycle).
func (g *channel) repair(keep set, top string) (set, []string, error) {
	keep = keep.clone()
	var dropped []string
	for len(keep) > 0 {
		hs := g.heads(keep)
		if len(hs) == 0 {
			return nil, nil, fmt.Errorf("no channel head (every bundle is replaced or skipped by another)")
		}
		head := hs[0]
		if slices.Contains(hs, top) {
			head = top
		}
		onChain, err := g.chain(keep, head)
		if err != nil {
			return nil, nil, err
		}
		st := g.stranded(keep, onChain)
		if len(st) == 0 {
			break
		}
		for _, n := range st {
			delete(keep, n)
		}
		dropped = append(dropped, st...)
	}
	g.pkg.sortNames(dropped)
	return keep, dropped, nil
}

// sourceHead is the head of the whole source channel.
func (g *channel) sourceHead() (string, error) {
	if !g.headDone {
		g.head, g.headErr = g.computeHead()
		g.headDone = true
	}
	return g.head, g.headErr
}

func (g *channel) computeHead() (string, error) {
	all := set{}
	for n := range g.entries {
		all[n] = true
	}
	hs := g.heads(all)
	switch {
	case len(hs) == 0:
		return "", fmt.Errorf("the source channel has no head (every bundle is replaced or skipped by another)")
	case len(hs) > 1:
		slices.Sort(hs)
		return "", fmt.Errorf("the source channel has %d heads (%s), so it has no single head to keep", len(hs), strings.Join(hs, ", "))
	}
	return hs[0], nil
}

// downEdges returns, for every member y of among, the members x of among
// that upgrade to y along edges of all three kinds (y replaces x, y skips
// x, or y's skipRange covers x's version).
func (g *channel) downEdges(among set) map[string][]string {
	down := map[string][]string{}
	for y := range among {
		e := g.entries[y]
		var from []string
		if among[e.Replaces] {
			from = append(from, e.Replaces)
		}
		for _, s := range e.Skips {
			if among[s] {
				from = append(from, s)
			}
		}
		if r, ok := g.skipRanges[y]; ok {
			for x := range among {
				if b := g.pkg.bundles[x]; x != y && b != nil && b.versionErr == nil && r(b.version) {
					from = append(from, x)
				}
			}
		}
		g.pkg.sortNames(from)
		down[y] = slices.Compact(from)
	}
	return down
}

// reaching returns the members of down's domain that can upgrade to top
// without leaving it, top included.
func reaching(down map[string][]string, top string) set {
	reached := set{top: true}
	queue := []string{top}
	for len(queue) > 0 {
		y := queue[0]
		queue = queue[1:]
		for _, x := range down[y] {
			if !reached[x] {
				reached[x] = true
				queue = append(queue, x)
			}
		}
	}
	return reached
}

// rangeTop picks the bundle a range is kept below: of the bundles in among
// that upgrade to nothing else in among, the one the most of among can
// reach, then the highest version. Usually that is simply the highest
// version in range; it is not when versions go backwards along the graph
// (a head 1.0.1-1 that replaces 1.0.1), and then the graph wins, because
// the graph is what OLM follows.
func (g *channel) rangeTop(among set, down map[string][]string) (string, set) {
	upgradesWithin := set{}
	for _, xs := range down {
		for _, x := range xs {
			upgradesWithin[x] = true
		}
	}
	var best string
	var bestReach set
	for _, n := range among.sorted(g.pkg) { // ascending: ties go to the later, higher version
		if upgradesWithin[n] {
			continue
		}
		r := reaching(down, n)
		if best == "" || len(r) >= len(bestReach) {
			best, bestReach = n, r
		}
	}
	if best == "" { // every bundle upgrades to another: a cycle; take the highest
		names := among.sorted(g.pkg)
		best = names[len(names)-1]
		bestReach = reaching(down, best)
	}
	return best, bestReach
}

// upgradeTargets lists the entries bundle n upgrades to along any edge, for
// messages.
func (g *channel) upgradeTargets(n string) []string {
	out := slices.Clone(g.up[n])
	if b := g.pkg.bundles[n]; b != nil && b.versionErr == nil {
		for y, r := range g.skipRanges {
			if y != n && r(b.version) {
				out = append(out, y)
			}
		}
	}
	g.pkg.sortNames(out)
	return slices.Compact(out)
}

// pathUp finds a shortest path from `from` upwards along replaces and skips
// edges (the only ones that make a bundle valid) to a bundle for which
// stop is true. It returns the path without the stop bundle, starting with
// from, or nil when there is none.
func (g *channel) pathUp(from string, stop func(string) bool) []string {
	prev := map[string]string{from: ""}
	queue := []string{from}
	for len(queue) > 0 {
		x := queue[0]
		queue = queue[1:]
		for _, y := range g.up[x] {
			if _, seen := prev[y]; seen {
				continue
			}
			prev[y] = x
			if stop(y) {
				var path []string
				for n := x; n != ""; n = prev[n] {
					path = append(path, n)
				}
				slices.Reverse(path)
				return path
			}
			queue = append(queue, y)
		}
	}
	return nil
}

// describeUpgrades says where a bundle's upgrade edges lead, for warnings.
func (g *channel) describeUpgrades(n string) string {
	ts := g.upgradeTargets(n)
	if len(ts) == 0 {
		return "nothing in the channel replaces, skips or skipRanges it"
	}
	return "it upgrades only to " + strings.Join(ts, ", ")
}
