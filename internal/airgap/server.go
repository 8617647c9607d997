package airgap

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"
)

// The archive is handed to the copy engine as a registry: a small net/http
// server on 127.0.0.1:0 speaking as much of the registry v2 API as the
// engine uses. Export copies from the sources into a write-only one that
// stores what it receives into the archive; Import copies from a read-only
// one serving the archive. Both directions thereby get the engine's
// semantics for free: an image present costs one HEAD, each blob moves
// once, retries, stall detection, bounded concurrency, redacted errors.
//
// Every repository is served under a random first path element, so other
// processes on the machine cannot guess a name and write into an export.

// localServer is a registry on 127.0.0.1.
type localServer struct {
	host   string // 127.0.0.1:PORT
	prefix string // random first path element of every repository
	srv    *http.Server
}

func serveLocal(h func(prefix string) http.Handler) (*localServer, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("serve the archive on 127.0.0.1: %w", err)
	}
	s := &localServer{host: ln.Addr().String(), prefix: strings.ToLower(rand.Text())}
	s.srv = &http.Server{Handler: h(s.prefix), ReadHeaderTimeout: time.Minute}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// repo is the local name of a mirror repository path.
func (s *localServer) repo(path string) string { return s.host + "/" + s.prefix + "/" + path }

func (s *localServer) close() { _ = s.srv.Close() }

// routeKind is what a request addresses.
type routeKind int

const (
	routeNone routeKind = iota
	routePing
	routeManifest
	routeBlob
	routeUpload
)

// route is a parsed registry API path: /v2/, /v2/<name>/manifests/<ref>,
// /v2/<name>/blobs/<digest>, /v2/<name>/blobs/uploads/[<id>]. name is the
// repository path below the server's prefix.
type route struct {
	kind routeKind
	name string
	ref  string
}

func parseRoute(p, prefix string) route {
	if p == "/v2/" || p == "/v2" {
		return route{kind: routePing}
	}
	rest, ok := strings.CutPrefix(p, "/v2/"+prefix+"/")
	if !ok {
		return route{}
	}
	for _, k := range []struct {
		sep  string
		kind routeKind
	}{{"/blobs/uploads/", routeUpload}, {"/manifests/", routeManifest}, {"/blobs/", routeBlob}} {
		if i := strings.LastIndex(rest, k.sep); i > 0 {
			r := route{kind: k.kind, name: rest[:i], ref: rest[i+len(k.sep):]}
			if r.kind != routeUpload && (r.ref == "" || strings.Contains(r.ref, "/")) {
				return route{}
			}
			return r
		}
	}
	if strings.HasSuffix(rest, "/blobs/uploads") {
		return route{kind: routeUpload, name: strings.TrimSuffix(rest, "/blobs/uploads")}
	}
	return route{}
}

// Registry error codes (distribution spec).
const (
	codeBlobUnknown         = "BLOB_UNKNOWN"
	codeManifestUnknown     = "MANIFEST_UNKNOWN"
	codeManifestInvalid     = "MANIFEST_INVALID"
	codeManifestBlobUnknown = "MANIFEST_BLOB_UNKNOWN"
	codeDigestInvalid       = "DIGEST_INVALID"
	codeNameUnknown         = "NAME_UNKNOWN"
	codeUploadUnknown       = "BLOB_UPLOAD_UNKNOWN"
	codeUnsupported         = "UNSUPPORTED"
	codeUnknown             = "UNKNOWN"
)

func apiError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"errors": []map[string]string{{"code": code, "message": msg}}})
}

// apiErr is a registry API error response.
type apiErr struct {
	status    int
	code, msg string
}

func (e *apiErr) write(w http.ResponseWriter) { apiError(w, e.status, e.code, e.msg) }

func ping(w http.ResponseWriter) {
	w.Header().Set("Docker-Distribution-API-Version", "registry/2.0")
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}"))
}
