package main

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestImage builds the linux/amd64 image (the build machine's platform)
// and checks what a restricted SecurityContext relies on: a numeric
// non-root user that exists in /etc/passwd, an entrypoint that is a static
// binary which runs as that user, CA certificates where Go looks for them.
func TestImage(t *testing.T) {
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set (the test cross-compiles ferry)")
	}
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err != nil {
		t.Skip("no CA bundle (apt-get install ca-certificates)")
	}
	idx, err := Build(Options{Platforms: []string{"linux/amd64"}, Version: "test", CABundle: "/etc/ssl/certs/ca-certificates.crt",
		Source: "../..", WorkDir: t.TempDir(), Created: time.Unix(0, 0)})
	if err != nil {
		t.Fatal(err)
	}
	m, err := idx.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Manifests) != 1 || m.Manifests[0].Platform.Architecture != "amd64" {
		t.Fatalf("index %+v", m.Manifests)
	}
	img, err := idx.Image(m.Manifests[0].Digest)
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != "65532:65532" || len(cf.Config.Entrypoint) != 1 || cf.Config.Entrypoint[0] != "/ferry" || cf.OS != "linux" {
		t.Errorf("config: user %q, entrypoint %v, os %s", cf.Config.User, cf.Config.Entrypoint, cf.OS)
	}
	files := map[string][]byte{}
	modes := map[string]int64{}
	layers, _ := img.Layers()
	for _, l := range layers {
		rc, err := l.Uncompressed()
		if err != nil {
			t.Fatal(err)
		}
		tr := tar.NewReader(rc)
		for {
			h, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(tr)
			files[h.Name], modes[h.Name] = b, h.Mode
			if h.Mode&(04000|02000) != 0 {
				t.Errorf("%s is setuid/setgid", h.Name)
			}
		}
		rc.Close()
	}
	if !strings.Contains(string(files["etc/passwd"]), "nonroot:x:65532:65532:") {
		t.Errorf("/etc/passwd lacks the non-root user:\n%s", files["etc/passwd"])
	}
	if !bytes.Contains(files["etc/ssl/certs/ca-certificates.crt"], []byte("BEGIN CERTIFICATE")) {
		t.Error("no CA certificates")
	}
	if modes["tmp/"] != 0o1777 {
		t.Errorf("/tmp mode %o", modes["tmp/"])
	}
	bin := filepath.Join(t.TempDir(), "ferry")
	if err := os.WriteFile(bin, files["ferry"], 0o755); err != nil {
		t.Fatal(err)
	}
	// t.TempDir's directories are private to root: let the user in.
	os.Chmod(filepath.Dir(bin), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(bin)), 0o755)
	cmd := exec.Command(bin, "version")
	if os.Getuid() == 0 {
		// Run it as the image's user, as the cluster will.
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: UID, Gid: UID}}
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "test") {
		t.Errorf("the image's binary as uid %d: %v\n%s", UID, err, out)
	}
	if f, err := os.Open(bin); err == nil {
		head := make([]byte, 4)
		f.Read(head)
		f.Close()
		if string(head) != "\x7fELF" {
			t.Error("the entrypoint is not an ELF binary")
		}
	}
}
