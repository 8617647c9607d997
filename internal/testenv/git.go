package testenv

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"encoding/pem"
	"fmt"
	"log"
	"net/http"
	"net/http/cgi"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// GitOptions configures StartGitServer.
type GitOptions struct {
	// NoAuth serves repositories without basic auth. The default is auth on,
	// because a GitOps source that needs no credentials is the exception.
	NoAuth bool
	// TLS serves https with a certificate of its own CA (GitServer.CACert),
	// which no system trust store holds.
	TLS bool
	// BearerToken also accepts "Authorization: Bearer GitServer.Token", as
	// Bitbucket and Azure DevOps do for access tokens.
	BearerToken bool
}

// GitRequest is one HTTP request the git server answered.
type GitRequest struct {
	Method string
	// Path is the URL path, e.g. /fleet.git/info/refs; Service is the
	// service query parameter or the last path element:
	// git-upload-pack (fetch, ls-remote) or git-receive-pack (push).
	Path, Service string
	// Status is the HTTP status of the answer.
	Status int
}

// GitServer is real git (git http-backend, the smart HTTP protocol) behind a
// Go net/http/cgi handler on 127.0.0.1, with pushes enabled.
type GitServer struct {
	// URL is the server root, "http://127.0.0.1:PORT"; a repository named
	// NAME is at URL + "/NAME.git".
	URL string
	// Username and Password are the basic-auth credentials (empty with
	// NoAuth). The password is random per server.
	Username, Password string
	// Root is GIT_PROJECT_ROOT, the directory holding the bare repositories.
	Root string
	// Token is the bearer token accepted with GitOptions.BearerToken.
	Token string
	// CACert is the PEM certificate to trust with GitOptions.TLS.
	CACert []byte

	t       testing.TB
	git     string
	env     []string
	logPath string

	mu       sync.Mutex
	requests []GitRequest
}

// StartGitServer starts a git server for the duration of the test. It is
// in-process (only each request runs git), so it starts in milliseconds and
// each test can have its own.
func StartGitServer(t testing.TB, opts GitOptions) *GitServer {
	t.Helper()
	dir := t.TempDir()
	s := &GitServer{
		Root:    filepath.Join(dir, "repos"),
		t:       t,
		git:     Tool(t, "git"),
		logPath: filepath.Join(dir, "git-http-backend.log"),
	}
	home := filepath.Join(dir, "home")
	for _, d := range []string{s.Root, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Keep the developer's ~/.gitconfig and /etc/gitconfig (signing, hooks,
	// default branch) out of both the server and the git commands below.
	s.env = []string{
		"HOME=" + home,
		"GIT_CONFIG_NOSYSTEM=1",
		"GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Ferry Test", "GIT_AUTHOR_EMAIL=test@ferry.invalid",
		"GIT_COMMITTER_NAME=Ferry Test", "GIT_COMMITTER_EMAIL=test@ferry.invalid",
	}
	if !opts.NoAuth {
		s.Username, s.Password = "ferry", rand.Text()
	}
	logFile, err := os.Create(s.logPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { logFile.Close() })
	// Clipped so the per-request append below allocates instead of racing
	// on shared capacity.
	backendEnv := slices.Clip(append([]string{"GIT_PROJECT_ROOT=" + s.Root, "GIT_HTTP_EXPORT_ALL=1"}, s.env...))
	if opts.BearerToken {
		s.Token = rand.Text()
	}
	handler := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w := &statusWriter{ResponseWriter: rw, status: http.StatusOK}
		defer s.record(r, w)
		user, pass, basic := r.BasicAuth()
		authed := basic && equal(user, s.Username) && equal(pass, s.Password)
		if bearer, found := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); found && opts.BearerToken && equal(bearer, s.Token) {
			authed, user = true, "bearer"
		}
		if !opts.NoAuth && !authed {
			w.Header().Set("WWW-Authenticate", `Basic realm="ferry-test"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if user == "" {
			user = "anonymous"
		}
		// http-backend enables receive-pack (push) only for an
		// authenticated REMOTE_USER, and net/http/cgi does not set one.
		h := &cgi.Handler{
			Path:   s.git,
			Args:   []string{"http-backend"},
			Dir:    s.Root,
			Env:    append(backendEnv, "REMOTE_USER="+user),
			Logger: log.New(logFile, "cgi: ", log.LstdFlags),
			Stderr: logFile,
		}
		h.ServeHTTP(w, r)
	})
	srv := httptest.NewUnstartedServer(handler)
	if opts.TLS {
		srv.StartTLS()
		s.CACert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	} else {
		srv.Start()
	}
	s.URL = srv.URL
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("git http-backend log %s, last lines:\n%s", s.logPath, tail(s.logPath, 40))
		}
	})
	return s
}

func (s *GitServer) record(r *http.Request, w *statusWriter) {
	service := r.URL.Query().Get("service")
	if service == "" {
		service = path.Base(r.URL.Path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.requests = append(s.requests, GitRequest{Method: r.Method, Path: r.URL.Path, Service: service, Status: w.status})
}

// Requests returns every request answered so far, in order: tests count
// them to prove what a client did (one ls-remote, no fetch, no push).
func (s *GitServer) Requests() []GitRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

func equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// RepoURL returns the clone URL of repository name.
func (s *GitServer) RepoURL(name string) string {
	return s.URL + "/" + name + ".git"
}

// BareDir returns the on-disk bare repository behind name, so a test can
// check with the git CLI what a push really stored.
func (s *GitServer) BareDir(name string) string {
	return filepath.Join(s.Root, name+".git")
}

// NewRepo creates an empty bare repository whose HEAD is main and returns
// its clone URL. It fails the test that started the server on error.
func (s *GitServer) NewRepo(name string) string {
	s.t.Helper()
	s.mustGit("", "init", "--quiet", "--bare", "--initial-branch=main", s.BareDir(name))
	return s.RepoURL(name)
}

// Seed creates repository name with one commit on main holding files (path
// relative to the repository root -> content) and returns its clone URL.
func (s *GitServer) Seed(name string, files map[string]string) string {
	s.t.Helper()
	url := s.NewRepo(name)
	work := s.t.TempDir()
	s.mustGit(work, "init", "--quiet", "--initial-branch=main")
	for p, content := range files {
		full := filepath.Join(work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	s.mustGit(work, "add", "--all")
	s.mustGit(work, "commit", "--quiet", "--allow-empty", "-m", "seed "+name)
	s.mustGit(work, "push", "--quiet", s.BareDir(name), "main")
	return url
}

// Commit adds one commit on branch of repository name, made and pushed by
// the git CLI as another writer would: files (path -> content) are
// written, paths in remove are deleted. It returns the new commit's hash.
func (s *GitServer) Commit(name, branch, message string, files map[string]string, remove ...string) string {
	s.t.Helper()
	work := s.t.TempDir()
	s.mustGit("", "clone", "--quiet", "--branch", branch, s.BareDir(name), work)
	for p, content := range files {
		full := filepath.Join(work, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			s.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			s.t.Fatal(err)
		}
	}
	for _, p := range remove {
		s.mustGit(work, "rm", "--quiet", "-r", p)
	}
	s.mustGit(work, "add", "--all")
	s.mustGit(work, "commit", "--quiet", "--allow-empty", "-m", message)
	s.mustGit(work, "push", "--quiet", "origin", branch)
	return strings.TrimSpace(s.mustGit(work, "rev-parse", "HEAD"))
}

// Rev returns the commit branch of repository name points to on the
// server, read by the git CLI ("" when the branch does not exist).
func (s *GitServer) Rev(name, branch string) string {
	s.t.Helper()
	out, err := s.Git("", "--git-dir", s.BareDir(name), "rev-parse", "--verify", "--quiet", "refs/heads/"+branch)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// Hook installs an executable hook (e.g. "pre-receive") in repository
// name: a shell script body run by the server's git, to refuse a push or to
// act as another writer in the middle of one.
func (s *GitServer) Hook(name, hook, script string) {
	s.t.Helper()
	p := filepath.Join(s.BareDir(name), "hooks", hook)
	if err := os.WriteFile(p, []byte("#!/bin/sh\n"+script), 0o755); err != nil {
		s.t.Fatal(err)
	}
}

// Auth returns the credentials for go-git's HTTP transport (nil with
// NoAuth, which go-git reads as anonymous).
func (s *GitServer) Auth() *githttp.BasicAuth {
	if s.Username == "" {
		return nil
	}
	return &githttp.BasicAuth{Username: s.Username, Password: s.Password}
}

// Git runs the git CLI in dir with the server's isolated configuration and
// returns its combined output; tests use it as an independent check of what
// go-git did (e.g. Git("", "--git-dir", s.BareDir("x"), "log")).
func (s *GitServer) Git(dir string, args ...string) (string, error) {
	var out bytes.Buffer
	// No test context: Git may be called from a cleanup, after it is
	// cancelled. GIT_TERMINAL_PROMPT=0 keeps it from waiting for input.
	cmd := exec.Command(s.git, args...)
	cmd.Dir = dir
	cmd.SysProcAttr = dieWithParent()
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("git %v: %w\n%s", args, err, out.String())
	}
	return out.String(), err
}

func (s *GitServer) mustGit(dir string, args ...string) string {
	s.t.Helper()
	out, err := s.Git(dir, args...)
	if err != nil {
		s.t.Fatal(err)
	}
	return out
}
