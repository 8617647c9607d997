package gitsync

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestLoadCredentials(t *testing.T) {
	flags := writeFiles(t, map[string]string{"password": "from-flag-file\n", "id": "KEY-FROM-FLAG", "hosts": "host ssh-ed25519 AAAA\n", "ca.pem": "CA-FROM-FLAG"})
	argo := writeFiles(t, map[string]string{
		"url": "https://git.example.com/fleet.git", "type": "git", "project": "default",
		"username": "argo-user", "password": "argo-pass", "sshPrivateKey": "ARGO-KEY",
		"tlsClientCertData": "CERT", "tlsClientCertKey": "CERTKEY",
	})
	flux := writeFiles(t, map[string]string{
		"username": "flux-user\n", "password": "flux-pass\n", "bearerToken": "flux-token",
		"identity": "FLUX-KEY", "identity.pub": "pub", "known_hosts": "host ssh-ed25519 BBBB", "ca.crt": "FLUX-CA",
	})
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		name    string
		url     string
		src     CredentialSources
		want    Credentials
		wantErr string
	}{
		{
			name: "URL user info alone",
			url:  "https://alice:s3cret@git.example.com/fleet.git",
			want: Credentials{Username: "alice", Password: "s3cret"},
		},
		{
			name: "user in the URL, password from the flag's file",
			url:  "https://alice@git.example.com/fleet.git",
			src:  CredentialSources{Username: "ignored", PasswordFile: filepath.Join(flags, "password"), CAFile: filepath.Join(flags, "ca.pem")},
			want: Credentials{Username: "alice", Password: "from-flag-file", CABundle: []byte("CA-FROM-FLAG")},
		},
		{
			name: "flags, then environment, then Argo CD Secret",
			url:  "https://git.example.com/fleet.git/",
			src: CredentialSources{
				Username: "flag-user", SecretDir: argo,
				Getenv: env(map[string]string{"FERRY_GIT_PASSWORD": "env-pass", "FERRY_GIT_USERNAME": "env-user"}),
			},
			want: Credentials{Username: "flag-user", Password: "env-pass", SSHPrivateKey: []byte("ARGO-KEY"), ClientCert: []byte("CERT"), ClientKey: []byte("CERTKEY")},
		},
		{
			name: "Flux Secret from the environment's directory",
			url:  "https://git.example.com/fleet.git",
			src:  CredentialSources{Getenv: env(map[string]string{"FERRY_GIT_SECRET_DIR": flux})},
			want: Credentials{Username: "flux-user", Password: "flux-pass", BearerToken: "flux-token", SSHPrivateKey: []byte("FLUX-KEY"), KnownHosts: []byte("host ssh-ed25519 BBBB\n"), CABundle: []byte("FLUX-CA\n")},
		},
		{
			name: "SSH: key and known_hosts from flags, the URL user stays in the URL",
			url:  "git@github.com:org/fleet.git",
			src:  CredentialSources{SSHKeyFile: filepath.Join(flags, "id"), KnownHostsFile: filepath.Join(flags, "hosts")},
			want: Credentials{SSHPrivateKey: []byte("KEY-FROM-FLAG"), KnownHosts: []byte("host ssh-ed25519 AAAA\n")},
		},
		{
			name: "SSH: known_hosts from HOME when nothing else gives one",
			url:  "ssh://git@github.com/org/fleet.git",
			src: CredentialSources{SSHKeyFile: filepath.Join(flags, "id"), Getenv: env(map[string]string{
				"HOME": func() string {
					home := t.TempDir()
					os.MkdirAll(filepath.Join(home, ".ssh"), 0o700)
					os.WriteFile(filepath.Join(home, ".ssh", "known_hosts"), []byte("github.com ssh-ed25519 CCCC\n"), 0o600)
					return home
				}(),
			})},
			want: Credentials{SSHPrivateKey: []byte("KEY-FROM-FLAG"), KnownHosts: []byte("github.com ssh-ed25519 CCCC\n")},
		},
		{
			name:    "an Argo CD Secret for another repository is refused",
			url:     "https://git.example.com/other.git",
			src:     CredentialSources{SecretDir: argo},
			wantErr: "the Secret is for https://git.example.com/fleet.git, not https://git.example.com/other.git",
		},
		{
			name:    "insecure is refused",
			url:     "https://git.example.com/fleet.git",
			src:     CredentialSources{SecretDir: writeFiles(t, map[string]string{"insecure": "true"})},
			wantErr: "insecure is true",
		},
		{
			name:    "a missing password file names the flag and file",
			url:     "https://u:pw-in-url@git.example.com/fleet.git",
			src:     CredentialSources{SSHKeyFile: "/nonexistent/key"},
			wantErr: "--git-ssh-key /nonexistent/key:",
		},
		{
			name:    "a password in an ssh URL is refused, not printed",
			url:     "ssh://git:pw-in-url@host/r.git",
			wantErr: "repository URL ssh://***@host/r.git: ssh takes no password",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := LoadCredentials(tc.url, tc.src)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "pw-in-url") {
					t.Errorf("error holds the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}
