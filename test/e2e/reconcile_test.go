package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/testenv"
)

// TestReconcileMirrorsAndCommits runs `ferry reconcile` for real: a world
// from real community packages in a source registry, an authenticated
// mirror, the spec in a git work tree. It checks the safe order on a
// partial failure (the catalog whose image could not be copied keeps its
// previous render), convergence once the fault is gone (every mirrored
// image verified by digest with skopeo), and that a run with nothing to do
// writes nothing to the mirror and commits nothing.
func TestReconcileMirrorsAndCommits(t *testing.T) {
	src, w := communityWorld(t, "kubevirt-wol", "nfs-provisioner-operator")
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	auth := testenv.AuthFile(t, dst)
	work := t.TempDir()
	git := gitIn(t, work)
	git("init", "-q", "-b", "main")
	body := fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Mirror
metadata:
  name: lab
spec:
  registry: %s/ocp
---
apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community
spec:
  source: %s
  packages:
    - name: kubevirt-wol
`, dst.Host, w.CatalogTag)
	writeSpec(t, work, body)
	git("add", ".")
	git("commit", "-q", "-m", "spec")
	reconcileArgs := []string{"reconcile", work, "-a", auth, "--cache-dir", t.TempDir(), "--progress", "never"}

	// 1. First run: everything copied, catalog pushed, render committed.
	stdout, stderr, code := ferry(t, reconcileArgs...)
	if code != 0 {
		t.Fatalf("first reconcile: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "Catalog/community: pushed "+dst.Host+"/ocp/") || !strings.Contains(stdout, "Render: committed") {
		t.Errorf("first reconcile output:\n%s", stdout)
	}
	if log := git("log", "--format=%s", "-n1"); !strings.HasPrefix(log, "ferry: reconcile community") {
		t.Errorf("last commit %q, want Ferry's", log)
	}
	verifyMirror(t, dst, work)
	firstSource := readFile(t, work, "rendered/catalogs/community/catalogsource.yaml")

	// 2. A package more, one of its images broken at the source: that
	// image fails, the catalog is held back, the rest is mirrored.
	writeSpec(t, work, body+"    - name: nfs-provisioner-operator\n")
	git("commit", "-q", "-am", "add nfs-provisioner-operator")
	broken := breakNewImage(t, src, work, auth)
	stdout, stderr, code = ferry(t, "diff", work, "-a", auth)
	if code != 1 || !strings.Contains(stdout, "copy "+broken.image+" -> ") || !strings.Contains(stdout, "to copy (") {
		t.Errorf("diff does not list the images the mirror lacks: exit %d\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = ferry(t, reconcileArgs...)
	if code != 1 {
		t.Fatalf("reconcile with a broken image: exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stderr, "failed: copy "+broken.image) || !strings.Contains(stderr, "held back: Catalog/community") {
		t.Errorf("the failure is not reported:\n%s", stderr)
	}
	if got := readFile(t, work, "rendered/catalogs/community/catalogsource.yaml"); got != firstSource {
		t.Errorf("the CatalogSource moved although an image of its catalog is missing:\n%s", got)
	}
	if _, err := os.Stat(filepath.Join(work, "rendered/catalogs/community/configs/nfs-provisioner-operator")); err == nil {
		t.Error("the held-back catalog's new package was rendered")
	}
	// What is committed describes the mirror: the failed image has no
	// mapping line, mirror set entry or lock entry, every mapping line is
	// in the mirror, the lock keeps the catalog digest actually pushed, and
	// the commit message does not claim the held catalog moved.
	brokenSource, _, _ := strings.Cut(broken.image, "@")
	for _, f := range []string{"rendered/mirror/mapping.txt", "rendered/ferry.lock.yaml"} {
		if strings.Contains(git("show", "HEAD:"+f), brokenSource) {
			t.Errorf("committed %s names the image that was not mirrored (%s)", f, brokenSource)
		}
	}
	verifyMirror(t, dst, work)
	if msg := git("log", "-n1", "--format=%B"); strings.Contains(msg, "Catalog/community: update") || strings.Contains(msg, "ferry: reconcile community") || !strings.Contains(msg, "Held back: Catalog/community") {
		t.Errorf("the commit message does not describe the outcome:\n%s", msg)
	}

	// 2b. A wrong mirror password: nothing is mirrored, so nothing is
	// committed and the render stays as it was.
	head := git("rev-parse", "HEAD")
	bad := testenv.AuthFile(t, &testenv.Registry{Host: dst.Host, Username: dst.Username, Password: "wrong-" + dst.Password[:4]})
	stdout, stderr, code = ferry(t, "reconcile", work, "-a", bad, "--cache-dir", t.TempDir(), "--progress", "never")
	if code != 1 {
		t.Errorf("reconcile with a wrong mirror password: exit %d, want 1\n%s\n%s", code, stdout, stderr)
	}
	if got := git("rev-parse", "HEAD"); got != head {
		t.Errorf("a run that mirrored nothing committed: %s", git("show", "--stat", "HEAD"))
	}
	if st := git("status", "--porcelain"); st != "" {
		t.Errorf("a run that mirrored nothing changed the work tree:\n%s", st)
	}

	// 3. The fault is gone: the next run converges.
	broken.repair(t)
	stdout, stderr, code = ferry(t, reconcileArgs...)
	if code != 0 {
		t.Fatalf("reconcile after repair: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if readFile(t, work, "rendered/catalogs/community/catalogsource.yaml") == firstSource {
		t.Error("the CatalogSource did not move to the new catalog")
	}
	verifyMirror(t, dst, work)

	// 4. Nothing to do: no write to the mirror, no commit.
	head = git("rev-parse", "HEAD")
	off := dst.LogSize(t)
	if stdout, stderr, code := ferry(t, "diff", work, "-a", auth); code != 0 || !strings.Contains(stdout, "; 0 to copy") {
		t.Errorf("diff after convergence: exit %d, want 0\n%s\n%s", code, stdout, stderr)
	}
	stdout, stderr, code = ferry(t, reconcileArgs...)
	if code != 0 {
		t.Fatalf("no-op reconcile: exit %d\n%s\n%s", code, stdout, stderr)
	}
	counts, lines := dst.Requests(t, off)
	if n := testenv.Writes(counts); n != 0 {
		t.Errorf("no-op reconcile wrote %d time(s) to the mirror: %v", n, lines)
	}
	if got := git("rev-parse", "HEAD"); got != head {
		t.Errorf("no-op reconcile committed: HEAD %s -> %s", head, got)
	}
	if !strings.Contains(stdout, "nothing to commit") {
		t.Errorf("no-op reconcile output:\n%s", stdout)
	}
	if strings.Contains(stdout+stderr, dst.Password) {
		t.Error("the mirror's password appears in the output")
	}
}

// gitIn returns a runner of the real git CLI in dir, isolated from the
// user's configuration.
func gitIn(t *testing.T, dir string) func(args ...string) string {
	bin := testenv.Tool(t, "git")
	home := t.TempDir()
	return func(args ...string) string {
		t.Helper()
		cmd := exec.Command(bin, append([]string{"-c", "user.name=Test", "-c", "user.email=test@example.com"}, args...)...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
}

func readFile(t *testing.T, dir, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// verifyMirror checks every line of the render's mapping.txt, and the
// catalog image the CatalogSource pins, with skopeo: the bytes at the
// destination hash to the source digest.
func verifyMirror(t *testing.T, dst *testenv.Registry, work string) {
	t.Helper()
	check := func(ref, digest string) {
		out, stderr, err := testenv.RunSkopeo(t, "inspect", "--raw", "--tls-verify=false", "--creds", dst.Creds(), "docker://"+ref)
		if err != nil {
			t.Errorf("skopeo inspect --raw %s: %v\n%s", ref, err, stderr)
			return
		}
		sum := sha256.Sum256([]byte(out))
		if got := "sha256:" + hex.EncodeToString(sum[:]); got != digest {
			t.Errorf("%s: digest %s, want %s", ref, got, digest)
		}
	}
	lines := strings.Split(strings.TrimSpace(readFile(t, work, "rendered/mirror/mapping.txt")), "\n")
	for _, l := range lines {
		src, dstRef, _ := strings.Cut(l, "=")
		_, digest, ok := strings.Cut(src, "@")
		if !ok {
			t.Errorf("mapping line %q: source not pinned", l)
			continue
		}
		check(dstRef, digest)
	}
	cs := readFile(t, work, "rendered/catalogs/community/catalogsource.yaml")
	i := strings.Index(cs, "image: ")
	if i < 0 {
		t.Fatalf("no image in the CatalogSource:\n%s", cs)
	}
	pinned := strings.Fields(cs[i+len("image: "):])[0]
	_, digest, _ := strings.Cut(pinned, "@")
	check(pinned, digest)
	t.Logf("skopeo verified %d mirrored images and the catalog image", len(lines))
}

// brokenImage is a source image whose config blob was moved away.
type brokenImage struct {
	image       string
	blob, moved string
}

func (b brokenImage) repair(t *testing.T) {
	t.Helper()
	if err := os.Rename(b.moved, b.blob); err != nil {
		t.Fatal(err)
	}
}

// breakNewImage finds an image the next reconcile will copy (one of the
// new package's, not yet in the mirror) and removes its config blob from
// the source registry's storage, so the source answers 404 for it.
func breakNewImage(t *testing.T, src *testenv.Registry, work, auth string) brokenImage {
	t.Helper()
	out := t.TempDir()
	if _, stderr, code := ferry(t, "render", work, "-a", auth, "-o", out); code != 0 {
		t.Fatalf("render: exit %d\n%s", code, stderr)
	}
	before := map[string]bool{}
	for _, l := range strings.Split(readFile(t, work, "rendered/mirror/mapping.txt"), "\n") {
		before[l] = true
	}
	for _, l := range strings.Split(strings.TrimSpace(readFile(t, out, "mirror/mapping.txt")), "\n") {
		source, _, _ := strings.Cut(l, "=")
		if before[l] || !strings.Contains(source, "nfs") {
			continue
		}
		ref, err := name.NewDigest(source)
		if err != nil {
			continue
		}
		desc, err := remote.Get(ref)
		if err != nil {
			t.Fatal(err)
		}
		var img v1.Image
		if desc.MediaType.IsIndex() {
			idx, err := desc.ImageIndex()
			if err != nil {
				t.Fatal(err)
			}
			m, err := idx.IndexManifest()
			if err != nil {
				t.Fatal(err)
			}
			if img, err = idx.Image(m.Manifests[0].Digest); err != nil {
				t.Fatal(err)
			}
		} else if img, err = desc.Image(); err != nil {
			t.Fatal(err)
		}
		cfg, err := img.ConfigName()
		if err != nil {
			t.Fatal(err)
		}
		blob := filepath.Join(src.Dir, "docker/registry/v2/blobs/sha256", cfg.Hex[:2], cfg.Hex, "data")
		moved := blob + ".away"
		if err := os.Rename(blob, moved); err != nil {
			t.Fatal(err)
		}
		return brokenImage{image: ref.String(), blob: blob, moved: moved}
	}
	t.Fatal("no new image of nfs-provisioner-operator in the next mapping")
	return brokenImage{}
}

// TestReconcileAirGap carries a catalog across an air gap with the CLI:
// reconcile --to-archive on the connected side (the mirror is not
// touched), ferry import on the disconnected side (the source is not
// touched), then an incremental archive holding only what is new, and a
// corrupt archive refused before anything is pushed.
func TestReconcileAirGap(t *testing.T) {
	src, w := communityWorld(t, "kubevirt-wol", "nfs-provisioner-operator")
	dst := testenv.StartRegistry(t, testenv.RegistryOptions{Auth: true})
	auth := testenv.AuthFile(t, dst)
	connected, disconnected, media := t.TempDir(), t.TempDir(), t.TempDir()
	gitIn(t, disconnected)("init", "-q", "-b", "main")
	body := fmt.Sprintf(`apiVersion: ferry.dev/v1alpha1
kind: Mirror
metadata:
  name: lab
spec:
  registry: %s/ocp
---
apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community
spec:
  source: %s
  packages:
    - name: kubevirt-wol
`, dst.Host, w.CatalogTag)
	writeSpec(t, connected, body)
	one, two := filepath.Join(media, "one.tar"), filepath.Join(media, "two.tar")

	export := func(archive string, extra ...string) string {
		t.Helper()
		off := dst.LogSize(t)
		stdout, stderr, code := ferry(t, append([]string{"reconcile", connected, "--to-archive", archive, "--progress", "never"}, extra...)...)
		if code != 0 {
			t.Fatalf("reconcile --to-archive: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if counts, lines := dst.Requests(t, off); len(lines) != 0 {
			t.Errorf("mirror to disk contacted the mirror: %v", counts)
		}
		if _, err := os.Stat(filepath.Join(connected, "rendered")); err == nil {
			t.Error("mirror to disk wrote the render directory")
		}
		return stdout
	}
	importArchive := func(archive string) {
		t.Helper()
		off := src.LogSize(t)
		stdout, stderr, code := ferry(t, "import", archive, disconnected, "-a", auth, "--progress", "never")
		if code != 0 {
			t.Fatalf("import: exit %d\n%s\n%s", code, stdout, stderr)
		}
		if counts, lines := src.Requests(t, off); len(lines) != 0 {
			t.Errorf("disk to mirror contacted the source: %v", counts)
		}
		if !strings.Contains(stdout, "Render: committed") {
			t.Errorf("import output:\n%s", stdout)
		}
		verifyMirror(t, dst, disconnected)
	}

	export(one)
	importArchive(one)

	writeSpec(t, connected, body+"    - name: nfs-provisioner-operator\n")
	stdout := export(two, "--since", one)
	if !strings.Contains(stdout, "carried before") || strings.Contains(stdout, "left out 0 blob(s)") {
		t.Errorf("the second archive left nothing out:\n%s", stdout)
	}
	importArchive(two)
	if _, err := os.Stat(filepath.Join(disconnected, "rendered/catalogs/community/configs/nfs-provisioner-operator")); err != nil {
		t.Errorf("the second import did not bring the new package's render: %v", err)
	}

	// A truncated archive: refused whole, exit 2, nothing sent to the mirror.
	b, err := os.ReadFile(two)
	if err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(media, "broken.tar")
	if err := os.WriteFile(broken, b[:len(b)*2/3], 0o644); err != nil {
		t.Fatal(err)
	}
	off := dst.LogSize(t)
	if _, stderr, code := ferry(t, "import", broken, disconnected, "-a", auth, "--progress", "never"); code != 2 {
		t.Errorf("import of a truncated archive: exit %d, want 2\n%s", code, stderr)
	}
	if counts, _ := dst.Requests(t, off); testenv.Writes(counts) != 0 {
		t.Errorf("a truncated archive wrote to the mirror: %v", counts)
	}
}
