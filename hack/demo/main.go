// Command demo is `make demo`: it starts an embedded registry on 127.0.0.1,
// fills it with a world built from the real community-operators v4.20
// catalog (synthetic images, real packages and upgrade graphs), writes a
// config repo that filters it, and walks through ferry's commands against
// it, running the real ferry binary. Nothing outside this machine is
// needed.
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	host := l.Addr().String()
	go http.Serve(l, registry.New(registry.Logger(log.New(ioDiscard{}, "", 0))))

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
	spec := fmt.Sprintf(`# The mirror inside the disconnected network (here: the same embedded
# registry, under mirror/). The catalog is built into it by default.
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
`, countPackages(catalog), w.CatalogTag, host)
	if err := os.WriteFile(filepath.Join(repo, "catalog.yaml"), []byte(spec), 0o644); err != nil {
		return err
	}
	step("the config repo: %s/catalog.yaml", repo)
	fmt.Print(spec)

	for _, c := range []struct {
		title string
		args  []string
	}{
		{"ferry validate", []string{"validate", repo}},
		{"ferry diff   (nothing rendered yet: exit 1, changes pending)", []string{"diff", repo}},
		{"ferry render -o rendered   (filtered FBC, CatalogSource pinned to the built image's digest, mapping.txt, mirror sets, lock)", []string{"render", repo, "-o", filepath.Join(repo, "rendered")}},
		{"ferry diff   (right after rendering: exit 0, nothing to do)", []string{"diff", repo}},
	} {
		if err := ferryStep(ferry, c.title, c.args...); err != nil {
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

	widened := strings.Replace(spec, "      minVersion: 4.0.0\n", "      minVersion: 3.3.0\n", 1)
	if err := os.WriteFile(filepath.Join(repo, "catalog.yaml"), []byte(widened), 0o644); err != nil {
		return err
	}
	return ferryStep(ferry, "widen koku-metrics-operator to >=3.3.0, then ferry reconcile --dry-run   (the plan in catalog terms; nothing is written)", "reconcile", "--dry-run", repo)
}

func ferryStep(ferry, title string, args ...string) error {
	step("%s", title)
	cmd := exec.Command(ferry, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	err := cmd.Run()
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
