package reconcile

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/ferry-gitops/ferry/internal/catalogimage"
	"github.com/ferry-gitops/ferry/internal/testenv"
)

// Memory bounds of the amplification cases are checked in a child process
// (this test binary again) whose data segment is limited with
// RLIMIT_DATA, which on Linux counts every private writable mapping, the
// Go heap included: a case that took more memory than its limit dies
// there with "out of memory", and the parent sees it. The Go runtime maps
// its heap in 64 MiB arenas, so a limit counts arenas, not bytes: a few
// hundred MB is the floor of a small heap. (RLIMIT_AS would count the
// address space the runtime reserves without using, about 1.5 GB here.)
// Nothing is decided by timing.

const amplificationEnv = "FERRY_AMPLIFICATION_CASE"

// amplificationCase is one image that tries to make reading it expensive.
type amplificationCase struct {
	name string
	// build pushes catalog a's source into the registry and injects any
	// faults it needs.
	build func(t *testing.T, h *hostile)
	// want is what catalog a must fail with.
	want string
	// limit is the child's memory limit.
	limit uint64
}

var amplificationCases = []amplificationCase{
	{
		name: "3 x 500 MiB files in a 1.5 MB gzip layer",
		build: func(t *testing.T, h *hostile) {
			h.push(t, "cat/a:v1", zeroBombImage(t, "configs/p%d/catalog.json", 3, 500<<20))
		},
		want:  "524288000 bytes exceeds the 268435456-byte file limit",
		limit: 384 << 20, // main took 4.8 GB
	},
	{
		name: "7 x 255 MiB files, each within the file limit",
		build: func(t *testing.T, h *hostile) {
			h.push(t, "cat/a:v1", zeroBombImage(t, "configs/p%d/catalog.json", 7, 255<<20))
		},
		// Accepted onto disk (1.75 GB of catalog), then parsed: memory
		// follows the largest file, not the catalog. The parser holds a
		// document whole while it grows its buffer (about 1 GB at peak for
		// these files); the file limit is what bounds it.
		want:  "control characters are not allowed",
		limit: 1536 << 20,
	},
	{
		name: "a config declared 1.5 GiB, served endless",
		build: func(t *testing.T, h *hostile) {
			h.putManifest(t, "v1", rewriteConfigSize(t, h.manifest, 3<<29))
			h.src.Inject(testenv.NewFaults(testenv.Fault{Name: "endless", Match: testenv.BlobGET(h.config.String()), Serve: testenv.Endless}))
		},
		want:  "1610612736 bytes exceeds the 4194304-byte limit",
		limit: 384 << 20, // main took 4 GB
	},
	{
		name: "a layer declared 1.5 GiB, served endless",
		build: func(t *testing.T, h *hostile) {
			h.putManifest(t, "v1", rewriteLayerSize(t, h.manifest, h.layers[1].String(), 3<<29))
			h.src.Inject(testenv.NewFaults(testenv.Fault{Name: "endless", Match: testenv.BlobGET(h.layers[1].String()), Serve: testenv.Endless}))
		},
		want:  "content does not match its digest",
		limit: 384 << 20,
	},
	{
		name: "an endless manifest",
		build: func(t *testing.T, h *hostile) {
			h.src.Inject(testenv.NewFaults(testenv.Fault{Name: "endless", Match: testenv.Method(http.MethodGet, "/cat/a/manifests/v1"), Serve: testenv.Endless}))
		},
		want:  "larger than the 4194304-byte limit",
		limit: 384 << 20,
	},
}

// TestAmplificationUnderMemoryLimit runs each case in a child limited to
// the case's memory limit. Each must fail catalog a with its refusal, plan
// catalog b, and stay within the limit.
//
// Peak RSS of one case (N is its index in amplificationCases):
//
//	go test -c -o reconcile.test ./reconcile
//	FERRY_AMPLIFICATION_CASE=N FERRY_AMPLIFICATION_CASE_LIMIT=0 \
//	  /usr/bin/time -v ./reconcile.test -test.run '^TestAmplificationChild$'
func TestAmplificationUnderMemoryLimit(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector multiplies memory use; the limits are checked by the plain run")
	}
	if os.Getenv(amplificationEnv) != "" {
		t.Skip("in the child")
	}
	if testing.Short() {
		t.Skip("-short: writes a few GB to the temporary directory")
	}
	for i, tc := range amplificationCases {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run", "^TestAmplificationChild$", "-test.v", "-test.count=1")
			cmd.Env = append(os.Environ(), amplificationEnv+"="+strconv.Itoa(i), "TMPDIR="+t.TempDir())
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, tail(out))
			}
			if !bytes.Contains(out, []byte("--- PASS: TestAmplificationChild")) {
				t.Fatalf("child did not pass:\n%s", tail(out))
			}
			if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
				t.Logf("peak RSS %d MiB", ru.Maxrss>>10)
			}
		})
	}
}

// TestAmplificationChild is one case of TestAmplificationUnderMemoryLimit,
// run only in its child.
func TestAmplificationChild(t *testing.T) {
	v := os.Getenv(amplificationEnv)
	if v == "" {
		t.Skip("run by TestAmplificationUnderMemoryLimit")
	}
	i, err := strconv.Atoi(v)
	if err != nil || i < 0 || i >= len(amplificationCases) {
		t.Fatalf("%s=%q: no such case", amplificationEnv, v)
	}
	tc := amplificationCases[i]
	h := newHostile(t)
	h.obs.Registry = mustClient(t)
	h.obs.Limits = catalogimage.DefaultLimits()
	tc.build(t, h)
	limit := tc.limit
	if v := os.Getenv(amplificationEnv + "_LIMIT"); v != "" {
		// To measure a case without its limit: FERRY_AMPLIFICATION_CASE_LIMIT=0.
		limit, _ = strconv.ParseUint(v, 10, 64)
	}
	if limit > 0 {
		if err := syscall.Setrlimit(syscall.RLIMIT_DATA, &syscall.Rlimit{Cur: limit, Max: limit}); err != nil {
			t.Fatal(err)
		}
	}
	plan, res, err := h.obs.Compute(t.Context(), h.cfg, nil)
	var incomplete *IncompleteError
	if !errors.As(err, &incomplete) {
		t.Fatalf("%s: error %v, want catalog a failed", tc.name, err)
	}
	built, failed := outcome(plan, res)
	if !strings.Contains(failed["catalog a"], tc.want) || len(failed) != 1 || strings.Join(built, ",") != "b" {
		t.Fatalf("%s: failed %v, built %v; want catalog a failed with %q and b built", tc.name, failed, built, tc.want)
	}
	t.Logf("%s: catalog a refused: %s", tc.name, failed["catalog a"])
	if left, _ := os.ReadDir(h.tmp); len(left) != 0 {
		t.Errorf("left in the temporary directory: %v", left)
	}
}

// zeroBombImage is a catalog image whose configs layer holds n files of
// size zero bytes each, named by pattern, gzip-compressed as a series of
// gzip members (one per 4 MiB of zeros, all alike) so that building it
// costs no more than compressing 4 MiB once.
func zeroBombImage(t *testing.T, pattern string, n int, size int64) v1.Image {
	t.Helper()
	const chunk = 4 << 20
	if size%chunk != 0 && size%512 != 0 {
		t.Fatalf("size %d is not a multiple of 512", size)
	}
	member := func(b []byte) []byte {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		return buf.Bytes()
	}
	zeros := member(make([]byte, chunk))
	var gz bytes.Buffer
	for i := range n {
		var hdr bytes.Buffer
		tw := tar.NewWriter(&hdr)
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf(pattern, i), Typeflag: tar.TypeReg, Mode: 0o644, Size: size})
		tw.Flush()
		gz.Write(member(hdr.Bytes()))
		for range size / chunk {
			gz.Write(zeros)
		}
		if rest := size % chunk; rest > 0 {
			gz.Write(member(make([]byte, rest)))
		}
	}
	gz.Write(member(make([]byte, 1024))) // the archive's end
	raw := gz.Bytes()
	t.Logf("configs layer: %d bytes of gzip for %d x %d bytes", len(raw), n, size)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(raw)), nil })
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, tarLayer(t, map[string]string{"bin/opm": "opm"}), l)
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := img.ConfigFile()
	cf = cf.DeepCopy()
	cf.Config.Labels = map[string]string{catalogimage.LabelConfigs: "/configs"}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func rewriteConfigSize(t *testing.T, raw []byte, size int64) []byte {
	t.Helper()
	out := bytes.Replace(raw, []byte(fmt.Sprintf(`"size":%d,`, configSize(t, raw))), []byte(fmt.Sprintf(`"size":%d,`, size)), 1)
	if bytes.Equal(out, raw) {
		t.Fatal("could not rewrite the config size")
	}
	return out
}

func tail(b []byte) string {
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(b)
}
