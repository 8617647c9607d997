package mirror

import (
	"sort"
	"strings"
)

// Achieved is the part of the set that the mirror holds after a run that
// may have failed in part, so that what is committed (mapping.txt, the
// mirror sets, the lock) describes the mirror rather than the intent:
//
//   - an image for which done reports true is kept as the set has it;
//   - an image that is not done keeps the entry the previous lock had for
//     the same source, if any (the mirror still holds that digest), and is
//     left out otherwise;
//   - a catalog in held keeps its previous lock entry and the previous
//     entry of its built image, or has none when it was never locked.
//
// previous is the last committed lock, nil when there is none. The set s
// is not changed.
func (s *Set) Achieved(done func(*Image) bool, held map[string]bool, previous *Lock) *Set {
	out := &Set{Mirror: s.Mirror, Revision: s.Revision, Blocked: s.Blocked}
	prevImages := map[string]LockedImage{}
	prevCatalogs := map[string]LockedCatalog{}
	if previous != nil {
		for _, li := range previous.Images {
			prevImages[li.Source] = li
		}
		for _, lc := range previous.Catalogs {
			prevCatalogs[lc.Name] = lc
		}
	}
	have := map[string]bool{}
	keepPrevious := func(li LockedImage) {
		if !have[li.Source] {
			have[li.Source] = true
			out.Images = append(out.Images, s.fromLock(li))
		}
	}
	for i := range s.Images {
		img := &s.Images[i]
		switch {
		case done(img):
			have[img.Source] = true
			out.Images = append(out.Images, *img)
		default:
			if li, ok := prevImages[img.Source]; ok {
				keepPrevious(li)
			}
		}
	}
	for _, lc := range s.Catalogs {
		if !held[lc.Name] {
			out.Catalogs = append(out.Catalogs, lc)
			continue
		}
		pc, ok := prevCatalogs[lc.Name]
		if !ok {
			continue
		}
		out.Catalogs = append(out.Catalogs, pc)
		if pc.Digest == "" {
			continue
		}
		for _, li := range previous.Images {
			if r, err := parseRef(li.Source); err == nil && li.Digest == pc.Digest && r.repo == repositoryOf(pc.Target) {
				keepPrevious(li)
			}
		}
	}
	sort.Slice(out.Images, func(i, j int) bool { return out.Images[i].Source < out.Images[j].Source })
	if previous != nil && sameButRevision(out.Lock(), previous) {
		// Nothing the new revision asked for reached the mirror: the lock
		// still describes the mirror as the previous revision left it.
		out.Revision = previous.Revision
	}
	return out
}

func sameButRevision(a, b *Lock) bool {
	x, y := *a, *b
	x.Revision, y.Revision = "", ""
	bx, err1 := x.Marshal()
	by, err2 := y.Marshal()
	return err1 == nil && err2 == nil && string(bx) == string(by)
}

// fromLock rebuilds an image of this set's mirror from a lock entry. The
// lock does not record roles or catalogs; neither appears in the rendered
// files.
func (s *Set) fromLock(li LockedImage) Image {
	img := Image{Source: li.Source, Digest: li.Digest, Destination: li.Destination}
	if r, err := parseRef(li.Source); err == nil {
		img.Repository, img.Tag, img.Resolved = r.repo, r.tag, r.digest == ""
		mhost, mns, _ := strings.Cut(s.Mirror.Registry, "/")
		img.InPlace = inMirror(r, mhost, strings.Trim(mns, "/"))
	}
	img.DestinationRepository = repositoryOf(li.Destination)
	return img
}

// repositoryOf strips a tag or digest from a reference.
func repositoryOf(ref string) string {
	if at := strings.Index(ref, "@"); at >= 0 {
		ref = ref[:at]
	}
	return repoOf(ref)
}
