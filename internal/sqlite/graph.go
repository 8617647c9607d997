package sqlite

import (
	"database/sql"
	"strings"
)

// channelBundle is one bundle in one channel with its incoming edges, what
// opm's ListBundles query returns per row.
type channelBundle struct {
	bundle   bundleRow
	pkg      string
	channel  string
	replaces string
	skips    []string // nil when the bundle skips nothing
}

// groupKey identifies a bundle in a channel of a package; NULLs group
// together, as in SQL's GROUP BY.
type groupKey struct {
	bundle, pkg, channel sql.NullString
}

// channelBundles derives every bundle's edges in every channel from the
// channel_entry table the way operator-registry's ListBundles query does.
//
// channel_entry rows are incoming edges: an entry replaces the entry whose
// id it holds. Starting from the entries of the smallest depth in the whole
// table (the channel heads), following replaces pointers marks the
// "replaces chain". A bundle's replaces in a channel is the (greatest, by
// name) bundle one of its chain entries points at; every other edge out of
// its entries is a skip, in entry id order.
func channelBundles(x *index) []channelBundle {
	byID := make(map[int64]*entryRow, len(x.entries))
	var (
		minDepth int64
		hasDepth bool
	)
	for i := range x.entries {
		e := &x.entries[i]
		byID[e.id] = e
		if e.depth.Valid && (!hasDepth || e.depth.Int64 < minDepth) {
			minDepth, hasDepth = e.depth.Int64, true
		}
	}

	// The replaces chain: entries reachable over replaces pointers from the
	// entries at the smallest depth.
	onChain := map[int64]bool{}
	var todo []int64
	for _, e := range x.entries {
		if hasDepth && e.depth.Valid && e.depth.Int64 == minDepth && !onChain[e.id] {
			onChain[e.id] = true
			todo = append(todo, e.id)
		}
	}
	for len(todo) > 0 {
		e := byID[todo[len(todo)-1]]
		todo = todo[:len(todo)-1]
		if !e.replaces.Valid {
			continue
		}
		if next, ok := byID[e.replaces.Int64]; ok && !onChain[next.id] {
			onChain[next.id] = true
			todo = append(todo, next.id)
		}
	}

	type group struct {
		replaces    sql.NullString
		skipped     []string
		haveSkipRow bool
	}
	groups := map[groupKey]*group{}
	var order []groupKey
	for _, e := range x.entries { // in entry id order
		k := groupKey{e.bundle, e.pkg, e.channel}
		g := groups[k]
		if g == nil {
			g = &group{}
			groups[k] = g
			order = append(order, k)
		}
		if !e.replaces.Valid {
			continue
		}
		target, ok := byID[e.replaces.Int64]
		if !ok {
			continue // an inner join on the replaced entry drops the edge
		}
		if onChain[e.id] {
			if target.bundle.Valid && (!g.replaces.Valid || target.bundle.String > g.replaces.String) {
				g.replaces = target.bundle
			}
			continue
		}
		g.haveSkipRow = true
		if target.bundle.Valid { // group_concat ignores NULLs
			g.skipped = append(g.skipped, target.bundle.String)
		}
	}

	var out []channelBundle
	for _, k := range order {
		if !k.bundle.Valid || !k.channel.Valid {
			continue
		}
		b, ok := x.bundles[k.bundle.String]
		if !ok || !b.version.Valid || !b.bundlePath.Valid {
			continue
		}
		g := groups[k]
		cb := channelBundle{bundle: b, pkg: k.pkg.String, channel: k.channel.String, replaces: g.replaces.String}
		if g.haveSkipRow && len(g.skipped) > 0 {
			// The query joins skipped names with "," and opm splits them
			// again, so a name with a comma in it comes out in pieces.
			cb.skips = strings.Split(strings.Join(g.skipped, ","), ",")
		}
		out = append(out, cb)
	}
	return out
}
