package gitsync

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Credentials authenticate to the config repository and verify its server.
// They live in memory only: gitsync never writes them to the cache, a
// commit or a message, and String, GoString and LogValue print only which
// fields are set.
type Credentials struct {
	// Username and Password are HTTP basic auth; the password may be a
	// token (GitHub, GitLab and Gitea accept a token as the password). For
	// SSH, Password unlocks an encrypted private key, as Flux reads it.
	Username, Password string
	// BearerToken is sent as "Authorization: Bearer" over HTTP instead of
	// basic auth (Flux's bearerToken key, Bitbucket and Azure DevOps).
	BearerToken string
	// SSHPrivateKey is a PEM or OpenSSH private key for SSH URLs.
	SSHPrivateKey []byte
	// KnownHosts is known_hosts content. SSH refuses any host whose key is
	// not listed; there is no way to turn the check off.
	KnownHosts []byte
	// CABundle holds PEM certificates trusted for HTTPS in addition to the
	// system roots.
	CABundle []byte
	// ClientCert and ClientKey are a PEM certificate and key for HTTPS
	// servers that require mutual TLS.
	ClientCert, ClientKey []byte
}

// Empty reports whether no field is set.
func (c *Credentials) Empty() bool {
	return c == nil || c.Username == "" && c.Password == "" && c.BearerToken == "" &&
		len(c.SSHPrivateKey) == 0 && len(c.KnownHosts) == 0 && len(c.CABundle) == 0 &&
		len(c.ClientCert) == 0 && len(c.ClientKey) == 0
}

// String names the fields that are set, never their values, so printing
// Credentials (or a pointer to them) with any verb is safe.
func (c Credentials) String() string {
	var set []string
	for _, f := range []struct {
		name string
		on   bool
	}{
		{"username=" + c.Username, c.Username != ""},
		{"password", c.Password != ""},
		{"bearerToken", c.BearerToken != ""},
		{"sshPrivateKey", len(c.SSHPrivateKey) > 0},
		{"knownHosts", len(c.KnownHosts) > 0},
		{"caBundle", len(c.CABundle) > 0},
		{"clientCert", len(c.ClientCert) > 0},
		{"clientKey", len(c.ClientKey) > 0},
	} {
		if f.on {
			set = append(set, f.name)
		}
	}
	return "Credentials{" + strings.Join(set, " ") + "}"
}

// GoString is String, for %#v.
func (c Credentials) GoString() string { return c.String() }

// LogValue is String, for log/slog.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.String()) }

// secrets lists the values a message must never contain.
func (c *Credentials) secrets() []string {
	if c == nil {
		return nil
	}
	var s []string
	for _, v := range []string{c.Password, c.BearerToken, string(c.SSHPrivateKey), string(c.ClientKey)} {
		// Very short values would blank out ordinary words; they are also
		// not worth guessing.
		if len(v) >= 4 {
			s = append(s, v)
		}
	}
	return s
}

// scrub is Redact plus the removal of every secret value, for text that
// came from a library or a server and may quote what it was given.
func (c *Credentials) scrub(s string) string {
	s = Redact(s)
	for _, v := range c.secrets() {
		s = strings.ReplaceAll(s, v, redacted)
	}
	return s
}

// CredentialSources are the places credentials come from besides the URL:
// the CLI fills the fields from its flags, the daemon from its flags and
// the Secret it mounts.
type CredentialSources struct {
	// Username is --git-username.
	Username string
	// PasswordFile is --git-password-file: a file holding a password or a
	// token (one trailing newline is dropped).
	PasswordFile string
	// SSHKeyFile is --git-ssh-key: a private key file.
	SSHKeyFile string
	// KnownHostsFile is --git-known-hosts.
	KnownHostsFile string
	// CAFile is --git-ca-file: PEM certificates for HTTPS.
	CAFile string
	// SecretDir is --git-secret-dir: a mounted Kubernetes Secret in the
	// shape Argo CD or Flux uses for repository credentials (see
	// SecretDirKeys).
	SecretDir string
	// Getenv reads the environment (os.Getenv); nil ignores it. The FERRY_GIT_*
	// variables in EnvVars fill the fields above that are empty.
	Getenv func(string) string
}

// EnvVars maps each environment variable LoadCredentials reads to what it
// holds. FERRY_GIT_PASSWORD and FERRY_GIT_BEARER_TOKEN hold values (what a
// Deployment gets from a Secret with valueFrom.secretKeyRef); the others
// hold file paths.
var EnvVars = map[string]string{
	"FERRY_GIT_USERNAME":      "user name",
	"FERRY_GIT_PASSWORD":      "password or token",
	"FERRY_GIT_PASSWORD_FILE": "file holding the password or token",
	"FERRY_GIT_BEARER_TOKEN":  "bearer token",
	"FERRY_GIT_SSH_KEY":       "private key file",
	"FERRY_GIT_KNOWN_HOSTS":   "known_hosts file",
	"FERRY_GIT_CA_FILE":       "CA bundle file",
	"FERRY_GIT_SECRET_DIR":    "mounted Secret directory",
}

// SecretDirKeys maps the file names LoadCredentials reads in a Secret
// directory to the Credentials field they fill. Argo CD's repository
// Secrets and Flux's GitRepository secretRef use different names for the
// same things; both are read. Other files in the directory are ignored.
var SecretDirKeys = map[string]string{
	"username":          "Username",      // Argo CD, Flux
	"password":          "Password",      // Argo CD, Flux (for SSH: the key's passphrase)
	"bearerToken":       "BearerToken",   // Flux, Argo CD
	"identity":          "SSHPrivateKey", // Flux
	"sshPrivateKey":     "SSHPrivateKey", // Argo CD
	"known_hosts":       "KnownHosts",    // Flux
	"ssh_known_hosts":   "KnownHosts",    // Argo CD's argocd-ssh-known-hosts-cm
	"ca.crt":            "CABundle",      // Flux
	"caFile":            "CABundle",      // Flux, before ca.crt
	"tls.crt":           "ClientCert",    // Flux
	"tlsClientCertData": "ClientCert",    // Argo CD
	"tls.key":           "ClientKey",     // Flux
	"tlsClientCertKey":  "ClientKey",     // Argo CD
}

// LoadCredentials gathers the credentials for rawURL. Each field takes the
// first value found, in this order: the URL's user info (git's own rule:
// what the user typed in the URL wins), the CredentialSources fields (the
// CLI's flags), the FERRY_GIT_* environment, the Secret directory. A user
// name in the URL with a password from a file is therefore one credential,
// as git does when its credential store supplies the password.
//
// For an SSH URL with no known_hosts from any source, and the environment
// given, $HOME/.ssh/known_hosts is read, as ssh does. The private key is
// never guessed: SSH needs --git-ssh-key or an identity in the Secret.
//
// A Secret directory with a url key (Argo CD) must name the same repository
// as rawURL, so credentials meant for one server are never sent to another;
// one with insecure set to true is refused, because Ferry always verifies
// TLS certificates and SSH host keys.
func LoadCredentials(rawURL string, src CredentialSources) (*Credentials, error) {
	u, err := ParseRepoURL(rawURL)
	if err != nil {
		return nil, err
	}
	if src.Getenv != nil {
		env := func(field *string, name string) {
			if *field == "" {
				*field = src.Getenv(name)
			}
		}
		env(&src.Username, "FERRY_GIT_USERNAME")
		env(&src.PasswordFile, "FERRY_GIT_PASSWORD_FILE")
		env(&src.SSHKeyFile, "FERRY_GIT_SSH_KEY")
		env(&src.KnownHostsFile, "FERRY_GIT_KNOWN_HOSTS")
		env(&src.CAFile, "FERRY_GIT_CA_FILE")
		env(&src.SecretDir, "FERRY_GIT_SECRET_DIR")
	}
	c := &Credentials{Username: u.User, Password: u.Password}
	if u.Transport == TransportSSH {
		// The SSH user name stays in the URL; a password there is not
		// something ssh accepts.
		c.Username = ""
		if u.Password != "" {
			return nil, fmt.Errorf("repository URL %s: ssh takes no password in the URL; use a private key (--git-ssh-key)", Redact(rawURL))
		}
	}
	str := func(field *string, v string) {
		if *field == "" {
			*field = v
		}
	}
	bytes := func(field *[]byte, v []byte) {
		if len(*field) == 0 {
			*field = v
		}
	}
	str(&c.Username, src.Username)
	var errs []error
	file := func(flag, path string) []byte {
		if path == "" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s %s: %w", flag, path, err))
		}
		return b
	}
	str(&c.Password, trimNewline(file("--git-password-file", src.PasswordFile)))
	bytes(&c.SSHPrivateKey, file("--git-ssh-key", src.SSHKeyFile))
	bytes(&c.KnownHosts, file("--git-known-hosts", src.KnownHostsFile))
	bytes(&c.CABundle, file("--git-ca-file", src.CAFile))
	if src.Getenv != nil {
		str(&c.Password, src.Getenv("FERRY_GIT_PASSWORD"))
		str(&c.BearerToken, src.Getenv("FERRY_GIT_BEARER_TOKEN"))
	}
	if src.SecretDir != "" {
		s, err := readSecretDir(src.SecretDir, u)
		if err != nil {
			errs = append(errs, err)
		} else {
			str(&c.Username, s.Username)
			str(&c.Password, s.Password)
			str(&c.BearerToken, s.BearerToken)
			bytes(&c.SSHPrivateKey, s.SSHPrivateKey)
			bytes(&c.KnownHosts, s.KnownHosts)
			bytes(&c.CABundle, s.CABundle)
			bytes(&c.ClientCert, s.ClientCert)
			bytes(&c.ClientKey, s.ClientKey)
		}
	}
	if u.Transport == TransportSSH && len(c.KnownHosts) == 0 && src.Getenv != nil {
		// What ssh reads when nothing else is given.
		if home := src.Getenv("HOME"); home != "" {
			b, err := os.ReadFile(filepath.Join(home, ".ssh", "known_hosts"))
			if err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("known_hosts: %w", err))
			}
			c.KnownHosts = b
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if (len(c.ClientCert) == 0) != (len(c.ClientKey) == 0) {
		return nil, fmt.Errorf("git credentials: a TLS client certificate needs its key and the other way round")
	}
	return c, nil
}

// readSecretDir reads the files of SecretDirKeys in dir.
func readSecretDir(dir string, u RepoURL) (*Credentials, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("--git-secret-dir: %w", err)
	}
	if !info.IsDir() {
		return nil, fmt.Errorf("--git-secret-dir %s: not a directory", dir)
	}
	read := func(name string) ([]byte, error) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("--git-secret-dir: %w", err)
		}
		return b, nil
	}
	var errs []error
	if b, err := read("insecure"); err != nil {
		errs = append(errs, err)
	} else if strings.EqualFold(trimNewline(b), "true") {
		errs = append(errs, fmt.Errorf("%s: insecure is true: Ferry always verifies TLS certificates and SSH host keys; give the CA (ca.crt) or known_hosts instead", filepath.Join(dir, "insecure")))
	}
	if b, err := read("url"); err != nil {
		errs = append(errs, err)
	} else if want := trimNewline(b); want != "" {
		w, err := ParseRepoURL(want)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", filepath.Join(dir, "url"), err))
		} else if !sameRepo(w.Clean, u.Clean) {
			errs = append(errs, fmt.Errorf("%s: the Secret is for %s, not %s; refusing to send its credentials elsewhere", filepath.Join(dir, "url"), Redact(w.Clean), Redact(u.Clean)))
		}
	}
	c := &Credentials{}
	fields := map[string]func([]byte){
		"Username":      func(b []byte) { c.Username = first(c.Username, trimNewline(b)) },
		"Password":      func(b []byte) { c.Password = first(c.Password, trimNewline(b)) },
		"BearerToken":   func(b []byte) { c.BearerToken = first(c.BearerToken, trimNewline(b)) },
		"SSHPrivateKey": func(b []byte) { c.SSHPrivateKey = firstBytes(c.SSHPrivateKey, b) },
		"KnownHosts":    func(b []byte) { c.KnownHosts = append(c.KnownHosts, withNewline(b)...) },
		"CABundle":      func(b []byte) { c.CABundle = append(c.CABundle, withNewline(b)...) },
		"ClientCert":    func(b []byte) { c.ClientCert = firstBytes(c.ClientCert, b) },
		"ClientKey":     func(b []byte) { c.ClientKey = firstBytes(c.ClientKey, b) },
	}
	for _, name := range slices.Sorted(maps.Keys(SecretDirKeys)) {
		b, err := read(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if len(b) > 0 {
			fields[SecretDirKeys[name]](b)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// sameRepo compares two clean URLs the way a user means them: a trailing
// slash or ".git" does not make another repository.
func sameRepo(a, b string) bool {
	norm := func(s string) string {
		s = strings.TrimSuffix(s, "/")
		s = strings.TrimSuffix(s, ".git")
		return strings.ToLower(s)
	}
	return norm(a) == norm(b)
}

func trimNewline(b []byte) string {
	s := string(b)
	s = strings.TrimSuffix(s, "\n")
	return strings.TrimSuffix(s, "\r")
}

func withNewline(b []byte) []byte {
	if len(b) > 0 && b[len(b)-1] != '\n' {
		return append(b, '\n')
	}
	return b
}

func first(have, v string) string {
	if have != "" {
		return have
	}
	return v
}

func firstBytes(have, v []byte) []byte {
	if len(have) > 0 {
		return have
	}
	return v
}
