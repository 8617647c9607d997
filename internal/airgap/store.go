package airgap

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// manifestLimit is the largest manifest accepted, as distribution's.
const manifestLimit = 4 << 20

// store is an export's archive as the write-only local registry sees it:
// what it holds (content-addressed, whatever repository it was pushed to),
// and what earlier archives carried, which it reports as present so the
// engine never fetches it. Repositories matter only for carried manifests:
// an earlier import put a manifest into one repository of the mirror, and
// a new destination needs its bytes.
type store struct {
	sink     sink
	carried  Carried
	destHost string // the mirror registry; carried keys are host/path

	mu       sync.Mutex
	blobs    map[string]*Blob
	refs     map[string][]v1.Descriptor // manifest digest -> what it references
	tags     map[string]string          // path:tag -> digest, put by this export
	sessions map[string]*upload

	commitMu sync.Mutex // one commit at a time: no blob lands twice in a tar
}

func newStore(s sink, carried Carried, destHost string) *store {
	return &store{
		sink: s, carried: carried, destHost: destHost,
		blobs: map[string]*Blob{}, refs: map[string][]v1.Descriptor{},
		tags: map[string]string{}, sessions: map[string]*upload{},
	}
}

// contained returns the archive's entry for digest.
func (s *store) contained(d string) (Blob, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.blobs[d]
	if !ok {
		return Blob{}, false
	}
	return *b, true
}

// hasBlob says whether a blob needs no transfer: the archive holds it, an
// earlier archive carried it, or an unfinished export into the same
// directory left it and it still hashes to its name.
func (s *store) hasBlob(d string) (int64, bool) {
	if b, ok := s.contained(d); ok {
		return b.Size, true
	}
	if l, ok := s.carried.Blobs[d]; ok {
		return l.Size, true
	}
	h, err := v1.NewHash(d)
	if err != nil || h.Algorithm != "sha256" {
		return 0, false
	}
	p, ok := s.sink.existing(blobName(d))
	if !ok {
		return 0, false
	}
	n, sum, err := hashFile(p)
	if err != nil || sum != d {
		os.Remove(p)
		return 0, false
	}
	s.mu.Lock()
	s.blobs[d] = &Blob{Digest: d, Size: n}
	s.mu.Unlock()
	return n, true
}

func hashFile(p string) (int64, string, error) {
	f, err := os.Open(p)
	if err != nil {
		return 0, "", err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	return n, "sha256:" + hex.EncodeToString(h.Sum(nil)), err
}

// manifest resolves a manifest reference of repository path: a tag this
// export put or an earlier archive carried, a digest this archive holds
// (anywhere), or a digest an earlier archive carried into this repository.
func (s *store) manifest(path, ref string) (Descriptor, bool) {
	if !strings.HasPrefix(ref, "sha256:") {
		s.mu.Lock()
		d, ok := s.tags[path+":"+ref]
		s.mu.Unlock()
		if ok {
			return s.manifest(path, d)
		}
		desc, ok := s.carried.Manifests[s.destHost+"/"+path+":"+ref]
		return desc, ok
	}
	if b, ok := s.contained(ref); ok && b.Manifest {
		return Descriptor{Digest: b.Digest, MediaType: b.MediaType, Size: b.Size}, true
	}
	desc, ok := s.carried.Manifests[s.destHost+"/"+path+"@"+ref]
	return desc, ok
}

// putManifest stores a manifest once its digest is checked and everything
// it references is in the archive or was carried: the archive never holds
// a manifest Import could not complete.
func (s *store) putManifest(path, ref string, mt types.MediaType, raw []byte) (string, *apiErr) {
	sum := sha256.Sum256(raw)
	digest := "sha256:" + hex.EncodeToString(sum[:])
	if strings.HasPrefix(ref, "sha256:") && ref != digest {
		return "", &apiErr{http.StatusBadRequest, codeDigestInvalid, fmt.Sprintf("%s: manifest digest is %s", ref, digest)}
	}
	mt = manifestType(mt, raw)
	refs, err := references(mt, raw)
	if err != nil {
		return "", &apiErr{http.StatusBadRequest, codeManifestInvalid, err.Error()}
	}
	for _, d := range refs {
		ds := d.Digest.String()
		switch {
		case isManifestType(d.MediaType):
			if _, ok := s.manifest(path, ds); !ok {
				return "", &apiErr{http.StatusBadRequest, codeManifestBlobUnknown, "child manifest " + ds + " is not in the archive"}
			}
		case foreign(d):
		default:
			if _, ok := s.hasBlob(ds); !ok {
				return "", &apiErr{http.StatusBadRequest, codeManifestBlobUnknown, "blob " + ds + " is not in the archive"}
			}
		}
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if _, ok := s.contained(digest); !ok {
		if err := s.sink.write(blobName(digest), raw); err != nil {
			return "", storageErr(err)
		}
		s.mu.Lock()
		s.blobs[digest] = &Blob{Digest: digest, Size: int64(len(raw)), Manifest: true, MediaType: mt}
		s.refs[digest] = refs
		s.mu.Unlock()
	}
	if !strings.HasPrefix(ref, "sha256:") {
		s.mu.Lock()
		s.tags[path+":"+ref] = digest
		s.mu.Unlock()
	}
	return digest, nil
}

// manifestType is the Content-Type the manifest came with, else its own
// mediaType field, else what its shape says (OCI allows omitting both).
func manifestType(mt types.MediaType, raw []byte) types.MediaType {
	if mt.IsIndex() || mt.IsImage() || mt.IsSchema1() {
		return mt
	}
	var probe struct {
		MediaType types.MediaType `json:"mediaType"`
		Manifests json.RawMessage `json:"manifests"`
		Config    json.RawMessage `json:"config"`
	}
	if json.Unmarshal(raw, &probe) != nil {
		return mt
	}
	switch {
	case probe.MediaType != "":
		return probe.MediaType
	case probe.Manifests != nil:
		return types.OCIImageIndex
	case probe.Config != nil:
		return types.OCIManifestSchema1
	}
	return mt
}

// references lists what a manifest needs: an index's children, an image's
// config and layers.
func references(mt types.MediaType, raw []byte) ([]v1.Descriptor, error) {
	switch {
	case mt.IsIndex():
		idx, err := v1.ParseIndexManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		return idx.Manifests, nil
	case mt.IsImage():
		m, err := v1.ParseManifest(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("manifest: %w", err)
		}
		return append([]v1.Descriptor{m.Config}, m.Layers...), nil
	case mt.IsSchema1():
		return nil, errors.New("Docker schema 1 manifests are not archived")
	}
	return nil, fmt.Errorf("unsupported manifest media type %q", mt)
}

// isManifestType: an index child with no media type or a manifest one is
// a manifest; anything else (an artifact blob) is a blob, as the engine
// copies it.
func isManifestType(mt types.MediaType) bool { return mt == "" || mt.IsIndex() || mt.IsImage() }

// foreign layers (Windows base layers) stay where their URLs say; the
// engine does not copy them and neither does an archive.
func foreign(d v1.Descriptor) bool { return !d.MediaType.IsDistributable() && len(d.URLs) > 0 }

// upload is a blob upload session, staged in a file and hashed as it comes.
type upload struct {
	mu   sync.Mutex
	f    *os.File
	h    hash.Hash
	size int64
}

func (s *store) startUpload() (string, error) {
	f, err := os.CreateTemp(s.sink.stageDir(), "upload-")
	if err != nil {
		return "", err
	}
	id := strings.ToLower(rand.Text())
	s.mu.Lock()
	s.sessions[id] = &upload{f: f, h: sha256.New()}
	s.mu.Unlock()
	return id, nil
}

func (s *store) session(id string) *upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessions[id]
}

// write appends a request body to the session.
func (u *upload) write(r io.Reader) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	n, err := io.Copy(io.MultiWriter(u.f, u.h), r)
	u.size += n
	return err
}

// finishUpload verifies the session's content against digest and commits
// it to the archive; the session ends either way.
func (s *store) finishUpload(id, digest string) *apiErr {
	u := s.endSession(id)
	if u == nil {
		return &apiErr{http.StatusNotFound, codeUploadUnknown, "upload unknown"}
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	staged := u.f.Name()
	if err := u.f.Close(); err != nil {
		os.Remove(staged)
		return storageErr(err)
	}
	if got := "sha256:" + hex.EncodeToString(u.h.Sum(nil)); got != digest {
		os.Remove(staged)
		return &apiErr{http.StatusBadRequest, codeDigestInvalid, fmt.Sprintf("content is %s, not %s", got, digest)}
	}
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if _, ok := s.contained(digest); ok {
		os.Remove(staged)
		return nil
	}
	if err := s.sink.commit(blobName(digest), staged, u.size); err != nil {
		os.Remove(staged)
		return storageErr(err)
	}
	s.mu.Lock()
	s.blobs[digest] = &Blob{Digest: digest, Size: u.size}
	s.mu.Unlock()
	return nil
}

// endSession removes a session from the table and returns it.
func (s *store) endSession(id string) *upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.sessions[id]
	delete(s.sessions, id)
	return u
}

// dropUpload ends a session whose content is not wanted.
func (s *store) dropUpload(id string) {
	if u := s.endSession(id); u != nil {
		u.mu.Lock()
		defer u.mu.Unlock()
		u.f.Close()
		os.Remove(u.f.Name())
	}
}

// storageErr is a failure to write the archive (a full disk, say): 507,
// which the engine does not retry, because retrying will not free space.
func storageErr(err error) *apiErr {
	return &apiErr{http.StatusInsufficientStorage, codeUnknown, "write archive: " + err.Error()}
}

// closeSessions ends sessions the engine abandoned (a transfer retried).
func (s *store) closeSessions() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, u := range s.sessions {
		u.mu.Lock()
		u.f.Close()
		os.Remove(u.f.Name())
		u.mu.Unlock()
		delete(s.sessions, id)
	}
}

// exportHandler is the write-only registry of an export.
type exportHandler struct {
	st     *store
	prefix string
}

func (h exportHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rt := parseRoute(r.URL.Path, h.prefix)
	switch {
	case rt.kind == routePing && (r.Method == http.MethodGet || r.Method == http.MethodHead):
		ping(w)
	case rt.kind == routeManifest && r.Method == http.MethodHead:
		d, ok := h.st.manifest(rt.name, rt.ref)
		if !ok {
			apiError(w, http.StatusNotFound, codeManifestUnknown, "manifest unknown")
			return
		}
		w.Header().Set("Content-Type", string(d.MediaType))
		w.Header().Set("Docker-Content-Digest", d.Digest)
		w.Header().Set("Content-Length", strconv.FormatInt(d.Size, 10))
	case rt.kind == routeManifest && r.Method == http.MethodPut:
		raw, err := io.ReadAll(io.LimitReader(r.Body, manifestLimit+1))
		if err != nil {
			apiError(w, http.StatusBadRequest, codeManifestInvalid, err.Error())
			return
		}
		if len(raw) > manifestLimit {
			apiError(w, http.StatusRequestEntityTooLarge, codeManifestInvalid, "manifest larger than 4 MiB")
			return
		}
		digest, aerr := h.st.putManifest(rt.name, rt.ref, types.MediaType(r.Header.Get("Content-Type")), raw)
		if aerr != nil {
			aerr.write(w)
			return
		}
		w.Header().Set("Docker-Content-Digest", digest)
		w.Header().Set("Location", "/v2/"+h.prefix+"/"+rt.name+"/manifests/"+digest)
		w.WriteHeader(http.StatusCreated)
	case rt.kind == routeBlob && r.Method == http.MethodHead:
		n, ok := h.st.hasBlob(rt.ref)
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			return
		}
		w.Header().Set("Docker-Content-Digest", rt.ref)
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
	case rt.kind == routeUpload && r.Method == http.MethodPost && rt.ref == "":
		h.startUpload(w, r, rt)
	case rt.kind == routeUpload && r.Method == http.MethodPatch && rt.ref != "":
		u := h.st.session(rt.ref)
		if u == nil {
			apiError(w, http.StatusNotFound, codeUploadUnknown, "upload unknown")
			return
		}
		if err := u.write(r.Body); err != nil {
			apiError(w, http.StatusBadRequest, codeUnknown, "read upload: "+err.Error())
			return
		}
		h.uploadAccepted(w, rt.name, rt.ref, u)
	case rt.kind == routeUpload && r.Method == http.MethodPut && rt.ref != "":
		h.putUpload(w, r, rt.name, rt.ref)
	case rt.kind == routeNone:
		apiError(w, http.StatusNotFound, codeNameUnknown, "not found")
	default:
		apiError(w, http.StatusMethodNotAllowed, codeUnsupported, "an export's registry is write-only")
	}
}

func (h exportHandler) startUpload(w http.ResponseWriter, r *http.Request, rt route) {
	if d := r.URL.Query().Get("mount"); d != "" {
		if _, ok := h.st.hasBlob(d); ok {
			w.Header().Set("Docker-Content-Digest", d)
			w.Header().Set("Location", "/v2/"+h.prefix+"/"+rt.name+"/blobs/"+d)
			w.WriteHeader(http.StatusCreated)
			return
		}
	}
	id, err := h.st.startUpload()
	if err != nil {
		storageErr(err).write(w)
		return
	}
	if d := r.URL.Query().Get("digest"); d != "" {
		// A monolithic upload in the POST itself.
		h.putUpload(w, r, rt.name, id)
		return
	}
	h.uploadAccepted(w, rt.name, id, h.st.session(id))
}

func (h exportHandler) uploadAccepted(w http.ResponseWriter, name, id string, u *upload) {
	w.Header().Set("Location", "/v2/"+h.prefix+"/"+name+"/blobs/uploads/"+id)
	w.Header().Set("Docker-Upload-UUID", id)
	u.mu.Lock()
	n := u.size
	u.mu.Unlock()
	w.Header().Set("Range", fmt.Sprintf("0-%d", max(n-1, 0)))
	w.WriteHeader(http.StatusAccepted)
}

func (h exportHandler) putUpload(w http.ResponseWriter, r *http.Request, name, id string) {
	digest := r.URL.Query().Get("digest")
	u := h.st.session(id)
	if u == nil {
		apiError(w, http.StatusNotFound, codeUploadUnknown, "upload unknown")
		return
	}
	if err := u.write(r.Body); err != nil {
		h.st.dropUpload(id)
		apiError(w, http.StatusBadRequest, codeUnknown, "read upload: "+err.Error())
		return
	}
	if aerr := h.st.finishUpload(id, digest); aerr != nil {
		aerr.write(w)
		return
	}
	w.Header().Set("Docker-Content-Digest", digest)
	w.Header().Set("Location", "/v2/"+h.prefix+"/"+name+"/blobs/"+digest)
	w.WriteHeader(http.StatusCreated)
}
