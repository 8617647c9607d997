package gitsync

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRedact(t *testing.T) {
	for _, tc := range []struct{ name, in, want string }{
		{"user and password", "https://alice:s3cret@git.example.com/fleet.git", "https://***@git.example.com/fleet.git"},
		{"token as user", "https://ghp_abc123@github.com/o/r", "https://***@github.com/o/r"},
		{"password with an unencoded @", "clone https://bob:p@ss@host/r.git failed", "clone https://***@host/r.git failed"},
		{"two URLs in one message", "from http://a:b@x/r to https://c:d@y/s", "from http://***@x/r to https://***@y/s"},
		{"ssh user alone is kept", "ssh://git@host:2222/r.git", "ssh://git@host:2222/r.git"},
		{"ssh with a password", "ssh://git:pw@host/r.git", "ssh://***@host/r.git"},
		{"no user info", "https://host/r.git", "https://host/r.git"},
		{"an e-mail address is not a URL", "mail ferry@localhost", "mail ferry@localhost"},
		{"percent-encoded password", "https://u:p%40ss@h/r", "https://***@h/r"},
		{"quoted by net/url", `Get "https://u:pw@h/r/info/refs": EOF`, `Get "https://***@h/r/info/refs": EOF`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Redact(tc.in); got != tc.want {
				t.Errorf("Redact(%q) = %q, want %q", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseRepoURL(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    RepoURL
		wantErr string
	}{
		{in: "https://alice:s3cret@git.example.com/fleet.git", want: RepoURL{Clean: "https://git.example.com/fleet.git", Transport: TransportHTTP, Host: "git.example.com", User: "alice", Password: "s3cret"}},
		{in: "https://u:p%40ss@h:8443/r", want: RepoURL{Clean: "https://h:8443/r", Transport: TransportHTTP, Host: "h:8443", User: "u", Password: "p@ss"}},
		{in: "http://127.0.0.1:3000/r.git", want: RepoURL{Clean: "http://127.0.0.1:3000/r.git", Transport: TransportHTTP, Host: "127.0.0.1:3000"}},
		{in: "ssh://git@host:2222/org/r.git", want: RepoURL{Clean: "ssh://git@host:2222/org/r.git", Transport: TransportSSH, Host: "host:2222", User: "git"}},
		{in: "git@github.com:org/fleet.git", want: RepoURL{Clean: "git@github.com:org/fleet.git", Transport: TransportSSH, Host: "github.com", User: "git"}},
		{in: "/srv/git/fleet.git", want: RepoURL{Clean: "/srv/git/fleet.git", Transport: TransportFile}},
		{in: "file:///srv/git/fleet.git", want: RepoURL{Clean: "file:///srv/git/fleet.git", Transport: TransportFile}},
		{in: "./fleet", want: RepoURL{Clean: "./fleet", Transport: TransportFile}},
		{in: "ftp://u:pw@host/r", wantErr: `repository URL ftp://***@host/r: scheme "ftp" is not supported`},
		{in: "https://u:pw@/r", wantErr: "repository URL https://***@/r: no host"},
		{in: "", wantErr: "repository URL is empty"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseRepoURL(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.HasPrefix(err.Error(), tc.wantErr) || strings.Contains(err.Error(), "pw") {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParseRepoURL(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestCacheKey(t *testing.T) {
	a, _ := ParseRepoURL("https://alice:one@git.example.com/fleet.git")
	b, _ := ParseRepoURL("https://bob:two@git.example.com/fleet.git")
	if CacheKey(a, "main") != CacheKey(b, "main") {
		t.Error("credentials change the cache key")
	}
	if CacheKey(a, "main") == CacheKey(a, "prod") {
		t.Error("the branch does not change the cache key")
	}
	if k := CacheKey(a, "main"); !strings.HasPrefix(k, "git.example.com_fleet.git-main-") || strings.ContainsAny(k, "/:@") {
		t.Errorf("CacheKey = %q", k)
	}
}

func TestErrorIsScrubbed(t *testing.T) {
	c := &Credentials{Password: "hunter22", BearerToken: "tok-en-value"}
	cause := errors.New(`server said: bad password "hunter22" for https://u:hunter22@h/r (token tok-en-value)`)
	err := wrapErr("fetch", "https://u:hunter22@h/r", c, cause)
	if s := err.Error(); strings.Contains(s, "hunter22") || strings.Contains(s, "tok-en-value") {
		t.Errorf("Error() = %q", s)
	}
	if !errors.Is(err, cause) {
		t.Error("the cause is not reachable with errors.Is")
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "creds", c, "value", *c)
	for _, verb := range []string{"%v", "%+v", "%#v", "%s"} {
		for _, v := range []any{c, *c, []*Credentials{c}} {
			if s := fmt.Sprintf(verb, v) + logged.String(); strings.Contains(s, "hunter22") || strings.Contains(s, "tok-en-value") {
				t.Errorf("Sprintf(%s, %T) = %q", verb, v, s)
			}
		}
	}
}
