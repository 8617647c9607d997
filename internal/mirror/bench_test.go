package mirror

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ferry-gitops/ferry/internal/testenv"
	"github.com/ferry-gitops/ferry/internal/world"
)

// BenchmarkMirrorTools mirrors one world with Ferry and with the tools
// users would otherwise run — a `crane copy` loop, a `skopeo copy --all`
// loop and `skopeo sync` — side by side, each into a fresh Debian
// docker-registry, all at the same concurrency, and prints a table. It is
// what hack/bench-mirror.sh runs; see docs/mirroring.md for numbers.
//
//	FERRY_BENCH_SCALE        small (3 community packages; default, what `make bench` runs),
//	                         community (community-operators v4.20),
//	                         full (certified-operators + community-operators v4.20)
//	FERRY_BENCH_TOOLS        comma-separated subset of ferry,crane,skopeo-copy,skopeo-sync
//	FERRY_BENCH_CONCURRENCY  processes (crane, skopeo) / operations per registry (Ferry); default 8
//
// Ferry runs as its own process (internal/mirror/cmd/mirror-copy) under
// /usr/bin/time -v for its peak RSS. Bytes uploaded are read off the
// mirror's access log (every committed upload, by digest) and its storage
// (each blob's size); unique bytes are the source registry's blob store.
func BenchmarkMirrorTools(b *testing.B) {
	skipE2E(b)
	scale := envOr("FERRY_BENCH_SCALE", "small")
	conc, err := strconv.Atoi(envOr("FERRY_BENCH_CONCURRENCY", "8"))
	if err != nil {
		b.Fatal(err)
	}
	tools := strings.Split(envOr("FERRY_BENCH_TOOLS", "ferry,crane,skopeo-copy,skopeo-sync"), ",")

	// The world, built once.
	src := testenv.StartRegistry(b, testenv.RegistryOptions{})
	var refs []string
	catalogs := map[string][]string{
		"small":     {"community-operators-prod-catalogs-v4.20.tar.gz"},
		"community": {"community-operators-prod-catalogs-v4.20.tar.gz"},
		"full":      {"certified-operators-catalogs-v4.20.tar.gz", "community-operators-prod-catalogs-v4.20.tar.gz"},
	}[scale]
	if catalogs == nil {
		b.Fatalf("FERRY_BENCH_SCALE=%s: want small, community or full", scale)
	}
	start := time.Now()
	var stats world.Stats
	for _, archive := range catalogs {
		var fsys fs.FS
		if scale == "small" {
			fsys = catalogSubset(b, archive, e2ePackages)
		} else {
			fsys, err = world.OpenCatalogArchive(filepath.Join(testenv.RepoRoot(b), "testdata/fbc/large", archive), b.TempDir())
			if err != nil {
				b.Fatal(err)
			}
		}
		opts := world.DefaultOptions(src.Host)
		opts.Prefix = strings.SplitN(archive, "-", 2)[0] // certified, community
		w, err := world.Build(context.Background(), fsys, opts)
		if err != nil {
			b.Fatal(err)
		}
		refs = append(refs, w.Catalog, w.CatalogTag)
		refs = append(refs, w.Images...)
		stats.Images += w.Stats.Images
		stats.Indexes += w.Stats.Indexes
		stats.Manifests += w.Stats.Manifests
	}
	unique := storedBytes(b, src.Dir)
	progress("world built in %s", time.Since(start).Round(time.Second))
	b.Logf("world (%s): %d images, %d indexes, %d manifests, %d distinct blobs / %d bytes in the source, built in %s",
		scale, stats.Images, stats.Indexes, stats.Manifests, unique.blobs, unique.bytes, time.Since(start).Round(time.Second))

	bin := buildMirrorCopy(b)
	dir := b.TempDir()
	var rows []benchRow
	// One pass however large b.N: a pass takes minutes (run with
	// -benchtime 1x).
	for _, tool := range tools {
		rows = append(rows, benchTool(b, tool, conc, src, refs, unique, bin, dir))
	}
	printRows(b, scale, conc, unique, rows)
}

// benchRow is one tool's measurements.
type benchRow struct {
	tool                   string
	cold                   time.Duration
	coldRequests           map[string]int
	uploadedBytes          int64
	uploads, mounts        int
	rerun                  time.Duration
	rerunWrites            int
	rerunRequests          map[string]int
	newBundleBytes, newMax int64
	peakRSSKiB             int64
	// headFloor is a bare net/http HEAD loop over the same destination
	// manifests at the same concurrency: what any no-op that asks the
	// mirror about every image costs at least on this machine.
	headFloor time.Duration
	failed    string
}

// progress prints a timestamped line while the benchmark runs (b.Log only
// shows at the end, and a full run takes an hour).
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s bench-mirror: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func benchTool(b *testing.B, tool string, conc int, src *testenv.Registry, refs []string, unique stored, bin, dir string) benchRow {
	dst := testenv.StartRegistry(b, testenv.RegistryOptions{})
	defer func() { progress("%s done", tool) }()
	pairs := benchPairs(src.Host, dst.Host, refs)
	row := benchRow{tool: tool}
	run := func(pairs []benchPair, hintsIn, hintsOut string) (time.Duration, int64) {
		b.Helper()
		start := time.Now()
		var err error
		var rss int64
		switch tool {
		case "ferry":
			rss, err = runFerry(b, bin, dir, pairs, conc, hintsIn, hintsOut)
		case "crane":
			err = runLoop(b, conc, pairs, func(p benchPair) []string {
				return []string{testenv.Tool(b, "crane"), "copy", p.src, p.dstRef()}
			})
		case "skopeo-copy":
			err = runLoop(b, conc, pairs, func(p benchPair) []string {
				// skopeo refuses repo:tag@digest; the digest is what counts.
				return []string{testenv.Skopeo(b), "copy", "--all", "--preserve-digests", "--src-tls-verify=false", "--dest-tls-verify=false", "docker://" + p.srcPinned(), "docker://" + p.dstRef()}
			})
		case "skopeo-sync":
			err = runSkopeoSync(b, dir, conc, src.Host, dst.Host, pairs)
		default:
			b.Fatalf("unknown tool %q", tool)
		}
		if err != nil {
			// Another tool failing is a result to report; Ferry failing
			// fails the benchmark.
			row.failed = err.Error()
			if tool == "ferry" {
				b.Errorf("%s: %v", tool, err)
			}
		}
		return time.Since(start), rss
	}

	off := dst.LogSize(b)
	hints := filepath.Join(dir, "hints.json")
	progress("%s: cold mirror of %d images", tool, len(pairs))
	row.cold, row.peakRSSKiB = run(pairs, "", hints)
	progress("%s: cold mirror took %s", tool, row.cold.Round(time.Second))
	acc := readAccessLog(b, dst, off)
	row.coldRequests = acc.methods
	row.uploads, row.mounts = len(acc.committed), acc.mounts
	row.uploadedBytes = blobBytes(b, dst.Dir, acc.committed)
	locate := func(p benchPair) string { return p.dstRepo }
	if tool == "skopeo-sync" {
		// skopeo sync puts DEST/<last path component> (--scoped would put
		// the source host, port included, in the path).
		locate = func(p benchPair) string {
			return dst.Host + "/mirror/" + p.dstRepo[strings.LastIndex(p.dstRepo, "/")+1:]
		}
	}
	if bad := verifyBench(b, pairs, locate); bad != "" {
		if tool == "ferry" {
			b.Error(bad)
		}
		row.failed += " " + bad
	}

	// Rerun with nothing to do.
	off = dst.LogSize(b)
	row.rerun, _ = run(pairs, hints, hints)
	progress("%s: no-op rerun took %s", tool, row.rerun.Round(10*time.Millisecond))
	acc = readAccessLog(b, dst, off)
	row.rerunRequests, row.rerunWrites = acc.methods, acc.writes

	// One new bundle: a world image plus one layer, in a new repository.
	if tool == "ferry" {
		row.headFloor = headLoop(b, conc, pairs)
		progress("bare HEAD loop over the mirror took %s", row.headFloor.Round(10*time.Millisecond))
		e := &env{src: src, dst: dst, world: &world.World{Images: refs[2:]}}
		repoTag := fmt.Sprintf("newcomer/%s-bundle:v1.0.%d", tool, time.Now().UnixNano())
		_, fresh := e.newBundle(b, repoTag)
		withNew := append(pairs, benchPair{src: src.Ref(repoTag), dstRepo: dst.Ref("mirror/" + repoTag[:strings.LastIndex(repoTag, ":")]), tag: repoTag[strings.LastIndex(repoTag, ":")+1:]})
		off = dst.LogSize(b)
		run(withNew, hints, hints)
		acc = readAccessLog(b, dst, off)
		row.newBundleBytes, row.newMax = blobBytes(b, dst.Dir, acc.committed), fresh
	}
	return row
}

type benchPair struct {
	src     string // by digest, or tag (+digest)
	dstRepo string
	tag     string
	digest  string
}

// srcPinned is the source by digest alone when it has one.
func (p benchPair) srcPinned() string {
	if p.digest == "" {
		return p.src
	}
	repo := p.src[:strings.Index(p.src, "@")]
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return repo + "@" + p.digest
}

// dstRef is the destination as crane and skopeo want it: the tag, or the
// digest (they have no "repository only" form).
func (p benchPair) dstRef() string {
	if p.tag != "" {
		return p.dstRepo + ":" + p.tag
	}
	return p.dstRepo + "@" + p.digest
}

func benchPairs(srcHost, dstHost string, refs []string) []benchPair {
	var out []benchPair
	for _, ref := range refs {
		rest := strings.TrimPrefix(ref, srcHost+"/")
		repo, tag, digest := rest, "", ""
		if i := strings.Index(repo, "@"); i >= 0 {
			repo, digest = repo[:i], repo[i+1:]
		}
		if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
			repo, tag = repo[:i], repo[i+1:]
		}
		if digest != "" {
			tag = "" // pinned references are mirrored by digest (see env.pairs)
		}
		out = append(out, benchPair{src: ref, dstRepo: dstHost + "/mirror/" + repo, tag: tag, digest: digest})
	}
	return out
}

func runFerry(b *testing.B, bin, dir string, pairs []benchPair, conc int, hintsIn, hintsOut string) (int64, error) {
	var lines bytes.Buffer
	for _, p := range pairs {
		dst := p.dstRepo
		if p.tag != "" {
			dst += ":" + p.tag
		}
		fmt.Fprintf(&lines, "%s %s\n", p.src, dst)
	}
	pf := filepath.Join(dir, "pairs.txt")
	if err := os.WriteFile(pf, lines.Bytes(), 0o644); err != nil {
		b.Fatal(err)
	}
	timeOut := filepath.Join(dir, "time.txt")
	args := []string{"-v", "-o", timeOut, bin, "-pairs", pf, "-concurrency", strconv.Itoa(conc), "-save-hints", hintsOut}
	if hintsIn != "" {
		if _, err := os.Stat(hintsIn); err == nil {
			args = append(args, "-hints", hintsIn)
		}
	}
	cmd := exec.Command("/usr/bin/time", args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	b.Logf("ferry: %s", strings.TrimSpace(stderr.String()))
	t, _ := os.ReadFile(timeOut)
	m := regexp.MustCompile(`Maximum resident set size \(kbytes\): (\d+)`).FindSubmatch(t)
	var rss int64
	if m != nil {
		rss, _ = strconv.ParseInt(string(m[1]), 10, 64)
	}
	return rss, err
}

// headLoop HEADs every destination manifest (tag, or digest) with plain
// net/http, conc at a time, and returns the wall time.
func headLoop(b *testing.B, conc int, pairs []benchPair) time.Duration {
	tr := &http.Transport{MaxIdleConnsPerHost: conc}
	defer tr.CloseIdleConnections()
	accept := "application/vnd.oci.image.index.v1+json,application/vnd.docker.distribution.manifest.list.v2+json,application/vnd.oci.image.manifest.v1+json,application/vnd.docker.distribution.manifest.v2+json"
	work := make(chan string)
	var wg sync.WaitGroup
	var failed atomic.Int64
	start := time.Now()
	for range conc {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for u := range work {
				req, _ := http.NewRequest(http.MethodHead, u, nil)
				req.Header.Set("Accept", accept)
				resp, err := tr.RoundTrip(req)
				if err != nil || resp.StatusCode != http.StatusOK {
					failed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}
		}()
	}
	for _, p := range pairs {
		host, repo, _ := strings.Cut(p.dstRepo, "/")
		ref := p.tag
		if ref == "" {
			ref = p.digest
		}
		work <- "http://" + host + "/v2/" + repo + "/manifests/" + ref
	}
	close(work)
	wg.Wait()
	if failed.Load() > 0 {
		b.Errorf("bare HEAD loop: %d of %d failed", failed.Load(), len(pairs))
	}
	return time.Since(start)
}

// runLoop runs one process per pair, conc at a time.
func runLoop(b *testing.B, conc int, pairs []benchPair, argv func(benchPair) []string) error {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	for _, p := range pairs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			a := argv(p)
			out, err := exec.Command(a[0], a[1:]...).CombinedOutput()
			if os.Getenv("FERRY_BENCH_DEBUG") != "" {
				b.Logf("%s:\n%s", strings.Join(a, " "), out)
			}
			if err != nil {
				mu.Lock()
				failures = append(failures, fmt.Sprintf("%s: %v: %s", strings.Join(a[1:], " "), err, lastLine(out)))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(failures) > 0 {
		return fmt.Errorf("%d of %d copies failed; first: %s", len(failures), len(pairs), failures[0])
	}
	return nil
}

func lastLine(b []byte) string {
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	return lines[len(lines)-1]
}

// runSkopeoSync splits the images into conc YAML files (whole
// repositories per file) and runs one `skopeo sync` per file at once.
func runSkopeoSync(b *testing.B, dir string, conc int, srcHost, dstHost string, pairs []benchPair) error {
	byRepo := map[string][]string{}
	for _, p := range pairs {
		repo := strings.TrimPrefix(p.dstRepo, dstHost+"/mirror/")
		id := p.tag
		if p.digest != "" {
			id = p.digest
		}
		byRepo[repo] = append(byRepo[repo], id)
	}
	repos := make([]string, 0, len(byRepo))
	for r := range byRepo {
		repos = append(repos, r)
	}
	sort.Strings(repos)
	shards := make([]bytes.Buffer, conc)
	for i := range shards {
		fmt.Fprintf(&shards[i], "%s:\n  tls-verify: false\n  images:\n", srcHost)
	}
	for i, r := range repos {
		sh := &shards[i%conc]
		fmt.Fprintf(sh, "    %s:\n", r)
		for _, id := range dedupe(byRepo[r]) {
			fmt.Fprintf(sh, "      - %q\n", id)
		}
	}
	var cmds [][]string
	for i := range shards {
		if i >= len(repos) {
			break
		}
		f := filepath.Join(dir, fmt.Sprintf("sync-%d.yaml", i))
		if err := os.WriteFile(f, shards[i].Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
		cmds = append(cmds, []string{testenv.Skopeo(b), "sync", "--all", "--preserve-digests", "--src", "yaml", "--dest", "docker", "--dest-tls-verify=false", f, dstHost + "/mirror"})
	}
	var shardPairs []benchPair
	for range cmds {
		shardPairs = append(shardPairs, benchPair{})
	}
	i := -1
	var mu sync.Mutex
	return runLoop(b, conc, shardPairs, func(benchPair) []string {
		mu.Lock()
		defer mu.Unlock()
		i++
		return cmds[i]
	})
}

func dedupe(ss []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, s := range ss {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
}

// access is what the registry's access log says about a window.
type access struct {
	methods   map[string]int
	writes    int
	committed []string // digests of completed uploads, with repeats
	mounts    int
}

var digestParam = regexp.MustCompile(`[?&]digest=(sha256(?::|%3A)[0-9a-f]{64})`)

func readAccessLog(b *testing.B, r *testenv.Registry, offset int64) access {
	counts, lines := r.Requests(b, offset)
	a := access{methods: counts, writes: testenv.Writes(counts)}
	for _, l := range lines {
		f := strings.Fields(l)
		method, uri, status := f[0], f[1], f[2]
		if status == "201" && strings.Contains(uri, "/blobs/uploads/") {
			switch {
			case method == "POST" && strings.Contains(uri, "mount="):
				a.mounts++
			case method == "PUT" || method == "POST":
				if d := digestParam.FindStringSubmatch(uri); d != nil {
					a.committed = append(a.committed, strings.Replace(d[1], "%3A", ":", 1))
				}
			}
		}
	}
	return a
}

type stored struct {
	blobs int
	bytes int64
}

// storedBytes sums the layers and configs a registry holds, each once:
// the blobs some repository links as a layer (distribution keeps manifests
// in the same blob store; they are not uploads).
func storedBytes(b testing.TB, root string) stored {
	v2 := filepath.Join(root, "docker/registry/v2")
	digests := map[string]bool{}
	err := filepath.WalkDir(filepath.Join(v2, "repositories"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.Name() != "link" || !strings.Contains(p, "/_layers/") {
			return err
		}
		digests[filepath.Base(filepath.Dir(p))] = true
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	var s stored
	for d := range digests {
		fi, err := os.Stat(filepath.Join(v2, "blobs/sha256", d[:2], d, "data"))
		if err != nil {
			b.Fatal(err)
		}
		s.blobs++
		s.bytes += fi.Size()
	}
	return s
}

// blobBytes sums the sizes of digests (repeats count) from the store.
func blobBytes(b testing.TB, root string, digests []string) int64 {
	var n int64
	for _, d := range digests {
		h := strings.TrimPrefix(d, "sha256:")
		fi, err := os.Stat(filepath.Join(root, "docker/registry/v2/blobs/sha256", h[:2], h, "data"))
		if err != nil {
			b.Fatal(err)
		}
		n += fi.Size()
	}
	return n
}

// verifyBench spot-checks the mirror with skopeo: every 25th image's raw
// manifest must hash to its source digest. It returns what was wrong.
func verifyBench(b *testing.B, pairs []benchPair, locate func(benchPair) string) string {
	var bad []string
	for i, p := range pairs {
		if i%25 != 0 || p.digest == "" {
			continue
		}
		ref := locate(p) + "@" + p.digest
		out, stderr, err := testenv.RunSkopeo(b, "inspect", "--raw", "--tls-verify=false", "docker://"+ref)
		switch {
		case err != nil:
			bad = append(bad, fmt.Sprintf("skopeo inspect %s: %v: %s", ref, err, lastLine([]byte(stderr))))
		case digestOf([]byte(out)) != p.digest:
			bad = append(bad, fmt.Sprintf("%s: mirrored digest %s", ref, digestOf([]byte(out))))
		}
	}
	if len(bad) == 0 {
		return ""
	}
	return fmt.Sprintf("%d spot checks failed; first: %s", len(bad), bad[0])
}

func printRows(b *testing.B, scale string, conc int, unique stored, rows []benchRow) {
	var sb strings.Builder
	fmt.Fprintf(&sb, "\nmirror benchmark, scale %s, concurrency %d, unique source bytes %d (%d blobs)\n", scale, conc, unique.bytes, unique.blobs)
	fmt.Fprintf(&sb, "%-12s %10s %14s %8s %8s %8s %10s %8s %12s %10s\n", "tool", "cold", "uploaded B", "x uniq", "uploads", "mounts", "no-op", "writes", "new-bundle B", "peak RSS")
	for _, r := range rows {
		nb, rss := "-", "-"
		if r.newMax > 0 {
			nb = fmt.Sprintf("%d/%d", r.newBundleBytes, r.newMax)
		}
		if r.peakRSSKiB > 0 {
			rss = fmt.Sprintf("%d MiB", r.peakRSSKiB/1024)
		}
		fmt.Fprintf(&sb, "%-12s %10s %14d %8.2f %8d %8d %10s %8d %12s %10s\n", r.tool, r.cold.Round(10*time.Millisecond), r.uploadedBytes,
			float64(r.uploadedBytes)/float64(unique.bytes), r.uploads, r.mounts, r.rerun.Round(10*time.Millisecond), r.rerunWrites, nb, rss)
	}
	for _, r := range rows {
		if r.headFloor > 0 {
			fmt.Fprintf(&sb, "floor: a bare net/http HEAD of every destination manifest at concurrency %d takes %s\n", conc, r.headFloor.Round(10*time.Millisecond))
		}
	}
	for _, r := range rows {
		fmt.Fprintf(&sb, "%s: cold requests %v; no-op requests %v\n", r.tool, r.coldRequests, r.rerunRequests)
		if r.failed != "" {
			fmt.Fprintf(&sb, "%s FAILED: %s\n", r.tool, r.failed)
		}
	}
	b.Log(sb.String())
	fmt.Print(sb.String())
	for _, r := range rows {
		b.ReportMetric(r.cold.Seconds(), r.tool+"-cold-s")
		b.ReportMetric(r.rerun.Seconds(), r.tool+"-noop-s")
	}
}

func digestOf(raw []byte) string {
	sum := sha256.Sum256(raw)
	return "sha256:" + hex.EncodeToString(sum[:])
}

func envOr(k, d string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return d
}

// buildMirrorCopy builds the mirror-copy command once per benchmark.
func buildMirrorCopy(b *testing.B) string {
	out := filepath.Join(b.TempDir(), "mirror-copy")
	cmd := exec.Command("go", "build", "-o", out, "./cmd/mirror-copy")
	if o, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("go build mirror-copy: %v\n%s", err, o)
	}
	return out
}
