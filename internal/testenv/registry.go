package testenv

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"golang.org/x/crypto/bcrypt"
)

// RegistryOptions configures StartRegistry.
type RegistryOptions struct {
	// Auth puts the registry behind htpasswd basic auth with a random
	// password, so tests can prove credentials are sent (and anonymous
	// access refused) the way a real mirror target requires.
	Auth bool
}

// Registry is a running Debian docker-registry (distribution 2.8) serving
// plain HTTP on 127.0.0.1. Clients treat loopback registries as insecure
// (ggcr does so by default; skopeo needs --tls-verify=false).
type Registry struct {
	// Host is "127.0.0.1:PORT", the registry part of an image reference.
	Host string
	// Username and Password are the basic-auth credentials; both are empty
	// unless RegistryOptions.Auth was set.
	Username, Password string
	// Dir is the storage root, for tests that want to look at what the
	// registry wrote.
	Dir string
	// LogPath is the registry's log, printed (tail) when the test fails.
	LogPath string
}

// StartRegistry starts a registry for the duration of the test. Each call
// is a separate instance with empty storage (startup is well under a second),
// so tests needing a source and a mirror start two.
func StartRegistry(t testing.TB, opts RegistryOptions) *Registry {
	t.Helper()
	r, err := startRegistry(t, t.TempDir(), opts)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func startRegistry(lc lifecycle, dir string, opts RegistryOptions) (*Registry, error) {
	bin, err := toolPath("docker-registry")
	if err != nil {
		return nil, err
	}
	r := &Registry{Dir: filepath.Join(dir, "storage"), LogPath: filepath.Join(dir, "registry.log")}
	authConfig := ""
	if opts.Auth {
		r.Username, r.Password = "ferry", rand.Text()
		// bcrypt at its minimum cost: the registry checks the password on
		// every request, and the default cost would add ~50 ms to each.
		hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), bcrypt.MinCost)
		if err != nil {
			return nil, fmt.Errorf("hash registry password: %w", err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, fmt.Appendf(nil, "%s:%s\n", r.Username, hash), 0o600); err != nil {
			return nil, fmt.Errorf("write htpasswd: %w", err)
		}
		authConfig = fmt.Sprintf("auth:\n  htpasswd:\n    realm: ferry-test\n    path: %s\n", htpasswd)
	}
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		r.Host = "127.0.0.1:" + strconv.Itoa(port)
		config := filepath.Join(dir, "config.yml")
		// The http secret is fixed only to silence the warning about a
		// random one; there is a single instance, so nothing must agree on it.
		content := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: text
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false
http:
  addr: %s
  secret: ferry-test
%s`, r.Dir, r.Host, authConfig)
		if err := os.WriteFile(config, []byte(content), 0o644); err != nil {
			return nil, fmt.Errorf("write registry config: %w", err)
		}
		p, err := startProcess(lc, "docker-registry", r.LogPath, nil, bin, "serve", config)
		if err != nil {
			return nil, err
		}
		err = p.waitReady(30*time.Second, r.ping)
		if err == nil {
			return r, nil
		}
		if attempt < portAttempts && lostPortRace(err, r.LogPath) {
			continue
		}
		return nil, err
	}
}

// ping succeeds once /v2/ answers as a registry does: 200 when open, 401 when
// it wants credentials.
func (r *Registry) ping(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+r.Host+"/v2/", nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusUnauthorized {
		return fmt.Errorf("GET /v2/: %s", resp.Status)
	}
	return nil
}

// Ref returns the reference of repo in this registry, e.g. Ref("a/b:v1") is
// "127.0.0.1:PORT/a/b:v1".
func (r *Registry) Ref(repo string) string {
	return r.Host + "/" + repo
}

// Auth returns the credentials as go-containerregistry wants them;
// anonymous when the registry has no auth.
func (r *Registry) Auth() authn.Authenticator {
	if r.Username == "" {
		return authn.Anonymous
	}
	return &authn.Basic{Username: r.Username, Password: r.Password}
}

// Keychain returns a keychain that knows this registry's credentials and
// nothing else, so code taking a keychain can be tested against several
// registries with different passwords, as in a real mirror setup. It answers
// Anonymous for other hosts, so authn.NewMultiKeychain(src.Keychain(),
// dst.Keychain()) covers both ends of a copy.
func (r *Registry) Keychain() authn.Keychain {
	return registryKeychain{r}
}

// Creds returns "user:pass" for skopeo's --creds; empty without auth.
func (r *Registry) Creds() string {
	if r.Username == "" {
		return ""
	}
	return r.Username + ":" + r.Password
}

type registryKeychain struct{ r *Registry }

func (k registryKeychain) Resolve(res authn.Resource) (authn.Authenticator, error) {
	if res.RegistryStr() == k.r.Host {
		return k.r.Auth(), nil
	}
	return authn.Anonymous, nil
}

// AuthFile writes a docker config.json holding the credentials of regs
// (those with auth) and returns its path: what users pass to Ferry with
// -a/--registry-config.
func AuthFile(t testing.TB, regs ...*Registry) string {
	t.Helper()
	auths := map[string]any{}
	for _, r := range regs {
		if r.Username != "" {
			auths[r.Host] = map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(r.Username + ":" + r.Password))}
		}
	}
	b, err := json.Marshal(map[string]any{"auths": auths})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// accessLine is a line of the registry's combined access log.
var accessLine = regexp.MustCompile(`"([A-Z]+) (\S+) HTTP/[0-9.]+" (\d{3}) `)

// LogSize is the current length of the registry's log: an offset for
// Requests.
func (r *Registry) LogSize(t testing.TB) int64 {
	t.Helper()
	fi, err := os.Stat(r.LogPath)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// Requests returns the requests the registry logged after offset (a
// LogSize), as the registry itself saw them: counts by method, and each
// request as "METHOD PATH STATUS". It is how tests prove a run wrote
// nothing, whatever the client believes it did.
//
// The registry writes an access line after its handler returns, which can
// be after the client has read a streamed body, so Requests first sends a
// sentinel request and reads the log once the sentinel's line is in it:
// every request the caller finished before calling Requests has been
// handled by then. The sentinel is not counted.
func (r *Registry) Requests(t testing.TB, offset int64) (counts map[string]int, lines []string) {
	t.Helper()
	sentinel := "/v2/ferry-sentinel/" + rand.Text() + "/tags/list"
	resp, err := http.Get("http://" + r.Host + sentinel)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	var b []byte
	for deadline := time.Now().Add(30 * time.Second); ; {
		if b, err = os.ReadFile(r.LogPath); err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b[offset:]), `"GET `+sentinel+` HTTP/`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the registry never logged the sentinel request %s", sentinel)
		}
		time.Sleep(10 * time.Millisecond)
	}
	counts = map[string]int{}
	for _, l := range strings.Split(string(b[offset:]), "\n") {
		if m := accessLine.FindStringSubmatch(l); m != nil && m[2] != sentinel {
			counts[m[1]]++
			lines = append(lines, m[1]+" "+m[2]+" "+m[3])
		}
	}
	return counts, lines
}

// Writes counts the write requests among Requests' counts.
func Writes(counts map[string]int) int {
	return counts["POST"] + counts["PUT"] + counts["PATCH"] + counts["DELETE"]
}
