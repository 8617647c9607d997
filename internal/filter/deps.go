package filter

import (
	"slices"
	"strings"
)

// resolveDependencies keeps, for every kept bundle, something that
// satisfies each of its olm.package.required and olm.gvk.required
// properties, transitively: bundles added for a requirement have their own
// requirements resolved in turn. Bundles are visited in package, version,
// name order so the result does not depend on map iteration.
func (st *state) resolveDependencies() {
	queue := st.keptBundles()
	done := map[*bundle]bool{}
	for len(queue) > 0 {
		b := queue[0]
		queue = queue[1:]
		if done[b] {
			continue
		}
		done[b] = true
		for _, r := range b.requires {
			queue = append(queue, st.resolve(b, r)...)
		}
	}
}

// keptBundles lists every kept bundle in package, version, name order.
func (st *state) keptBundles() []*bundle {
	var out []*bundle
	for _, name := range st.cat.pkgNames {
		kp := st.kept[name]
		if kp == nil {
			continue
		}
		for _, n := range kp.bundles().sorted(kp.p) {
			if b := kp.p.bundles[n]; b != nil {
				out = append(out, b)
			}
		}
	}
	return out
}

func (st *state) isKept(b *bundle) bool {
	kp := st.kept[b.pkg]
	if kp == nil {
		return false
	}
	for _, s := range kp.channels {
		if s[b.blob.Name] {
			return true
		}
	}
	return false
}

func satisfies(b *bundle, r requirement) bool {
	switch {
	case r.pkg != nil:
		return b.pkg == r.pkg.PackageName && b.versionErr == nil && r.rng != nil && r.rng(b.version)
	case r.gvk != nil:
		return slices.Contains(b.provides, *r.gvk)
	}
	return false
}

// resolve meets one requirement of kept bundle b and returns the bundles it
// added.
func (st *state) resolve(b *bundle, r requirement) []*bundle {
	pkgName, name := b.pkg, b.blob.Name
	if r.problem != "" {
		st.warn(UnresolvedDependency, pkgName, "", name, "bundle %s: %s does not parse (%s); not resolved", name, r, r.problem)
		return nil
	}
	cands := st.candidates(r)
	for _, c := range cands {
		if st.isKept(c) {
			if c != b { // a bundle that provides what it requires needs no note
				st.deps = append(st.deps, Dependency{Bundle: name, Requirement: r.String(), Provider: c.blob.Name, ProviderPackage: c.pkg})
			}
			return nil
		}
	}
	if len(cands) == 0 {
		st.warn(UnresolvedDependency, pkgName, "", name, "bundle %s requires %s, which no bundle in the catalog provides", name, r)
		return nil
	}
	for _, c := range cands {
		added, ok := st.place(c)
		if !ok {
			continue
		}
		d := Dependency{Bundle: name, Requirement: r.String(), Provider: c.blob.Name, ProviderPackage: c.pkg}
		for _, a := range added {
			d.Added = append(d.Added, a.blob.Name)
		}
		st.deps = append(st.deps, d)
		return added
	}
	names := make([]string, 0, len(cands))
	for _, c := range cands {
		names = append(names, c.blob.Name)
	}
	st.warn(UnresolvedDependency, pkgName, "", name, "bundle %s requires %s; %s provide it, but none can be added to a channel without making the channel invalid", name, r, strings.Join(names, ", "))
	return nil
}

// candidates are the bundles that satisfy r and sit in some channel, best
// first: heads of their package's default channel; then bundles of
// packages already kept (so a requirement does not pull in a second
// package when a kept one can serve); then by package name and, within a
// package, bundles of the default channel before others (as OLM's resolver
// orders channels), highest version first.
func (st *state) candidates(r requirement) []*bundle {
	var out []*bundle
	switch {
	case r.pkg != nil:
		if p := st.cat.pkgs[r.pkg.PackageName]; p != nil {
			for _, b := range p.sortedBundles() {
				if len(b.channels) > 0 && satisfies(b, r) {
					out = append(out, b)
				}
			}
		}
	case r.gvk != nil:
		for _, b := range st.cat.gvkProviders[*r.gvk] {
			if len(b.channels) > 0 {
				out = append(out, b)
			}
		}
	}
	rank := func(b *bundle) (head, kept int) {
		if st.isDefaultHead(b) {
			head = 1
		}
		if st.kept[b.pkg] != nil {
			kept = 1
		}
		return
	}
	slices.SortStableFunc(out, func(x, y *bundle) int {
		hx, kx := rank(x)
		hy, ky := rank(y)
		switch {
		case hx != hy:
			return hy - hx
		case kx != ky:
			return ky - kx
		}
		if x.pkg != y.pkg {
			// Versions of different packages say nothing about each other.
			return strings.Compare(x.pkg, y.pkg)
		}
		if dx, dy := st.inDefaultChannel(x), st.inDefaultChannel(y); dx != dy {
			if dx {
				return -1
			}
			return 1
		}
		return compareBundles(y, x)
	})
	return out
}

// inDefaultChannel: b is an entry of its package's default channel in the
// source catalog. OLM's resolver prefers the default channel among a
// package's channels, so a dependency kept from it is the one a cluster
// would pick.
func (st *state) inDefaultChannel(b *bundle) bool {
	return slices.Contains(b.channels, st.cat.pkgs[b.pkg].blob.DefaultChannel)
}

// isDefaultHead: b is the head of its package's default channel in the
// source catalog.
func (st *state) isDefaultHead(b *bundle) bool {
	p := st.cat.pkgs[b.pkg]
	g := p.channels[p.blob.DefaultChannel]
	if g == nil {
		return false
	}
	h, err := g.sourceHead()
	return err == nil && h == b.blob.Name
}

// place keeps bundle c in one of its channels so that the channel stays
// valid, and returns what it added. It prefers channels already kept (c
// joins the graph there, with the bundles that connect it), then the
// default channel, then a channel whose head c is; a channel not yet kept
// gets only c, which is then its head. A package kept only for a dependency keeps its
// default channel too (its head), so the publisher's default is not
// rewritten behind the user's back.
func (st *state) place(c *bundle) ([]*bundle, bool) {
	p := st.cat.pkgs[c.pkg]
	kp := st.kept[c.pkg]
	def := p.blob.DefaultChannel
	if kp != nil {
		def = kp.defaultChannel
	}
	order := slices.Clone(c.channels)
	score := func(ch string) int {
		s := 0
		if kp != nil && kp.channels[ch] != nil {
			s += 4
		}
		if ch == def {
			s += 2
		}
		if h, err := p.channels[ch].sourceHead(); err == nil && h == c.blob.Name {
			s++ // a channel c heads is kept whole at its top, not cut short
		}
		return s
	}
	slices.SortStableFunc(order, func(a, b string) int { return score(b) - score(a) })

	for _, chName := range order {
		g := p.channels[chName]
		if kp != nil && kp.channels[chName] != nil {
			cur := kp.channels[chName]
			next, ok := connect(g, cur, c.blob.Name)
			if !ok {
				continue
			}
			kp.channels[chName] = next
			return st.addedBundles(p, next, cur), true
		}
		if st.checkSourceChannel(g, set{c.blob.Name: true}) != nil {
			continue
		}
		added := []*bundle{c}
		if kp == nil {
			dg := p.channels[p.blob.DefaultChannel]
			if dg == nil {
				return nil, false // no valid package can hold it
			}
			nkp := &keptPackage{p: p, defaultChannel: p.blob.DefaultChannel, channels: map[string]set{}}
			if chName != dg.name() {
				h, err := dg.sourceHead()
				if err != nil || st.checkSourceChannel(dg, set{h: true}) != nil {
					return nil, false
				}
				nkp.channels[dg.name()] = set{h: true}
				added = append(added, p.bundles[h])
			}
			kp = nkp
			st.kept[c.pkg] = kp
		}
		kp.channels[chName] = set{c.blob.Name: true}
		return added, true
	}
	return nil, false
}

func (st *state) addedBundles(p *pkg, next, cur set) []*bundle {
	var names []string
	for n := range next {
		if !cur[n] {
			names = append(names, n)
		}
	}
	p.sortNames(names)
	out := make([]*bundle, 0, len(names))
	for _, n := range names {
		out = append(out, p.bundles[n])
	}
	return out
}

// connect adds bundle c to the kept entries cur of channel g with the
// bundles between them: upwards from c to the nearest kept bundle, or, when
// c is above everything kept, from the kept head up to c (c becomes the
// head). It refuses rather than return an invalid channel.
func connect(g *channel, cur set, c string) (set, bool) {
	if cur[c] {
		return cur, true
	}
	if g.pkg.bundles[c] == nil {
		return nil, false
	}
	next := cur.clone()
	if path := g.pathUp(c, func(n string) bool { return cur[n] }); path != nil {
		for _, n := range path {
			next[n] = true
		}
	} else {
		hs := g.heads(cur)
		if len(hs) != 1 {
			return nil, false
		}
		path := g.pathUp(hs[0], func(n string) bool { return n == c })
		if path == nil {
			return nil, false
		}
		for _, n := range path {
			next[n] = true
		}
		next[c] = true
	}
	for n := range next {
		if g.pkg.bundles[n] == nil {
			return nil, false
		}
	}
	if _, err := g.check(next); err != nil {
		return nil, false
	}
	return next, true
}
