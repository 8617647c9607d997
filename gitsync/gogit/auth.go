package gogit

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/ferry-gitops/ferry/gitsync"
)

// access is everything a transport call needs besides the URL.
type access struct {
	auth                 transport.AuthMethod
	caBundle             []byte
	clientCert, clientKy []byte
}

// newAccess turns gitsync's Credentials into go-git's auth for url. scratch
// is a directory it may write a short-lived file into (known_hosts has to
// be a file for the parser).
func newAccess(u gitsync.RepoURL, c *gitsync.Credentials, scratch string) (*access, error) {
	if c == nil {
		c = &gitsync.Credentials{}
	}
	a := &access{caBundle: c.CABundle, clientCert: c.ClientCert, clientKy: c.ClientKey}
	switch u.Transport {
	case gitsync.TransportHTTP:
		switch {
		case c.BearerToken != "":
			a.auth = &githttp.TokenAuth{Token: c.BearerToken}
		case c.Username != "" || c.Password != "":
			a.auth = &githttp.BasicAuth{Username: c.Username, Password: c.Password}
		}
	case gitsync.TransportSSH:
		auth, err := sshAuth(u, c, scratch)
		if err != nil {
			return nil, err
		}
		a.auth = auth
	}
	return a, nil
}

// sshAuth is public key auth with the host key checked against
// c.KnownHosts. There is no fallback to accepting unknown hosts.
func sshAuth(u gitsync.RepoURL, c *gitsync.Credentials, scratch string) (transport.AuthMethod, error) {
	if len(c.SSHPrivateKey) == 0 {
		return nil, errors.New("an ssh URL needs a private key (--git-ssh-key, or identity / sshPrivateKey in --git-secret-dir)")
	}
	if len(c.KnownHosts) == 0 {
		return nil, fmt.Errorf("no known_hosts for %s: give --git-known-hosts (or known_hosts in --git-secret-dir) listing the server's host key; unknown hosts are refused", u.Host)
	}
	user := u.User
	if user == "" {
		user = "git"
	}
	keys, err := gitssh.NewPublicKeys(user, c.SSHPrivateKey, c.Password)
	if err != nil {
		// The parser's message names the key type at most, never key bytes.
		return nil, fmt.Errorf("ssh private key: %w", err)
	}
	f, err := os.CreateTemp(scratch, ".known_hosts-*")
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	defer os.Remove(f.Name())
	_, err = f.Write(c.KnownHosts)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	db, err := gitssh.NewKnownHostsDb(f.Name()) // parsed now; the file may go
	if err != nil {
		return nil, fmt.Errorf("known_hosts: %w", err)
	}
	check := db.HostKeyCallback()
	keys.HostKeyCallback = func(hostname string, remote net.Addr, key ssh.PublicKey) error {
		err := check(hostname, remote, key)
		var ke *knownhosts.KeyError
		if errors.As(err, &ke) {
			if len(ke.Want) == 0 {
				return fmt.Errorf("%w: %s offered %s %s", gitsync.ErrUnknownHost, hostname, key.Type(), ssh.FingerprintSHA256(key))
			}
			return fmt.Errorf("%w: %s offered %s %s", gitsync.ErrHostKeyMismatch, hostname, key.Type(), ssh.FingerprintSHA256(key))
		}
		return err
	}
	// Offer only the key types known_hosts has for this host, or a server
	// with several host keys may present one the file does not list.
	keys.HostKeyAlgorithms = db.HostKeyAlgorithms(hostWithPort(u.Host))
	return keys, nil
}

// hostWithPort is how go-git dials and known_hosts matches: host:port,
// port 22 by default.
func hostWithPort(host string) string {
	if h, p, err := net.SplitHostPort(host); err == nil {
		if _, err := strconv.Atoi(p); err == nil {
			return net.JoinHostPort(h, p)
		}
	}
	return net.JoinHostPort(host, "22")
}

// scratchDir is where newAccess may write: next to the clone.
func scratchDir(dir string) string { return filepath.Dir(dir) }
