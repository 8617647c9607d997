package main

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ferry-gitops/ferry/internal/daemon/webhook"
)

// gitServer is real git (git http-backend, the smart HTTP protocol git
// hosting speaks) behind net/http/cgi with basic auth, on 127.0.0.1: what
// internal/testenv starts for the tests, without a testing.T.
type gitServer struct {
	url, user, password string
	root                string
	requests            atomic.Int64
}

func startGitServer(gitBin, root string) (*gitServer, error) {
	s := &gitServer{user: "demo", password: rand.Text(), root: root}
	home, err := os.MkdirTemp("", "ferry-demo-git-home-")
	if err != nil {
		return nil, err
	}
	env := []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "HOME=" + home, "GIT_CONFIG_NOSYSTEM=1",
		// http-backend accepts pushes only from an authenticated user.
		"REMOTE_USER=" + s.user}
	backend := &cgi.Handler{Path: gitBin, Args: []string{"http-backend"}, Dir: root, Env: env, Stderr: io.Discard,
		Logger: log.New(io.Discard, "", 0)}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s.url = "http://" + l.Addr().String()
	go http.Serve(l, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		u, p, ok := r.BasicAuth()
		if !ok || subtle.ConstantTimeCompare([]byte(u+":"+p), []byte(s.user+":"+s.password)) != 1 {
			w.Header().Set("WWW-Authenticate", `Basic realm="ferry-demo"`)
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		backend.ServeHTTP(w, r)
	}))
	return s, nil
}

// gitDemo serves the config repo from an embedded git server and runs
// `ferry run --repo` on it: a change is pushed, a signed webhook says so,
// and Ferry converges and pushes its render commit back.
func gitDemo(ferry, repo, spec string, reg *counting, git func(args ...string) string) error {
	step("ferry run --repo   (the GitOps loop: the config repo on an embedded git server, git http-backend with basic auth)")
	gitBin, _ := exec.LookPath("git")
	tmp, err := os.MkdirTemp("", "ferry-demo-gitops-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	root := filepath.Join(tmp, "repos")
	bare := filepath.Join(root, "fleet.git")
	git("clone", "-q", "--bare", repo, bare)
	srv, err := startGitServer(gitBin, root)
	if err != nil {
		return err
	}
	url := srv.url + "/fleet.git"
	secrets := filepath.Join(tmp, "secrets")
	os.MkdirAll(secrets, 0o700)
	hookSecret := []byte(rand.Text())
	for name, value := range map[string]string{"password": srv.password, "webhook": string(hookSecret)} {
		if err := os.WriteFile(filepath.Join(secrets, name), []byte(value), 0o600); err != nil {
			return err
		}
	}
	hookAddr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{"run", "--repo", url, "--git-username", srv.user, "--git-password-file", filepath.Join(secrets, "password"),
		"--git-author", "Ferry <ferry@demo.example>", "--cache-dir", filepath.Join(tmp, "cache"),
		"--interval", "1s", "--catalog-interval", "0", "--webhook-addr", hookAddr, "--webhook-secret-file", filepath.Join(secrets, "webhook"),
		"--health-addr", "", "--metrics-addr", ""}
	fmt.Printf("$ ferry %s\n", strings.Join(args, " "))
	cmd := exec.Command(ferry, args...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
	if err := cmd.Start(); err != nil {
		return err
	}
	defer cmd.Process.Kill()
	bareGit := func(args ...string) string { return git(append([]string{"--git-dir", bare}, args...)...) }
	tip := func() string { return strings.TrimSpace(bareGit("rev-parse", "main")) }
	status := func() string {
		out, _ := exec.Command(ferry, "status", "--repo", url, "--cache-dir", filepath.Join(tmp, "cache"), "-o", "json").Output()
		return string(out)
	}
	if err := waitFor(time.Minute, func() bool { return strings.Contains(status(), `"lastAppliedRevision"`) }); err != nil {
		return fmt.Errorf("ferry run --repo did not finish its first reconcile: %w", err)
	}
	fmt.Println("\n(first reconcile done: the repository's render was already current, so nothing was pushed)")

	// Someone changes the spec and pushes; the git host's webhook tells Ferry.
	work := filepath.Join(tmp, "work")
	git("clone", "-q", bare, work)
	edited := strings.Replace(spec, "      minVersion: 4.0.0\n", "      minVersion: 4.2.0\n", 1)
	if err := os.WriteFile(filepath.Join(work, "catalog.yaml"), []byte(edited), 0o644); err != nil {
		return err
	}
	git("-C", work, "commit", "-q", "-am", "koku-metrics-operator: from 4.2.0")
	git("-C", work, "push", "-q", "origin", "main")
	pushed := tip()
	fmt.Printf("\n(git push: koku-metrics-operator from 4.2.0, commit %s; then the push webhook, signed with the shared secret)\n", pushed[:12])
	body := []byte(`{"ref":"refs/heads/main","after":"` + pushed + `"}`)
	req, _ := http.NewRequest(http.MethodPost, "http://"+hookAddr+"/hook", bytes.NewReader(body))
	req.Header.Set("X-GitHub-Event", "push")
	req.Header.Set("X-Hub-Signature-256", webhook.Sign(hookSecret, body))
	sent := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	w0 := reg.writes.Load()
	if err := waitFor(2*time.Minute, func() bool { return tip() != pushed }); err != nil {
		return fmt.Errorf("ferry run --repo did not push its render: %w", err)
	}
	fmt.Printf("(webhook %s; Ferry's render commit on the server %s later; mirror registry: %d writes, the new catalog image: the wider range's images were mirrored by the earlier runs)\n",
		resp.Status, time.Since(sent).Round(time.Millisecond), reg.writes.Load()-w0)

	step("git log on the server   (Ferry's commit on top of the push, with the spec commit as a trailer)")
	for _, l := range strings.Split(bareGit("log", "-2", "--format=%h %an <%ae>: %s%n%(trailers:key=Ferry-Source-Revision)"), "\n") {
		if strings.TrimSpace(l) != "" {
			fmt.Println(l)
		}
	}
	step("git show --stat   (Ferry commits the render directory and nothing else)")
	fmt.Print(bareGit("show", "--stat", "--format=%h %s", "main"))

	r0, w0, g0 := reg.reads.Load(), reg.writes.Load(), srv.requests.Load()
	time.Sleep(3 * time.Second)
	fmt.Printf("\n(3 s idle, polling every second: %d git requests, one ref listing per poll; mirror registry: %d reads, %d writes; the daemon ignores its own commit)\n",
		srv.requests.Load()-g0, reg.reads.Load()-r0, reg.writes.Load()-w0)
	step("ferry status --repo")
	st := exec.Command(ferry, "status", "--repo", url, "--cache-dir", filepath.Join(tmp, "cache"))
	st.Stdout, st.Stderr = os.Stdout, os.Stdout
	st.Run()
	step("SIGTERM")
	cmd.Process.Signal(syscall.SIGTERM)
	return cmd.Wait()
}

// freeAddr is a free 127.0.0.1 port for a listener of the ferry process.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}
