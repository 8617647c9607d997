package airgap

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ferry-gitops/ferry/internal/mirror"
)

// writeTar writes members in order: a name ending in "/" is a directory,
// one starting with "symlink:" a symbolic link, any other a file with its
// content from content.
func writeTar(t *testing.T, path string, members []string, content map[string]string) {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range members {
		switch {
		case strings.HasSuffix(n, "/"):
			err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: n, Mode: 0o755})
			if err != nil {
				t.Fatal(err)
			}
		case strings.HasPrefix(n, "symlink:"):
			err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: strings.TrimPrefix(n, "symlink:"), Linkname: "elsewhere"})
			if err != nil {
				t.Fatal(err)
			}
		default:
			c := content[n]
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: n, Mode: 0o644, Size: int64(len(c))}); err != nil {
				t.Fatal(err)
			}
			if _, err := tw.Write([]byte(c)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestTarScan indexes tar members without extracting them: names are
// normalised, directories skipped, each member read back in place; a
// truncated tar, a member twice, or a link where a blob should be is an
// error.
func TestTarScan(t *testing.T) {
	content := map[string]string{
		"./oci-layout":          ociLayout,
		"blobs/sha256/aaaa":     strings.Repeat("a", 1500),
		"./blobs/sha256/bbbb":   "b",
		"ferry-files/x/y.yaml":  "",
		"blobs/sha256/tail":     strings.Repeat("t", 700),
		"./blobs/sha256/tail-2": "x",
	}
	for _, tc := range []struct {
		name     string
		members  []string
		truncate int64 // bytes cut off the end
		want     map[string]string
		err      string
	}{{
		name:    "members",
		members: []string{"./", "./oci-layout", "blobs/", "blobs/sha256/", "blobs/sha256/aaaa", "./blobs/sha256/bbbb", "ferry-files/x/y.yaml", "symlink:unrelated"},
		want: map[string]string{
			"oci-layout": ociLayout, "blobs/sha256/aaaa": content["blobs/sha256/aaaa"], "blobs/sha256/bbbb": "b", "ferry-files/x/y.yaml": "",
		},
	}, {
		name:    "duplicate",
		members: []string{"blobs/sha256/bbbb", "./blobs/sha256/bbbb"},
		err:     "twice",
	}, {
		name:    "link",
		members: []string{"symlink:blobs/sha256/aaaa"},
		err:     "not a regular file",
	}, {
		// Cut inside the last member's data (and the end-of-archive
		// blocks): its bytes end past the end of the file.
		name:     "truncated",
		members:  []string{"./oci-layout", "blobs/sha256/tail"},
		truncate: 1024 + 512 + 300,
		err:      "truncated",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "a.tar")
			writeTar(t, p, tc.members, content)
			if tc.truncate > 0 {
				fi, _ := os.Stat(p)
				if err := os.Truncate(p, fi.Size()-tc.truncate); err != nil {
					t.Fatal(err)
				}
			}
			a, err := openArchive(p)
			if tc.err != "" {
				var ae *ArchiveError
				if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v; want an *ArchiveError saying %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			got := map[string]string{}
			for n := range a.mem {
				m, err := a.open(n)
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(m)
				if err != nil {
					t.Fatal(err)
				}
				got[n] = string(b)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("members (-want +got):\n%s", diff)
			}
		})
	}
}

// TestImportRejectsCorrupt damages a good archive in the ways air-gap
// transfers do (and records that lie) and requires a clear *ArchiveError
// naming the file, before a single request reaches the mirror.
func TestImportRejectsCorrupt(t *testing.T) {
	f := newFixture(t)
	dst := startMemRegistry(t)
	good := t.TempDir()
	goodDir, goodTar := filepath.Join(good, "dir"), filepath.Join(good, "a.tar")
	for _, p := range []string{goodDir, goodTar} {
		if _, err := Export(t.Context(), f.pairs(t, dst.Host), exportOpts(t, f, p, dst.Host)); err != nil {
			t.Fatal(err)
		}
	}
	rec, err := ReadRecord(goodDir)
	if err != nil {
		t.Fatal(err)
	}
	var layer, manifest Blob
	for _, b := range rec.Blobs {
		if b.Manifest && manifest.Digest == "" {
			manifest = b
		}
		if !b.Manifest && b.Size > 1000 && layer.Digest == "" {
			layer = b
		}
	}
	editRecord := func(t *testing.T, dir string, edit func(*Record)) {
		r, err := ReadRecord(dir)
		if err != nil {
			t.Fatal(err)
		}
		edit(r)
		b, _ := json.Marshal(r)
		if err := os.WriteFile(filepath.Join(dir, RecordFile), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flip := func(t *testing.T, p string, off int64) {
		fh, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		b := make([]byte, 1)
		if _, err := fh.ReadAt(b, off); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0xff
		if _, err := fh.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name   string
		tar    bool
		damage func(t *testing.T, path string)
		want   string // in the error
	}{{
		name: "tar truncated in half",
		tar:  true,
		damage: func(t *testing.T, p string) {
			fi, _ := os.Stat(p)
			if err := os.Truncate(p, fi.Size()/2); err != nil {
				t.Fatal(err)
			}
		},
		want: "truncated",
	}, {
		name: "tar with a flipped byte in a layer",
		tar:  true,
		damage: func(t *testing.T, p string) {
			a, err := openArchive(p)
			if err != nil {
				t.Fatal(err)
			}
			s := a.mem[blobName(layer.Digest)]
			a.Close()
			flip(t, p, s.off+s.size/2)
		},
		want: blobName(layer.Digest) + ": content hashes to",
	}, {
		name:   "layer flipped",
		damage: func(t *testing.T, p string) { flip(t, filepath.Join(p, blobName(layer.Digest)), 10) },
		want:   blobName(layer.Digest) + ": content hashes to",
	}, {
		name: "layer missing",
		damage: func(t *testing.T, p string) {
			if err := os.Remove(filepath.Join(p, blobName(layer.Digest))); err != nil {
				t.Fatal(err)
			}
		},
		want: blobName(layer.Digest) + ": missing",
	}, {
		name: "layer cut short",
		damage: func(t *testing.T, p string) {
			if err := os.Truncate(filepath.Join(p, blobName(layer.Digest)), layer.Size-1); err != nil {
				t.Fatal(err)
			}
		},
		want: "bytes, the record says",
	}, {
		name:   "manifest altered",
		damage: func(t *testing.T, p string) { flip(t, filepath.Join(p, blobName(manifest.Digest)), 0) },
		want:   blobName(manifest.Digest) + ": content hashes to",
	}, {
		name: "record without a blob an image needs",
		damage: func(t *testing.T, p string) {
			editRecord(t, p, func(r *Record) {
				var kept []Blob
				for _, b := range r.Blobs {
					if b.Digest != layer.Digest {
						kept = append(kept, b)
					}
				}
				r.Blobs = kept
			})
		},
		want: blobName(layer.Digest) + " (image ",
	}, {
		name: "record with a wrong size",
		damage: func(t *testing.T, p string) {
			editRecord(t, p, func(r *Record) {
				for i := range r.Blobs {
					if r.Blobs[i].Digest == layer.Digest {
						r.Blobs[i].Size++
					}
				}
			})
		},
		want: blobName(layer.Digest) + ": ",
	}, {
		name: "index.json missing an image",
		damage: func(t *testing.T, p string) {
			raw, _ := os.ReadFile(filepath.Join(p, "index.json"))
			var idx map[string]any
			_ = json.Unmarshal(raw, &idx)
			idx["manifests"] = idx["manifests"].([]any)[1:]
			b, _ := json.Marshal(idx)
			if err := os.WriteFile(filepath.Join(p, "index.json"), b, 0o644); err != nil {
				t.Fatal(err)
			}
		},
		want: "index.json (image " + dst.Host + "/mirror/team/app): no entry",
	}, {
		name: "file altered",
		damage: func(t *testing.T, p string) {
			if err := os.WriteFile(filepath.Join(p, FilesPrefix, "ferry.lock"), []byte("LOCK\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		want: FilesPrefix + "ferry.lock: content hashes to",
	}, {
		name: "no record",
		damage: func(t *testing.T, p string) {
			if err := os.Remove(filepath.Join(p, RecordFile)); err != nil {
				t.Fatal(err)
			}
		},
		want: RecordFile + ": missing",
	}, {
		name: "record from the future",
		damage: func(t *testing.T, p string) {
			editRecord(t, p, func(r *Record) { r.Version = 99 })
		},
		want: "record version 99",
	}} {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "dir")
			if tc.tar {
				p = filepath.Join(filepath.Dir(p), "a.tar")
				b, err := os.ReadFile(goodTar)
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
			} else if err := os.CopyFS(p, os.DirFS(goodDir)); err != nil {
				t.Fatal(err)
			}
			tc.damage(t, p)
			dst.Log.Reset()
			_, _, err := Import(t.Context(), p, ImportOptions{Remotes: anonymousClient(t)})
			var ae *ArchiveError
			if !errors.As(err, &ae) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), p) {
				t.Fatalf("got %v; want an *ArchiveError for %s saying %q", err, p, tc.want)
			}
			if got := dst.Log.Lines(); len(got) != 0 {
				t.Errorf("the mirror received %d requests from a broken archive: %v", len(got), got)
			}
		})
	}
}

// TestExportRejectsBadInput: every problem is found before anything is
// read or written, and nothing is left at the path.
func TestExportRejectsBadInput(t *testing.T) {
	f := newFixture(t)
	dst := startMemRegistry(t)
	full := t.TempDir()
	if err := os.WriteFile(filepath.Join(full, "notes.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	otherMirror := filepath.Join(t.TempDir(), "other.tar")
	if _, err := Export(t.Context(), f.pairs(t, "mirror.example:5000"), ExportOptions{Path: otherMirror, Remotes: anonymousClient(t)}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		pairs []mirror.Pair
		opts  func(*ExportOptions)
		want  string
	}{
		{name: "bad destination", pairs: []mirror.Pair{{Source: f.pairs(t, dst.Host)[0].Source, Destination: dst.Host + "/UPPER/case"}}, want: "destination"},
		{name: "two registries", pairs: append(f.pairs(t, dst.Host), mirror.Pair{Source: f.pairs(t, dst.Host)[0].Source, Destination: "other.example/xx"}), want: "one mirror registry"},
		{name: "bad source", pairs: []mirror.Pair{{Source: "not a reference", Destination: dst.Host + "/xx"}}, want: "source"},
		{name: "file escaping", opts: func(o *ExportOptions) { o.Files = map[string][]byte{"../etc/passwd": nil} }, want: "file name"},
		{name: "built tag taken", opts: func(o *ExportOptions) {
			o.Built = append(o.Built, Built{Image: f.builtImg, Destination: dst.Host + "/mirror/team/multi:v2"})
		}, want: "tag is used by another image"},
		{name: "since missing", opts: func(o *ExportOptions) { o.Since = []string{filepath.Join(full, "nope.tar")} }, want: "since"},
		{name: "since another mirror", opts: func(o *ExportOptions) { o.Since = []string{otherMirror} }, want: "is for mirror registry"},
		{name: "not an empty directory", opts: func(o *ExportOptions) { o.Path = full }, want: "not empty"},
		{name: "no remotes", opts: func(o *ExportOptions) { o.Remotes = nil }, want: "Remotes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pairs := tc.pairs
			if pairs == nil {
				pairs = f.pairs(t, dst.Host)
			}
			path := filepath.Join(t.TempDir(), "out.tar")
			opts := exportOpts(t, f, path, dst.Host)
			if tc.opts != nil {
				tc.opts(&opts)
			}
			f.src.Log.Reset()
			_, err := Export(t.Context(), pairs, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v; want an error saying %q", err, tc.want)
			}
			if _, err := os.Stat(path); !os.IsNotExist(err) {
				t.Errorf("%s exists after a refused export", path)
			}
			if ents, _ := os.ReadDir(full); len(ents) != 1 {
				t.Errorf("a refused export wrote into a directory: %v", ents)
			}
			if n := f.src.Log.Count("/blobs/"); n != 0 {
				t.Errorf("the source was read %d times", n)
			}
		})
	}
}

// TestExportFailureLeavesNoArchive: an image that cannot be read fails the
// export naming it and its destination. A tar leaves nothing behind; a
// directory keeps the blobs it verified (but no record), and exporting
// into it again fetches only what it lacks.
func TestExportFailureLeavesNoArchive(t *testing.T) {
	f := newFixture(t)
	dst := startMemRegistry(t)
	missing := mirror.Pair{Source: f.src.Host + "/gone/image@sha256:" + strings.Repeat("0", 64), Destination: dst.Host + "/mirror/gone/image"}
	pairs := append(f.pairs(t, dst.Host), missing)
	for _, kind := range []string{"tar", "dir"} {
		t.Run(kind, func(t *testing.T) {
			parent := t.TempDir()
			path := filepath.Join(parent, "out")
			if kind == "tar" {
				path += ".tar"
			}
			rep, err := Export(t.Context(), pairs, exportOpts(t, f, path, dst.Host))
			var ee *ExportError
			if !errors.As(err, &ee) || len(ee.Failed) != 1 || !strings.Contains(err.Error(), missing.Source) || !strings.Contains(err.Error(), missing.Destination) {
				t.Fatalf("got %v; want an *ExportError naming %s", err, missing)
			}
			if rep == nil || rep.Record != nil || rep.Copy.Images[3].Destination != missing.Destination {
				t.Errorf("report %+v; want the engine's report in mirror names and no record", rep)
			}
			if kind == "tar" {
				if ents, _ := os.ReadDir(parent); len(ents) != 0 {
					t.Errorf("a failed tar export left %v", ents)
				}
				return
			}
			if _, err := os.Stat(filepath.Join(path, RecordFile)); !os.IsNotExist(err) {
				t.Errorf("a failed export wrote a record")
			}
			if _, _, err := Import(t.Context(), path, ImportOptions{Remotes: anonymousClient(t)}); err == nil {
				t.Error("imported an unfinished export")
			}
			// Again, without the broken pair: the blobs verified the first
			// time are not read again; stray files are pruned.
			stray := filepath.Join(path, "blobs", "sha256", strings.Repeat("1", 64))
			if err := os.WriteFile(stray, []byte("not what its name says"), 0o644); err != nil {
				t.Fatal(err)
			}
			f.src.Log.Reset()
			rep, err = Export(t.Context(), pairs[:3], exportOpts(t, f, path, dst.Host))
			if err != nil {
				t.Fatal(err)
			}
			if n := f.src.Log.Count("GET", "/blobs/"); n != 0 {
				t.Errorf("the resumed export read %d blobs again: %v", n, f.src.Log.Lines())
			}
			if _, err := os.Stat(stray); !os.IsNotExist(err) {
				t.Error("a stray blob file was kept")
			}
			if _, _, err := Import(t.Context(), path, ImportOptions{Remotes: anonymousClient(t)}); err != nil {
				t.Fatal(err)
			}
			for _, im := range rep.Record.Images {
				verifyImage(t, im.Destination, im.Digest)
			}
		})
	}
}

// TestParseRoute covers the paths the local registries answer.
func TestParseRoute(t *testing.T) {
	const p = "secret"
	for _, tc := range []struct {
		path string
		want route
	}{
		{"/v2/", route{kind: routePing}},
		{"/v2/secret/a/b/manifests/v1", route{kind: routeManifest, name: "a/b", ref: "v1"}},
		{"/v2/secret/a/manifests/sha256:abc", route{kind: routeManifest, name: "a", ref: "sha256:abc"}},
		{"/v2/secret/a/blobs/sha256:abc", route{kind: routeBlob, name: "a", ref: "sha256:abc"}},
		{"/v2/secret/a/blobs/uploads/", route{kind: routeUpload, name: "a"}},
		{"/v2/secret/a/blobs/uploads/xyz", route{kind: routeUpload, name: "a", ref: "xyz"}},
		// A repository may be called "manifests" or "blobs".
		{"/v2/secret/blobs/manifests/v1", route{kind: routeManifest, name: "blobs", ref: "v1"}},
		{"/v2/guess/a/blobs/sha256:abc", route{}},
		{"/v2/secret/a/tags/list", route{}},
		{"/v2/secret/a/referrers/sha256:abc", route{}},
		{"/v2/secret/a/manifests/", route{}},
	} {
		if got := parseRoute(tc.path, p); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.path, got, tc.want)
		}
	}
}

// TestExportCancelled: an export interrupted halfway reports the
// cancellation and leaves no tar (nor a .partial, nor staging files).
func TestExportCancelled(t *testing.T) {
	f := newFixture(t)
	dst := startMemRegistry(t)
	parent := t.TempDir()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	opts := exportOpts(t, f, filepath.Join(parent, "out.tar"), dst.Host)
	opts.Reporter = mirror.ReporterFunc(func(e mirror.Event) {
		if e.Kind == mirror.EventBlob {
			cancel()
		}
	})
	_, err := Export(ctx, f.pairs(t, dst.Host), opts)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v; want context.Canceled", err)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 0 {
		t.Errorf("a cancelled export left %v", ents)
	}
}
