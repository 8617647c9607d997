package fbc

import "sync"

// scratch is the working memory of one loading or writing goroutine: tree
// storage and two byte buffers. Loading grows them to the biggest file and
// document; recycling them through scratchPool lets the writer reuse that
// memory instead of growing its own while the loaded catalog is live, which
// keeps the peak heap near the size of the catalog itself.
type scratch struct {
	nodes []node
	text  []byte
	stack []int32
	a, b  []byte
}

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func getScratch() *scratch { return scratchPool.Get().(*scratch) }

// useTree gives t the scratch's tree storage.
func (s *scratch) useTree(t *tree) {
	t.nodes, t.buf, t.stack = s.nodes[:0], s.text[:0], s.stack[:0]
}

// keepTree takes back t's (possibly grown) storage.
func (s *scratch) keepTree(t *tree) {
	s.nodes, s.text, s.stack = t.nodes[:0], t.buf[:0], t.stack[:0]
	t.nodes, t.buf, t.stack, t.src = nil, nil, nil, nil
	clear(t.extra)
}

func putScratch(s *scratch) { scratchPool.Put(s) }
