package pipeline

import (
	"context"
	"strings"
	"testing"

	"github.com/ferry-gitops/ferry/gitsync"
)

// TestRemoteCommitter: the commit message is kept with the spec commit as
// a trailer, and nothing is committed (Publish commits).
func TestRemoteCommitter(t *testing.T) {
	for _, tc := range []struct {
		name, message, want string
	}{
		{"subject and body", "ferry: reconcile community\n\nCatalog/community: update\n", "ferry: reconcile community\n\nCatalog/community: update\n\nFerry-Source-Revision: 0123abcd\n"},
		{"subject only", "ferry: reconcile", "ferry: reconcile\n\nFerry-Source-Revision: 0123abcd\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &RemoteCommitter{Revision: "0123abcd"}
			if c.Message() != "" {
				t.Fatal("a message before any commit")
			}
			got, err := c.Commit(context.Background(), "/clone/rendered", tc.message)
			if err != nil {
				t.Fatal(err)
			}
			if got.Hash != "" || len(got.Files) != 0 || got.Skipped != "" {
				t.Errorf("Commit reported %+v; it commits nothing", got)
			}
			if c.Message() != tc.want {
				t.Errorf("message %q, want %q", c.Message(), tc.want)
			}
			trailers := gitsync.ParseTrailers(c.Message())
			if len(trailers) != 1 || trailers[0].Key != gitsync.SourceRevisionTrailer || trailers[0].Value != "0123abcd" {
				t.Errorf("trailers %+v", trailers)
			}
		})
	}
}

// TestOpenRepoUsage: settings the user must fix are usage errors, and
// never echo a password.
func TestOpenRepoUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		rs   RepoSettings
	}{
		{"no cache directory", RepoSettings{URL: "https://git.example.com/fleet.git"}},
		{"bad URL", RepoSettings{URL: "ftp://ferry:s3cret-pass@git.example.com/fleet.git", CacheDir: t.TempDir()}},
		{"path outside", RepoSettings{URL: "https://ferry:s3cret-pass@git.example.com/fleet.git", Path: "../up", CacheDir: t.TempDir()}},
		{"branch", RepoSettings{URL: "https://git.example.com/fleet.git", Branch: "a..b", CacheDir: t.TempDir()}},
		{"missing password file", RepoSettings{URL: "https://git.example.com/fleet.git", CacheDir: t.TempDir(), Credentials: gitsync.CredentialSources{PasswordFile: "/nonexistent/pw"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo, err := OpenRepo(context.Background(), tc.rs)
			if err == nil {
				repo.Close()
				t.Fatal("opened")
			}
			if _, ok := err.(*UsageError); !ok {
				t.Errorf("%T %v, want a *UsageError", err, err)
			}
			if strings.Contains(err.Error(), "s3cret-pass") {
				t.Errorf("the password is in %q", err)
			}
		})
	}
}
