// Command demo is `make demo`: it starts two embedded registries on
// 127.0.0.1, fills the first with a world built from the real
// community-operators v4.20 catalog (synthetic images, real packages and
// upgrade graphs), writes a config repo (a git work tree when git is
// installed) that filters it, and walks through ferry's commands against
// it, running the real ferry binary: it mirrors the filtered catalog into
// the second registry, shows that a second reconcile writes nothing there
// and commits nothing, and that widening a range copies only the new
// images; then the daemon, on the directory and on the config repo served
// by an embedded git server (git http-backend): a pushed change, announced
// by a signed webhook, converged and its render pushed back. Nothing
// outside this machine is needed.
package main

import (
	"context"
	"fmt"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/registry"

	"github.com/ferry-gitops/ferry/internal/world"
)

func main() {
	if len(os.Args) != 2 {
		log.Fatal("usage: demo path/to/ferry")
	}
	ferry, err := filepath.Abs(os.Args[1])
	if err != nil {
		log.Fatal(err)
	}
	if err := run(ferry); err != nil {
		log.Fatal(err)
	}
}

func step(format string, args ...any) {
	fmt.Printf("\n\033[1m==> %s\033[0m\n", fmt.Sprintf(format, args...))
}

func run(ferry string) error {
	ctx := context.Background()
	host, _, err := serve()
	if err != nil {
		return err
	}
	mirrorHost, reg, err := serve()
	if err != nil {
		return err
	}
	step("building a source registry at %s from the real community-operators v4.20 catalog", host)
	tmp, err := os.MkdirTemp("", "ferry-demo-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	catalog, err := world.OpenCatalogArchive("testdata/fbc/large/community-operators-prod-catalogs-v4.20.tar.gz", filepath.Join(tmp, "src"))
	if err != nil {
		return err
	}
	opts := world.DefaultOptions(host)
	opts.CatalogRepository = "redhat/community-operator-index"
	opts.CatalogTag = "v4.20"
	start := time.Now()
	w, err := world.Build(ctx, catalog, opts)
	if err != nil {
		return err
	}
	fmt.Printf("%d images (%d multi-arch), %d blobs, %.1f MiB in %s; catalog %s\n",
		w.Stats.Images, w.Stats.Indexes, w.Stats.Blobs, float64(w.Stats.Bytes)/(1<<20), time.Since(start).Round(time.Millisecond), w.CatalogTag)

	repo := filepath.Join(tmp, "config-repo")
	if err := os.MkdirAll(repo, 0o755); err != nil {
		return err
	}
	spec := fmt.Sprintf(`# The mirror inside the disconnected network (here: a second embedded
# registry). The catalog is built into it by default.
apiVersion: ferry.dev/v1alpha1
kind: Mirror
metadata:
  name: lab
spec:
  registry: %[3]s/mirror
---
# Three packages out of %[1]d, three ways of selecting.
apiVersion: ferry.dev/v1alpha1
kind: Catalog
metadata:
  name: community-operators
spec:
  source: %[2]s
  packages:
    - name: koku-metrics-operator     # every 4.x bundle the graph connects
      minVersion: 4.0.0
    - name: infinispan                # the head of one channel, made default
      defaultChannel: 2.4.x
      channels:
        - name: 2.4.x
    - name: nfs-provisioner-operator  # the head of the default channel
  catalogSource:
    displayName: Community Operators (mirrored)
`, countPackages(catalog), w.CatalogTag, mirrorHost)
	if err := os.WriteFile(filepath.Join(repo, "catalog.yaml"), []byte(spec), 0o644); err != nil {
		return err
	}
	step("the config repo: %s/catalog.yaml", repo)
	fmt.Print(spec)

	git := gitInit(repo)
	for _, c := range []struct {
		title string
		args  []string
	}{
		{"ferry validate", []string{"validate", repo}},
		{"ferry diff   (nothing rendered yet: exit 1, changes pending)", []string{"diff", repo}},
		{"ferry reconcile   (copy every image the kept bundles need into the mirror, push the built catalog, write rendered/, commit)", []string{"reconcile", repo}},
	} {
		if err := ferryStep(ferry, reg, c.title, c.args...); err != nil {
			return err
		}
	}
	step("rendered files")
	filepath.WalkDir(filepath.Join(repo, "rendered"), func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			fi, _ := d.Info()
			rel, _ := filepath.Rel(repo, p)
			fmt.Printf("  %-70s %7d bytes\n", rel, fi.Size())
		}
		return nil
	})
	cs, _ := os.ReadFile(filepath.Join(repo, "rendered/catalogs/community-operators/catalogsource.yaml"))
	fmt.Printf("\nrendered/catalogs/community-operators/catalogsource.yaml:\n%s", cs)
	mapping, _ := os.ReadFile(filepath.Join(repo, "rendered/mirror/mapping.txt"))
	lines := strings.Split(strings.TrimSpace(string(mapping)), "\n")
	fmt.Printf("\nrendered/mirror/mapping.txt (%d lines, oc image mirror -f compatible), first 3:\n", len(lines))
	for _, l := range lines[:min(3, len(lines))] {
		fmt.Println("  " + l)
	}
	if err := ferryStep(ferry, reg, "ferry reconcile again   (nothing changed: one HEAD per image, no write to the mirror, no commit)", "reconcile", repo); err != nil {
		return err
	}

	widened := strings.Replace(spec, "      minVersion: 4.0.0\n", "      minVersion: 3.3.0\n", 1)
	if err := os.WriteFile(filepath.Join(repo, "catalog.yaml"), []byte(widened), 0o644); err != nil {
		return err
	}
	git("commit", "-q", "-am", "koku-metrics-operator: from 3.3.0")
	if err := ferryStep(ferry, reg, "widen koku-metrics-operator to >=3.3.0, then ferry reconcile --dry-run   (the plan in catalog terms; nothing is written)", "reconcile", "--dry-run", repo); err != nil {
		return err
	}
	if err := ferryStep(ferry, reg, "ferry reconcile   (only the new bundles' images are copied)", "reconcile", repo); err != nil {
		return err
	}
	if git != nil {
		step("git log   (one commit per reconcile that changed something)")
		fmt.Print(git("log", "--format=%h %s"))
		if err := daemonDemo(ferry, repo, spec, reg, git); err != nil {
			return err
		}
		if err := gitDemo(ferry, repo, spec, reg, git); err != nil {
			return err
		}
	}
	return nil
}

// daemonDemo runs `ferry run` on the config repo, edits the spec the way a
// pushed change would land, and shows the daemon converge and commit back.
func daemonDemo(ferry, repo, spec string, reg *counting, git func(args ...string) string) error {
	step("ferry run   (the daemon: fsnotify on the config repo, metrics on a local port; an edit converges)")
	cache, err := os.MkdirTemp("", "ferry-demo-cache-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(cache)
	cmd := exec.Command(ferry, "run", repo, "--cache-dir", cache, "--interval", "0", "--catalog-interval", "0",
		"--watch-debounce", "200ms", "--health-addr", "", "--metrics-addr", "127.0.0.1:0")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	commits := func() string { return strings.TrimSpace(git("rev-list", "--count", "HEAD")) }
	// Wait for the start reconcile (nothing to do: already converged).
	status := func() string {
		out, _ := exec.Command(ferry, "status", repo, "--cache-dir", cache, "-o", "json").Output()
		return string(out)
	}
	if err := waitFor(time.Minute, func() bool { return strings.Contains(status(), `"lastAppliedRevision"`) }); err != nil {
		return fmt.Errorf("ferry run did not finish its first reconcile: %w", err)
	}
	before := commits()
	narrowed := strings.Replace(spec, "      minVersion: 4.0.0\n", "      minVersion: 4.3.0\n", 1)
	fmt.Println("\n(editing catalog.yaml: koku-metrics-operator from 4.3.0; the daemon sees the file change)")
	w0 := reg.writes.Load()
	if err := os.WriteFile(filepath.Join(repo, "catalog.yaml"), []byte(narrowed), 0o644); err != nil {
		return err
	}
	git("commit", "-q", "-am", "koku-metrics-operator: from 4.3.0")
	if err := waitFor(2*time.Minute, func() bool {
		return commits() != before && commits() != "" && strings.Contains(git("log", "-1", "--format=%s"), "ferry: reconcile")
	}); err != nil {
		return fmt.Errorf("the daemon did not commit the new render: %w", err)
	}
	fmt.Printf("(mirror registry: %d writes while converging: the new catalog image; narrowing copies no image)\n", reg.writes.Load()-w0)
	step("ferry status   (what the daemon last did, without reading its log)")
	st := exec.Command(ferry, "status", repo, "--cache-dir", cache)
	st.Stdout, st.Stderr = os.Stdout, os.Stdout
	st.Run()
	step("git log   (the daemon's commit on top of the edit)")
	fmt.Print(git("log", "-3", "--format=%h %s"))
	step("SIGTERM   (a clean stop)")
	cmd.Process.Signal(syscall.SIGTERM)
	return cmd.Wait()
}

func waitFor(limit time.Duration, ok func() bool) error {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if ok() {
			return nil
		}
	}
	return fmt.Errorf("gave up after %s", limit)
}

// gitInit makes the config repo a git work tree with its spec committed,
// when git is installed, and returns a git runner (nil without git:
// reconcile then writes rendered/ without committing).
func gitInit(dir string) func(args ...string) string {
	bin, err := exec.LookPath("git")
	if err != nil {
		return nil
	}
	run := func(args ...string) string {
		cmd := exec.Command(bin, append([]string{"-c", "user.name=Demo", "-c", "user.email=demo@example.com"}, args...)...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			log.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	run("init", "-q", "-b", "main")
	run("add", ".")
	run("commit", "-q", "-m", "catalog spec")
	return run
}

// serve starts an in-memory registry on 127.0.0.1 and returns its host.
func serve() (string, *counting, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	c := &counting{next: registry.New(registry.Logger(log.New(ioDiscard{}, "", 0)))}
	go http.Serve(l, c)
	return l.Addr().String(), c, nil
}

// counting counts the requests the embedded registry serves, so the demo
// can show what each ferry command sent to it.
type counting struct {
	next          http.Handler
	reads, writes atomic.Int64
}

func (c *counting) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		c.reads.Add(1)
	} else {
		c.writes.Add(1)
	}
	c.next.ServeHTTP(w, r)
}

func ferryStep(ferry string, reg *counting, title string, args ...string) error {
	step("%s", title)
	cmd := exec.Command(ferry, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	r0, w0 := reg.reads.Load(), reg.writes.Load()
	err := cmd.Run()
	fmt.Printf("(mirror registry: %d reads, %d writes)\n", reg.reads.Load()-r0, reg.writes.Load()-w0)
	if ee, ok := err.(*exec.ExitError); ok {
		fmt.Printf("(exit code %d)\n", ee.ExitCode())
		if ee.ExitCode() == 1 && args[0] == "diff" {
			return nil
		}
	}
	return err
}

func countPackages(fsys fs.FS) int {
	entries, _ := fs.ReadDir(fsys, ".")
	n := 0
	for _, e := range entries {
		if e.IsDir() {
			n++
		}
	}
	return n
}

type ioDiscard struct{}

func (ioDiscard) Write(p []byte) (int, error) { return len(p), nil }
