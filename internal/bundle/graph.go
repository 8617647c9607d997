package bundle

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/ferry-gitops/ferry/internal/fbc"
)

// checkGraph applies `opm validate`'s rules for a channel's upgrade graph
// (operator-registry's Channel.validateReplacesChain): exactly one head; the
// replaces chain from the head, cut where it reaches a skipped bundle, has
// no cycle; and every entry is on that chain or skipped by some entry.
// Replaces naming a bundle outside the channel end the chain, which opm
// accepts.
func checkGraph(entries []fbc.ChannelEntry) error {
	heads := fbc.ChannelHeads(entries)
	switch {
	case len(entries) == 0:
		return errors.New("channel has no entries")
	case len(heads) == 0:
		return errors.New("no channel head found in graph")
	case len(heads) > 1:
		return fmt.Errorf("multiple channel heads found in graph: %s", strings.Join(heads, ", "))
	}
	byName := map[string]fbc.ChannelEntry{}
	skipped := map[string]bool{}
	for _, e := range entries {
		byName[e.Name] = e
		for _, s := range e.Skips {
			skipped[s] = true
		}
	}
	chain := []string{heads[0]}
	onChain := map[string]bool{heads[0]: true}
	for cur, ok := byName[heads[0]]; ok; cur, ok = byName[cur.Replaces] {
		if cur.Replaces == "" || skipped[cur.Replaces] {
			break
		}
		if onChain[cur.Replaces] {
			i := slices.Index(chain, cur.Replaces)
			return fmt.Errorf("detected cycle in replaces chain of upgrade graph: %s -> %s", strings.Join(chain[i:], " -> "), cur.Replaces)
		}
		chain = append(chain, cur.Replaces)
		onChain[cur.Replaces] = true
	}
	var stranded []string
	for _, e := range entries {
		if !onChain[e.Name] && !skipped[e.Name] && !slices.Contains(stranded, e.Name) {
			stranded = append(stranded, e.Name)
		}
	}
	if len(stranded) > 0 {
		slices.Sort(stranded)
		return fmt.Errorf("channel contains one or more stranded bundles: %s", strings.Join(stranded, ", "))
	}
	return nil
}
