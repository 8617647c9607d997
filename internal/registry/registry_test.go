package registry

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

func TestAuthFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "auth.json")
	secret := "s3cr3t-value"
	body := `{"auths": {
		"https://registry.example.com:5000": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("alice:"+secret)) + `"},
		"docker.io": {"username": "bob", "password": "pw"}
	}}`
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Options{AuthFile: file})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		ref, user string
	}{
		{"registry.example.com:5000/ns/img:tag", "alice"},
		{"docker.io/library/busybox:1", "bob"},
		{"quay.io/other/img:1", ""},
	} {
		ref, _ := name.ParseReference(tc.ref)
		a, err := c.keychain.Resolve(ref.Context())
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := a.Authorization()
		if cfg.Username != tc.user {
			t.Errorf("%s: user %q, want %q", tc.ref, cfg.Username, tc.user)
		}
	}
	if a, _ := c.keychain.Resolve(mustRepo(t, "quay.io/x/y")); a != authn.Anonymous {
		t.Error("unknown registry should be anonymous")
	}
}

func TestBadAuthFileNamesFileNotSecret(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "config.json")
	os.WriteFile(file, []byte(`{"auths": {"r.example.com": {"auth": "notbase64-secretpart"}}}`), 0o600)
	_, err := New(Options{AuthFile: file})
	if err == nil || !strings.Contains(err.Error(), file) || strings.Contains(err.Error(), "secretpart") {
		t.Errorf("error should name the file and not the content: %v", err)
	}
	if _, err := New(Options{AuthFile: filepath.Join(dir, "missing.json")}); err == nil {
		t.Error("missing auth file accepted")
	}
}

func TestInsecureReference(t *testing.T) {
	c, err := New(Options{Insecure: []string{"registry.lab.example:5000"}, AuthFile: writeEmpty(t)})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Reference("registry.lab.example:5000/a/b:1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Context().Scheme() != "http" {
		t.Errorf("insecure registry scheme %q, want http", r.Context().Scheme())
	}
	r, _ = c.Reference("quay.io/a/b:1")
	if r.Context().Scheme() != "https" {
		t.Errorf("secure registry scheme %q", r.Context().Scheme())
	}
}

func mustRepo(t *testing.T, s string) name.Repository {
	r, err := name.NewRepository(s)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func writeEmpty(t *testing.T) string {
	f := filepath.Join(t.TempDir(), "auth.json")
	os.WriteFile(f, []byte(`{"auths":{}}`), 0o600)
	return f
}
