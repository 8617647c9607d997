package filter

import (
	"slices"

	"github.com/ferry-gitops/ferry/spec"
)

// Options are Filter's settings beyond what a CatalogSpec selects.
type Options struct {
	// Keep names bundles, by package, that the result must serve whatever
	// the selection: the bundles a Catalog adds (spec.bundles), which
	// were put into the catalog before it is filtered. Each is kept in
	// every channel that lists it, with the entries of the replaces chain
	// that connect it to the rest of the kept channel, so the channel
	// stays valid. A package the spec does not name is kept as a package
	// named alone would be (the head of its default channel) plus its
	// kept bundles.
	Keep map[string][]string
}

// keep applies Options.Keep after the selection.
func (st *state) keep(opts Options, whole bool) {
	for _, pkgName := range sortedKeys(opts.Keep) {
		kp := st.kept[pkgName]
		if kp == nil && !whole {
			if st.cat.pkgs[pkgName] == nil {
				st.problem(PackageNotFound, pkgName, "", "not in the catalog")
				continue
			}
			st.selectPackage(spec.Package{Name: pkgName})
			if kp = st.kept[pkgName]; kp == nil {
				continue // reported by selectPackage
			}
			kp.selected = false
		}
		if kp == nil {
			continue // a whole-catalog selection has already failed on it
		}
		for _, n := range opts.Keep[pkgName] {
			st.keepBundle(kp, n)
		}
	}
}

// keepBundle adds bundle n to every kept-or-not channel of kp that lists
// it, plus the part of the replaces chain from the channel head that joins
// it to what the channel already keeps.
func (st *state) keepBundle(kp *keptPackage, n string) {
	p := kp.p
	if p.bundles[n] == nil {
		st.problem(InvalidSource, p.blob.Name, "", "added bundle %s is not in the catalog", n)
		return
	}
	for _, chName := range p.chNames {
		g := p.channels[chName]
		if g.entries[n] == nil {
			continue
		}
		keep := kp.channels[chName].clone()
		keep[n] = true
		head, err := g.sourceHead()
		if err != nil {
			st.problem(InvalidSource, p.blob.Name, chName, "cannot keep added bundle %s: %v", n, err)
			continue
		}
		keep = g.connect(keep, head)
		if _, err := g.check(keep); err != nil {
			st.problem(InvalidSource, p.blob.Name, chName, "cannot keep added bundle %s: %v", n, err)
			continue
		}
		kp.channels[chName] = keep
	}
}

// connect returns keep plus the stretch of the replaces chain from head
// that runs from its highest to its lowest member; a member off the chain
// counts where a chain entry skips it.
func (g *channel) connect(keep set, head string) set {
	var chain []string
	pos := map[string]int{}
	for cur := head; cur != ""; {
		if _, seen := pos[cur]; seen || g.entries[cur] == nil {
			break
		}
		pos[cur] = len(chain)
		chain = append(chain, cur)
		cur = g.entries[cur].Replaces
	}
	lo, hi := -1, -1
	mark := func(i int) {
		if lo < 0 || i < lo {
			lo = i
		}
		if i > hi {
			hi = i
		}
	}
	for m := range keep {
		if i, ok := pos[m]; ok {
			mark(i)
			continue
		}
		for i, c := range chain {
			if slices.Contains(g.entries[c].Skips, m) {
				mark(i)
				break
			}
		}
	}
	out := keep.clone()
	for i := lo; i >= 0 && i <= hi; i++ {
		out[chain[i]] = true
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
