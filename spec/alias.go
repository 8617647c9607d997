package spec

import (
	"fmt"

	"go.yaml.in/yaml/v3"
)

// checkAliases bounds a document before it is decoded: its size as
// written (MaxDocumentNodes), and what its YAML aliases expand to. The decoder follows an alias every time it is used, so ten
// nested lists of ten aliases each ("billion laughs") turn a 2 KB file into
// ten billion decoded values. Sizes are computed once per node (memoised),
// so the check itself is linear in the written document.
//
// It returns the problem found, located at the alias that crossed a limit,
// or ok.
func checkAliases(doc *yaml.Node) (line int, msg string, ok bool) {
	written, aliases := countWritten(doc)
	if written > MaxDocumentNodes {
		return doc.Line, fmt.Sprintf("this document has %d YAML values, over the %d limit for one document: split it", written, MaxDocumentNodes), false
	}
	if !aliases {
		return 0, "", true
	}
	a := &aliasSizes{size: map[*yaml.Node]int64{}, depth: map[*yaml.Node]int{}, busy: map[*yaml.Node]bool{}}
	if n := a.measure(doc); n != nil {
		return n.Line, fmt.Sprintf("alias *%s refers to a node that contains it; YAML aliases may not be recursive", n.Value), false
	}
	// Walk the document as written, adding what each alias used in it
	// stands for, to report the first one that crosses the limit.
	var added int64
	var found *yaml.Node
	var walk func(n *yaml.Node) bool
	walk = func(n *yaml.Node) bool {
		if n.Kind == yaml.AliasNode {
			if d := a.depth[n]; d > MaxAliasDepth {
				found, msg = n, fmt.Sprintf("alias *%s nests aliases %d deep; at most %d are allowed", n.Value, d, MaxAliasDepth)
				return false
			}
			added = satAdd(added, a.size[n.Alias]-1)
			if added > MaxAliasNodes {
				found, msg = n, fmt.Sprintf("aliases expand this document by more than %d nodes (alias *%s alone stands for %s); write the values out or share less: the limit keeps a small file from expanding into gigabytes", MaxAliasNodes, n.Value, countNodes(a.size[n.Alias]))
				return false
			}
			return true
		}
		for _, c := range n.Content {
			if !walk(c) {
				return false
			}
		}
		return true
	}
	if walk(doc) {
		return 0, "", true
	}
	return found.Line, msg, false
}

// countWritten counts the nodes of a document as written (an alias counts
// once) and says whether it uses aliases at all.
func countWritten(n *yaml.Node) (int, bool) {
	count, alias := 1, n.Kind == yaml.AliasNode
	for _, c := range n.Content {
		k, a := countWritten(c)
		count += k
		alias = alias || a
	}
	return count, alias
}

// aliasSizes memoises, per node, how many nodes it stands for with every
// alias expanded (saturating, so no count overflows) and how deeply
// aliases nest inside it.
type aliasSizes struct {
	size  map[*yaml.Node]int64
	depth map[*yaml.Node]int
	busy  map[*yaml.Node]bool
}

// measure fills the maps for n and returns an alias that leads back into
// a node being measured (a cycle), if any.
func (a *aliasSizes) measure(n *yaml.Node) *yaml.Node {
	if _, done := a.size[n]; done {
		return nil
	}
	if a.busy[n] {
		return n
	}
	a.busy[n] = true
	defer delete(a.busy, n)
	if n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			a.size[n] = 1
			return nil
		}
		if a.busy[n.Alias] {
			return n
		}
		if c := a.measure(n.Alias); c != nil {
			return c
		}
		a.size[n] = a.size[n.Alias]
		a.depth[n] = a.depth[n.Alias] + 1
		return nil
	}
	var size int64 = 1
	depth := 0
	for _, c := range n.Content {
		if cyc := a.measure(c); cyc != nil {
			return cyc
		}
		size = satAdd(size, a.size[c])
		depth = max(depth, a.depth[c])
	}
	a.size[n], a.depth[n] = size, depth
	return nil
}

const sizeCap = int64(1) << 50

func satAdd(a, b int64) int64 {
	if a+b > sizeCap {
		return sizeCap
	}
	return a + b
}

func countNodes(n int64) string {
	if n >= sizeCap {
		return "more than 10^15 nodes"
	}
	return fmt.Sprintf("%d nodes", n)
}
