package gogit_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/gitsync/gogit"
	"github.com/ferry-gitops/ferry/internal/testenv"
)

// Each transport and credential kind against real git: clone, commit the
// render, push, and the refusals that must happen before any data moves.

func skipE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("FERRY_SKIP_E2E") != "" {
		t.Skip("FERRY_SKIP_E2E is set")
	}
}

var fleet = map[string]string{"catalog.yaml": "kind: Catalog\n", "rendered/a.yaml": "a\n"}

// roundTrip syncs url with creds, commits a render change and pushes it;
// it returns the pushed commit.
func roundTrip(t *testing.T, url string, creds *gitsync.Credentials) (string, error) {
	t.Helper()
	opts := gitsync.DefaultOptions(url, t.TempDir())
	opts.Credentials = creds
	r, err := gitsync.Open(t.Context(), gogit.New(), opts)
	if err != nil {
		return "", err
	}
	defer r.Close()
	if _, err := r.Sync(t.Context()); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(r.Dir(), "rendered", "a.yaml"), []byte("a2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := r.Publish(t.Context(), "ferry: render", nil)
	if err != nil {
		return "", err
	}
	return res.Commit, nil
}

func TestSSH(t *testing.T) {
	skipE2E(t)
	srv := testenv.StartGitServer(t, testenv.GitOptions{})
	srv.Seed("fleet", fleet)
	ssh := srv.StartSSH()
	url := ssh.URL("fleet")

	t.Run("key and known host: clone and push", func(t *testing.T) {
		pushed, err := roundTrip(t, url, &gitsync.Credentials{SSHPrivateKey: ssh.ClientKey, KnownHosts: ssh.KnownHosts})
		if err != nil {
			t.Fatal(err)
		}
		if got := srv.Rev("fleet", "main"); got != pushed {
			t.Fatalf("server main %s, want the pushed %s", got, pushed)
		}
		cmds := strings.Join(ssh.Commands(), "\n")
		if !strings.Contains(cmds, "git-upload-pack") || !strings.Contains(cmds, "git-receive-pack") {
			t.Errorf("the SSH server ran:\n%s", cmds)
		}
	})

	for _, tc := range []struct {
		name       string
		creds      func() *gitsync.Credentials
		want       error
		wantInText string
	}{
		{
			name: "a host key not in known_hosts is refused",
			creds: func() *gitsync.Credentials {
				// Another server's host key, listed for this server's address.
				line := strings.Fields(string(srv.StartSSH().KnownHosts))
				line[0] = strings.Fields(string(ssh.KnownHosts))[0]
				return &gitsync.Credentials{SSHPrivateKey: ssh.ClientKey, KnownHosts: []byte(strings.Join(line, " ") + "\n")}
			},
			want: gitsync.ErrHostKeyMismatch,
		},
		{
			name: "a host missing from known_hosts is refused",
			creds: func() *gitsync.Credentials {
				other := srv.StartSSH()
				return &gitsync.Credentials{SSHPrivateKey: ssh.ClientKey, KnownHosts: other.KnownHosts}
			},
			want: gitsync.ErrUnknownHost,
		},
		{
			name: "no known_hosts at all is refused before connecting",
			creds: func() *gitsync.Credentials {
				return &gitsync.Credentials{SSHPrivateKey: ssh.ClientKey}
			},
			wantInText: "no known_hosts",
		},
		{
			name: "a key the server does not know is refused",
			creds: func() *gitsync.Credentials {
				_, key := testenv.NewSSHKey(t)
				return &gitsync.Credentials{SSHPrivateKey: key, KnownHosts: ssh.KnownHosts}
			},
			want: gitsync.ErrAuthentication,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(ssh.Commands())
			main := srv.Rev("fleet", "main")
			_, err := roundTrip(t, url, tc.creds())
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantInText) {
				t.Fatalf("err %v, want %v %q", err, tc.want, tc.wantInText)
			}
			if n := len(ssh.Commands()) - before; n != 0 {
				t.Errorf("the server ran %d git commands for a refused client", n)
			}
			if srv.Rev("fleet", "main") != main {
				t.Error("main moved")
			}
		})
	}
}

func TestHTTPS(t *testing.T) {
	skipE2E(t)
	srv := testenv.StartGitServer(t, testenv.GitOptions{TLS: true, BearerToken: true})
	url := srv.Seed("fleet", fleet)
	if !strings.HasPrefix(url, "https://") {
		t.Fatalf("not an https server: %s", url)
	}
	basic := func(c *gitsync.Credentials) *gitsync.Credentials {
		c.Username, c.Password = srv.Username, srv.Password
		return c
	}
	for _, tc := range []struct {
		name       string
		creds      *gitsync.Credentials
		want       error
		wantInText string
	}{
		{name: "basic auth and the server's CA", creds: basic(&gitsync.Credentials{CABundle: srv.CACert})},
		{name: "a bearer token", creds: &gitsync.Credentials{BearerToken: srv.Token, CABundle: srv.CACert}},
		{name: "a CA the system does not trust is not trusted without the bundle", creds: basic(&gitsync.Credentials{}), wantInText: "certificate"},
		{name: "a wrong token", creds: &gitsync.Credentials{BearerToken: "x" + srv.Token, CABundle: srv.CACert}, want: gitsync.ErrAuthentication},
	} {
		t.Run(tc.name, func(t *testing.T) {
			main := srv.Rev("fleet", "main")
			pushed, err := roundTrip(t, url, tc.creds)
			if tc.want == nil && tc.wantInText == "" {
				if err != nil {
					t.Fatal(err)
				}
				if got := srv.Rev("fleet", "main"); got != pushed {
					t.Fatalf("server main %s, want the pushed %s", got, pushed)
				}
				// The next case starts from a render that differs again.
				srv.Commit("fleet", "main", "reset render", map[string]string{"rendered/a.yaml": "a\n"})
				return
			}
			if err == nil || tc.want != nil && !errors.Is(err, tc.want) || !strings.Contains(err.Error(), tc.wantInText) {
				t.Fatalf("err %v, want %v %q", err, tc.want, tc.wantInText)
			}
			for _, secret := range []string{srv.Password, srv.Token} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error holds a secret: %v", err)
				}
			}
			if srv.Rev("fleet", "main") != main {
				t.Error("main moved")
			}
		})
	}
}
