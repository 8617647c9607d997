package bundle

import (
	"slices"
	"strings"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// placeBySemver inserts e into a channel by version, giving the channel
// opm's semver and semver-skippatch modes give (operator-registry
// v1.73.0's BundleGraphLoader, then its SQLite loader writing the graph
// back), with three differences where opm's result is no catalog at all:
//
//   - opm keeps only the bundles on one replaces chain from the head and
//     refuses the whole channel otherwise ("Invalid graph"); in FBC a
//     bundle may also be valid because another skips it, so such entries
//     are kept as the catalog had them, and the result must pass opm
//     validate's rules.
//   - where a bundle's edges point at two bundles still in the channel,
//     opm follows one of them at random; Ferry follows the higher version
//     and keeps the other as a skip.
//   - in skip-patch mode, when the highest version below the new bundle is
//     one of the patches it skips, opm leaves the new bundle without a
//     replaces and refuses the channel if anything older remains; Ferry
//     makes it replace the highest remaining version below it.
//
// The CSV's own replaces and skips are ignored, as opm ignores them in
// these modes; e's skipRange is kept.
func placeBySemver(old []fbc.ChannelEntry, e fbc.ChannelEntry, versions map[string]pkgVersion, skipPatch bool) ([]fbc.ChannelEntry, error) {
	if err := checkGraph(old); err != nil {
		return nil, newProblem(ErrGraphConflict, "cannot place by version in a channel that is not valid: %v", err)
	}
	head := fbc.ChannelHeads(old)[0]
	v := versions[e.Name].version

	// opm's graph: every entry is a node whose outgoing edges are its
	// replaces and its skips, one set.
	targets := map[string][]string{}
	inChannel := map[string]bool{}
	byName := map[string]fbc.ChannelEntry{}
	for _, o := range old {
		ov, ok := versions[o.Name]
		if !ok {
			return nil, newProblem(ErrGraphConflict, "cannot place by version: bundle %q of the channel has no usable version", o.Name)
		}
		if ov.version.Compare(v) == 0 {
			return nil, newProblem(ErrDuplicateVersion, "version %s is already in the channel: bundle %q", v, o.Name)
		}
		inChannel[o.Name] = true
		byName[o.Name] = o
		t := []string{}
		if o.Replaces != "" {
			t = append(t, o.Replaces)
		}
		for _, s := range o.Skips {
			if !slices.Contains(t, s) {
				t = append(t, s)
			}
		}
		targets[o.Name] = t
	}

	// AddBundleToGraph: the new node replaces the highest version below
	// it (and, skipping patches, every lower version of its major.minor,
	// which leave the graph); the lowest version above it now replaces
	// only it, or it becomes the head.
	var lowestAhead, greatestBehind string
	var patches []string
	for _, o := range old {
		ov := versions[o.Name].version
		switch ov.Compare(v) {
		case 1:
			if lowestAhead == "" || ov.LT(versions[lowestAhead].version) {
				lowestAhead = o.Name
			}
		case -1:
			if greatestBehind == "" || ov.GT(versions[greatestBehind].version) {
				greatestBehind = o.Name
			}
			if skipPatch && ov.Major == v.Major && ov.Minor == v.Minor {
				patches = append(patches, o.Name)
			}
		}
	}
	var newTargets []string
	if greatestBehind != "" {
		newTargets = append(newTargets, greatestBehind)
	}
	for _, p := range patches {
		if !slices.Contains(newTargets, p) {
			newTargets = append(newTargets, p)
		}
	}
	if lowestAhead != "" {
		targets[lowestAhead] = []string{e.Name}
	} else {
		head = e.Name
	}
	for _, p := range patches {
		delete(inChannel, p)
	}
	if slices.Contains(patches, greatestBehind) {
		// Ferry's one addition to opm's rule (see above).
		best := ""
		for n := range inChannel {
			if versions[n].version.LT(v) && (best == "" || versions[n].version.GT(versions[best].version)) {
				best = n
			}
		}
		if best != "" {
			newTargets = append(newTargets, best)
		}
	}
	inChannel[e.Name] = true
	targets[e.Name] = newTargets

	// The SQLite loader writes the chain from the head: an edge to a node
	// still in the graph is the replaces (the next link), every other
	// edge a skip.
	placed := map[string]fbc.ChannelEntry{}
	for cur := head; cur != ""; {
		if _, seen := placed[cur]; seen {
			return nil, newProblem(ErrGraphConflict, "placing by version makes a replaces cycle through %q", cur)
		}
		ne := fbc.ChannelEntry{Name: cur, SkipRange: byName[cur].SkipRange}
		if cur == e.Name {
			ne.SkipRange = e.SkipRange
		}
		next := ""
		for _, t := range targets[cur] {
			if inChannel[t] && (next == "" || versions[t].version.GT(versions[next].version)) {
				next = t
			}
		}
		for _, t := range targets[cur] {
			if t != next {
				ne.Skips = append(ne.Skips, t)
			}
		}
		sortByVersion(ne.Skips, versions)
		ne.Replaces = next
		placed[cur] = ne
		cur = next
	}

	out := make([]fbc.ChannelEntry, 0, len(old)+1)
	for _, o := range old {
		switch {
		case placed[o.Name].Name != "":
			out = append(out, placed[o.Name])
		case slices.Contains(patches, o.Name):
			// Left the graph: the loader keeps it as an entry without
			// edges, skipped by the new bundle.
			out = append(out, fbc.ChannelEntry{Name: o.Name, SkipRange: o.SkipRange})
		default:
			out = append(out, o) // off opm's chain; valid only if skipped
		}
	}
	ne, ok := placed[e.Name]
	if !ok {
		return nil, newProblem(ErrGraphConflict, "placing %q by version leaves it off the replaces chain from %q", e.Name, head)
	}
	out = append(out, ne)
	if err := checkGraph(out); err != nil {
		return nil, newProblem(ErrGraphConflict, "placing by version: %v", err)
	}
	return out, nil
}

// sortByVersion orders bundle names by version, names the package does
// not have last, by name.
func sortByVersion(names []string, versions map[string]pkgVersion) {
	slices.SortFunc(names, func(a, b string) int {
		va, oka := versions[a]
		vb, okb := versions[b]
		switch {
		case oka && okb:
			if c := va.compare(vb); c != 0 {
				return c
			}
		case oka:
			return -1
		case okb:
			return 1
		}
		return strings.Compare(a, b)
	})
}
