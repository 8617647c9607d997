package testenv

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// GitSSHServer serves a GitServer's repositories over SSH: an in-process
// golang.org/x/crypto/ssh server on 127.0.0.1 that runs the real
// git-upload-pack and git-receive-pack for each exec request, the way
// OpenSSH with git-shell does. Host and client keys are generated per
// server (ed25519), so no test depends on checked-in keys.
type GitSSHServer struct {
	// Addr is "127.0.0.1:PORT".
	Addr string
	// KnownHosts is a known_hosts line for the server's host key.
	KnownHosts []byte
	// ClientKey is the PEM private key the server accepts (user "git").
	ClientKey []byte

	root string
	git  string
	mu   sync.Mutex
	cmds []string
}

// StartSSH starts an SSH front for s's repositories for the duration of the
// test.
func (s *GitServer) StartSSH() *GitSSHServer {
	t := s.t
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	clientKey, clientBlock := NewSSHKey(t)
	authorized := clientKey.PublicKey().Marshal()
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(meta ssh.ConnMetadata, key ssh.PublicKey) (*ssh.Permissions, error) {
			if meta.User() == "git" && bytes.Equal(key.Marshal(), authorized) {
				return nil, nil
			}
			return nil, errors.New("key not authorized")
		},
	}
	cfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &GitSSHServer{
		Addr:       ln.Addr().String(),
		KnownHosts: []byte(knownhosts.Line([]string{knownhosts.Normalize(ln.Addr().String())}, hostKey.PublicKey()) + "\n"),
		ClientKey:  clientBlock,
		root:       s.Root,
		git:        s.git,
	}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				g.serve(conn, cfg, s.env)
			}()
		}
	}()
	return g
}

// NewSSHKey returns a fresh ed25519 signer and its private key in OpenSSH
// PEM form, as ssh-keygen writes it.
func NewSSHKey(t testing.TB) (ssh.Signer, []byte) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	return signer, pem.EncodeToMemory(block)
}

// URL is the ssh:// clone URL of repository name.
func (g *GitSSHServer) URL(name string) string {
	return "ssh://git@" + g.Addr + "/" + name + ".git"
}

// Commands returns the git commands the server ran, in order
// ("git-upload-pack /fleet.git").
func (g *GitSSHServer) Commands() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]string(nil), g.cmds...)
}

func (g *GitSSHServer) serve(conn net.Conn, cfg *ssh.ServerConfig, env []string) {
	defer conn.Close()
	sc, chans, reqs, err := ssh.NewServerConn(conn, cfg)
	if err != nil {
		return // refused key, or a client that refused our host key
	}
	defer sc.Close()
	go ssh.DiscardRequests(reqs)
	// git opens one channel for its one command; whatever its type, it
	// carries an exec request or nothing is run.
	for nc := range chans {
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		go g.run(ch, creqs, env)
	}
}

// run serves the one exec request of a git client on ch.
func (g *GitSSHServer) run(ch ssh.Channel, reqs <-chan *ssh.Request, env []string) {
	defer ch.Close()
	for req := range reqs {
		if req.Type != "exec" {
			req.Reply(false, nil) // env, pty-req: not needed by git
			continue
		}
		var payload struct{ Command string }
		if err := ssh.Unmarshal(req.Payload, &payload); err != nil {
			req.Reply(false, nil)
			return
		}
		cmd, err := g.command(payload.Command, env)
		if err != nil {
			req.Reply(false, nil)
			fmt.Fprintf(ch.Stderr(), "%v\n", err)
			exit(ch, 128)
			return
		}
		req.Reply(true, nil)
		g.mu.Lock()
		g.cmds = append(g.cmds, payload.Command)
		g.mu.Unlock()
		stdin, err := cmd.StdinPipe()
		if err != nil {
			exit(ch, 128)
			return
		}
		cmd.Stdout, cmd.Stderr = ch, ch.Stderr()
		if err := cmd.Start(); err != nil {
			exit(ch, 128)
			return
		}
		// Not waited for: the client closes its side only after the exit
		// status, so waiting for stdin to end would deadlock.
		go func() {
			io.Copy(stdin, ch)
			stdin.Close()
		}()
		code := 0
		if err := cmd.Wait(); err != nil {
			code = 1
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				code = ee.ExitCode()
			}
		}
		exit(ch, code)
		return
	}
}

// command maps "git-upload-pack '/name.git'" onto a repository under root.
func (g *GitSSHServer) command(line string, env []string) (*exec.Cmd, error) {
	verb, arg, _ := strings.Cut(line, " ")
	var sub string
	switch verb {
	case "git-upload-pack":
		sub = "upload-pack"
	case "git-receive-pack":
		sub = "receive-pack"
	default:
		return nil, fmt.Errorf("only git-upload-pack and git-receive-pack are served, not %q", verb)
	}
	arg = strings.Trim(strings.TrimSpace(arg), "'\"")
	clean := path.Clean("/" + arg)
	if strings.Contains(arg, "..") {
		return nil, fmt.Errorf("repository path %q leaves the root", arg)
	}
	cmd := exec.Command(g.git, sub, filepath.Join(g.root, filepath.FromSlash(clean)))
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = dieWithParent()
	return cmd, nil
}

func exit(ch ssh.Channel, code int) {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], uint32(code))
	ch.SendRequest("exit-status", false, b[:])
}
