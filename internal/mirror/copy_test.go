package mirror

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestCopyInProcess copies plain images, an index and tagged images between
// two in-process registries, then proves a rerun is one HEAD per image.
func TestCopyInProcess(t *testing.T) {
	src, dst := startMemRegistry(t), startMemRegistry(t)
	rc := anonymousClient(t)

	imgDigest := push(t, src.Host+"/team/app:v1", testImage(t))
	idxDigest := push(t, src.Host+"/team/multi:v2", testIndex(t))
	otherDigest := push(t, src.Host+"/other/tool:latest", testImage(t))

	pairs := []Pair{
		{Source: src.Host + "/team/app@" + imgDigest, Destination: dst.Host + "/mirror/team/app"},
		{Source: src.Host + "/team/multi:v2", Destination: dst.Host + "/mirror/team/multi:v2"},
		{Source: src.Host + "/other/tool:latest@" + otherDigest, Destination: dst.Host + "/mirror/other/tool:latest"},
		// The same pair twice is copied once.
		{Source: src.Host + "/team/app@" + imgDigest, Destination: dst.Host + "/mirror/team/app"},
	}
	var images, blobs atomic.Int64
	opts := DefaultOptions(rc)
	opts.Reporter = ReporterFunc(func(e Event) {
		switch e.Kind {
		case EventImage:
			images.Add(1)
		case EventBlob:
			blobs.Add(1)
		}
	})
	rep, err := Copy(t.Context(), pairs, opts)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		dst.Host + "/mirror/team/app@" + imgDigest:     imgDigest,
		dst.Host + "/mirror/team/multi:v2":             idxDigest,
		dst.Host + "/mirror/team/multi@" + idxDigest:   idxDigest,
		dst.Host + "/mirror/other/tool:latest":         otherDigest,
		dst.Host + "/mirror/other/tool@" + otherDigest: otherDigest,
	}
	for ref, d := range want {
		got, err := headDigest(t, ref)
		if err != nil || got != d {
			t.Errorf("%s: digest %q, %v; want %s", ref, got, err, d)
		}
	}
	for i, im := range rep.Images {
		if im.Action != ActionCopied {
			t.Errorf("image %d: %s, want Copied (%v)", i, im.Action, im.Err)
		}
	}
	if got := images.Load(); got != 3 {
		t.Errorf("%d image events, want 3 (duplicates are copied once)", got)
	}
	// 1 image (4 blobs) + index (3 children x 4 blobs) + 1 image (4 blobs),
	// the shared base layer counted in each repository.
	if got, want := rep.Stats.BlobsPresent+rep.Stats.BlobsMounted+rep.Stats.BlobsUploaded, 20; got != want || blobs.Load() != int64(want) {
		t.Errorf("%d blobs accounted (%d events), want %d", got, blobs.Load(), want)
	}
	if rep.Stats.Manifests != 6 {
		t.Errorf("%d manifests put, want 6 (2 images, 3 children, 1 index)", rep.Stats.Manifests)
	}

	// Rerun: one HEAD per distinct pair at the destination, nothing else.
	dst.Log.Reset()
	rep, err = Copy(t.Context(), pairs, opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{"HEAD": 3, "GET": 1}, dst.Log.Methods()); diff != "" {
		t.Errorf("rerun requests at the destination (-want +got; the GET is the /v2/ ping):\n%s\n%s", diff, strings.Join(dst.Log.Lines(), "\n"))
	}
	if rep.Stats.ImagesPresent != 4 || rep.Registry(dst.Host).Writes != 0 {
		t.Errorf("rerun: %+v, writes %d", rep.Stats, rep.Registry(dst.Host).Writes)
	}
}

func TestCopyRejectsBadInput(t *testing.T) {
	rc := anonymousClient(t)
	d := "sha256:" + strings.Repeat("a", 64)
	for _, tc := range []struct {
		name  string
		pairs []Pair
		want  []string
	}{
		{"bad source", []Pair{{Source: "UPPER/case@" + d, Destination: "r.example/ns/app"}}, []string{"image 1", "source"}},
		{"bad digest", []Pair{{Source: "r.example/ns/app@sha256:nothex", Destination: "r.example/ns/other"}}, []string{"source digest"}},
		{"two sources one tag", []Pair{
			{Source: "q.example/ns/one@" + d, Destination: "r.example/ns/app:v1"},
			{Source: "q.example/ns/two:latest", Destination: "r.example/ns/app:v1"},
		}, []string{"image 2", "also the destination of"}},
		{"digest mismatch", []Pair{{Source: "q.example/ns/one@" + d, Destination: "r.example/ns/app@sha256:" + strings.Repeat("b", 64)}}, []string{"differs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rep, err := Copy(t.Context(), tc.pairs, DefaultOptions(rc))
			if err == nil || rep != nil {
				t.Fatalf("accepted: %v %v", rep, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestCopyPartialFailure: a missing source fails its image, the others are
// copied, and the error says which.
func TestCopyPartialFailure(t *testing.T) {
	src, dst := startMemRegistry(t), startMemRegistry(t)
	good := push(t, src.Host+"/a/good:v1", testImage(t))
	missing := "sha256:" + strings.Repeat("0", 64)
	pairs := []Pair{
		{Source: src.Host + "/a/good@" + good, Destination: dst.Host + "/a/good"},
		{Source: src.Host + "/a/gone@" + missing, Destination: dst.Host + "/a/gone"},
		{Source: src.Host + "/a/gone:nosuchtag", Destination: dst.Host + "/a/gone2:v1"},
	}
	rep, err := Copy(t.Context(), pairs, DefaultOptions(anonymousClient(t)))
	var ie *IncompleteError
	if !errors.As(err, &ie) {
		t.Fatalf("error %v, want *IncompleteError", err)
	}
	if len(ie.Failed) != 2 || rep.Stats.ImagesFailed != 2 || rep.Stats.ImagesCopied != 1 {
		t.Fatalf("failed %d, stats %+v", len(ie.Failed), rep.Stats)
	}
	if !ie.Complete(dst.Host+"/a/good") || ie.Complete(dst.Host+"/a/gone") || ie.Complete(dst.Host+"/a/gone2:v1") {
		t.Error("Complete does not match the results")
	}
	for _, f := range ie.Failed {
		if !f.NotFound() {
			t.Errorf("%v: want a not-found status, got %d", f, f.StatusCode)
		}
	}
	if !strings.Contains(err.Error(), "2 of 3 images not mirrored") {
		t.Errorf("error text: %v", err)
	}
}

// TestCopyCancelled: a cancelled context fails every image with
// context.Canceled, visible through errors.Is.
func TestCopyCancelled(t *testing.T) {
	src, dst := startMemRegistry(t), startMemRegistry(t)
	d := push(t, src.Host+"/a/b:v1", testImage(t))
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := Copy(ctx, []Pair{{Source: src.Host + "/a/b@" + d, Destination: dst.Host + "/a/b"}}, DefaultOptions(anonymousClient(t)))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("error %v, want context.Canceled", err)
	}
}

// TestCopyPlatformFilterCompletes: go-containerregistry's registry, like
// distribution, refuses an index whose children are not all in the
// repository. With a platform filter the selected child is copied first,
// the index is refused, and then the rest are copied: the digest never
// changes and the index is counted as completed.
func TestCopyPlatformFilterCompletes(t *testing.T) {
	src, dst := startMemRegistry(t), startMemRegistry(t)
	idx := testIndex(t)
	d := push(t, src.Host+"/team/multi:v1", idx)
	opts := DefaultOptions(anonymousClient(t))
	opts.Platforms = []string{"linux/arm64"}
	rep, err := Copy(t.Context(), []Pair{{Source: src.Host + "/team/multi@" + d, Destination: dst.Host + "/team/multi"}}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := headDigest(t, dst.Host+"/team/multi@"+d); err != nil || got != d {
		t.Fatalf("index at the mirror: %q, %v; want %s", got, err, d)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range im.Manifests {
		if _, err := headDigest(t, dst.Host+"/team/multi@"+c.Digest.String()); err != nil {
			t.Errorf("child %s: %v", c.Platform, err)
		}
	}
	if rep.Stats.Manifests != 4 || rep.Stats.IndexesCompleted != 1 {
		t.Errorf("stats %+v, want 4 manifests put and the index completed", rep.Stats)
	}
	if _, err := Copy(t.Context(), nil, Options{Remotes: anonymousClient(t), Platforms: []string{"linux/amd64/v8/extra"}}); err == nil {
		t.Error("a bad platform was accepted")
	}
}

// TestCopyLostUploadAnswer: the registry commits a blob, then the
// connection drops before its answer (as when a loaded registry answers
// after the stall cut-off). The retry finds the blob committed in the
// destination repository and does not send it again; it counts as
// uploaded, once, and as recovered.
func TestCopyLostUploadAnswer(t *testing.T) {
	tests := []struct {
		name string
		// drop picks which commits lose their answer.
		drop func(n int) bool
	}{
		{"first commit", func(n int) bool { return n == 1 }},
		{"every other commit", func(n int) bool { return n%2 == 1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src, dst := startMemRegistry(t), startMemRegistry(t)
			img := testImage(t)
			d := push(t, src.Host+"/a/app:v1", img)
			var mu sync.Mutex
			commits, dropped := 0, 0
			dst.Intercept(func(w http.ResponseWriter, r *http.Request, next http.Handler) bool {
				if r.Method != http.MethodPut || !strings.Contains(r.URL.Path, "/blobs/uploads/") || r.URL.Query().Get("digest") == "" {
					return false
				}
				mu.Lock()
				commits++
				drop := tc.drop(commits)
				if drop {
					dropped++
				}
				mu.Unlock()
				if !drop {
					return false
				}
				rec := httptest.NewRecorder()
				next.ServeHTTP(rec, r)
				if rec.Code != http.StatusCreated {
					t.Errorf("the registry did not commit: %d", rec.Code)
				}
				conn, _, err := w.(http.Hijacker).Hijack()
				if err != nil {
					t.Error(err)
					return true
				}
				conn.Close()
				return true
			})
			opts := DefaultOptions(anonymousClient(t))
			opts.Retry.Initial = time.Millisecond
			rep, err := Copy(t.Context(), []Pair{{Source: src.Host + "/a/app@" + d, Destination: dst.Host + "/m/app"}}, opts)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := headDigest(t, dst.Host+"/m/app@"+d); err != nil || got != d {
				t.Fatalf("image at the mirror: %q, %v", got, err)
			}
			layers, err := img.Layers()
			if err != nil {
				t.Fatal(err)
			}
			blobs := len(layers) + 1
			s := rep.Stats
			if s.BlobsUploaded != blobs || s.UploadsRecovered != dropped || s.BlobsMounted+s.BlobsPresent != 0 {
				t.Errorf("stats %+v: want %d blobs uploaded, %d of them recovered", s, blobs, dropped)
			}
			// Each blob was committed exactly once at the registry.
			perDigest := map[string]int{}
			for _, l := range dst.Log.Lines() {
				if strings.HasPrefix(l, "PUT ") && strings.Contains(l, "/blobs/uploads/") {
					if _, q, ok := strings.Cut(l, "?"); ok {
						v, _ := url.ParseQuery(q)
						perDigest[v.Get("digest")]++
					}
				}
			}
			if len(perDigest) != blobs {
				t.Errorf("%d blobs committed, want %d", len(perDigest), blobs)
			}
			for dg, n := range perDigest {
				if n != 1 {
					t.Errorf("blob %s sent %d times, want once", dg, n)
				}
			}
		})
	}
}
