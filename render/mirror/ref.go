package mirror

import (
	"fmt"
	"hash/fnv"
	"strings"

	"github.com/distribution/reference"
)

// ref is an image reference as Ferry normalizes it: docker.io/library/ for
// Docker Hub short names, :latest when neither tag nor digest is given.
type ref struct {
	repo   string // host/path
	host   string
	path   string // the repository path below the host
	tag    string
	digest string
}

func parseRef(s string) (ref, error) {
	n, err := reference.ParseNormalizedNamed(strings.TrimSpace(s))
	if err != nil {
		return ref{}, err
	}
	if reference.IsNameOnly(n) {
		n = reference.TagNameOnly(n)
	}
	r := ref{repo: n.Name(), host: reference.Domain(n), path: reference.Path(n)}
	if t, ok := n.(reference.Tagged); ok {
		r.tag = t.Tag()
	}
	if d, ok := n.(reference.Digested); ok {
		r.digest = d.Digest().String()
	}
	return r, nil
}

// String is the full normalized reference: repo[:tag][@digest].
func (r ref) String() string {
	s := r.repo
	if r.tag != "" {
		s += ":" + r.tag
	}
	if r.digest != "" {
		s += "@" + r.digest
	}
	return s
}

// checkDigest reports whether d is a digest a reference can carry
// (algorithm:hex of the right length).
func checkDigest(d string) error {
	if _, err := reference.ParseNormalizedNamed("example.com/x@" + d); err != nil {
		return fmt.Errorf("%q is not a digest", d)
	}
	return nil
}

// HashTag is the destination tag of a digest-only source: the FNV-1a
// 32-bit hash of the source reference in lower-case hex, the rule of
// `oc adm catalog mirror` (pkg/cli/admin/catalog/mirrorer.go, mount), so
// mirrors made by oc and by Ferry agree. oc hashes the reference as written;
// Ferry hashes it normalized (host/path@digest), which is the same string
// for the fully qualified references catalogs use.
func HashTag(source string) string {
	h := fnv.New32a()
	h.Write([]byte(source))
	return fmt.Sprintf("%x", h.Sum32())
}
