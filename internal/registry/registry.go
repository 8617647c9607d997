package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Options says how to reach registries.
type Options struct {
	// AuthFile is a docker config.json or podman auth.json. Empty: the
	// REGISTRY_AUTH_FILE variable, then the docker and podman defaults.
	AuthFile string
	// Insecure lists registries (host[:port]) reached over plain HTTP or
	// with TLS verification off.
	Insecure []string
	// Concurrency bounds parallel blob transfers per image (remote.WithJobs).
	Concurrency int
	// Retry is the policy of every request made through Remote; unset
	// fields take DefaultRetryPolicy's values.
	Retry RetryPolicy
	// MaxManifestBytes bounds every manifest read (0:
	// DefaultMaxManifestBytes).
	MaxManifestBytes int64
	// Log receives retries; nil is silent.
	Log *slog.Logger
}

// Client carries what every registry call needs: credentials, insecure
// registries, and one retrying transport per registry, shared by every
// call so connections and the /v2/ probe are reused within a run.
type Client struct {
	opts       Options
	keychain   authn.Keychain
	insecure   map[string]bool
	transports sync.Map // host -> *Transport
}

// New resolves credentials once, so a broken auth file fails the run before
// anything is read or written.
func New(opts Options) (*Client, error) {
	opts.Retry = opts.Retry.WithDefaults()
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	c := &Client{opts: opts, insecure: map[string]bool{}}
	for _, r := range opts.Insecure {
		c.insecure[r] = true
	}
	file := opts.AuthFile
	if file == "" {
		file = os.Getenv("REGISTRY_AUTH_FILE")
	}
	if file == "" {
		c.keychain = authn.DefaultKeychain
		return c, nil
	}
	kc, err := loadAuthFile(file)
	if err != nil {
		return nil, err
	}
	c.keychain = kc
	return c, nil
}

// Reference parses a reference, marking insecure registries so
// go-containerregistry falls back to plain HTTP for them.
func (c *Client) Reference(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref, name.StrictValidation)
	if err != nil {
		return nil, err
	}
	if c.insecure[r.Context().RegistryStr()] {
		return name.ParseReference(ref, name.StrictValidation, name.Insecure)
	}
	return r, nil
}

// Remote returns the remote options for talking to the registry of ref:
// its credentials and the registry's retrying Transport, with
// go-containerregistry's own retries switched off so that one layer, which
// honours Retry-After and cuts stalls, decides. A caller's extra options
// come last and win (the copy engine passes its own transport).
func (c *Client) Remote(ref name.Reference, extra ...remote.Option) []remote.Option {
	opts := []remote.Option{
		remote.WithAuthFromKeychain(c.keychain),
		remote.WithTransport(c.Transport(ref.Context().RegistryStr())),
		remote.WithRetryStatusCodes(),
		remote.WithRetryPredicate(func(error) bool { return false }),
	}
	if c.opts.Concurrency > 0 {
		opts = append(opts, remote.WithJobs(c.opts.Concurrency))
	}
	return append(opts, extra...)
}

// Transport returns the retrying transport of one registry (host[:port]).
func (c *Client) Transport(host string) *Transport {
	if t, ok := c.transports.Load(host); ok {
		return t.(*Transport)
	}
	t, _ := c.transports.LoadOrStore(host, NewTransport(TransportOptions{
		Host:             host,
		Insecure:         c.insecure[host],
		Conns:            max(16, c.opts.Concurrency),
		Policy:           c.opts.Retry,
		MaxManifestBytes: c.opts.MaxManifestBytes,
		Log:              c.opts.Log,
	}))
	return t.(*Transport)
}

// Policy is the retry policy of every call made through the client.
func (c *Client) Policy() RetryPolicy { return c.opts.Retry }

// MaxManifestBytes is the largest manifest the client reads.
func (c *Client) MaxManifestBytes() int64 {
	if c.opts.MaxManifestBytes > 0 {
		return c.opts.MaxManifestBytes
	}
	return DefaultMaxManifestBytes
}

// Transfer runs fn under the client's policy for whole transfers: when the
// content broke off mid-body, stalled or arrived with the wrong digest, fn
// runs again from the start (see RetryPolicy.Transfer). Request-level
// failures were retried below it already and are not repeated.
func (c *Client) Transfer(ctx context.Context, fn func(context.Context) error) error {
	return c.opts.Retry.Transfer(ctx, c.opts.Log, nil, fn)
}

// authFile is the part of config.json / auth.json Ferry reads.
type authFile struct {
	Auths map[string]struct {
		Auth          string `json:"auth"`
		Username      string `json:"username"`
		Password      string `json:"password"`
		IdentityToken string `json:"identitytoken"`
	} `json:"auths"`
}

type fileKeychain map[string]authn.AuthConfig

func loadAuthFile(path string) (authn.Keychain, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("registry auth file: %w", err)
	}
	var f authFile
	if err := json.Unmarshal(b, &f); err != nil {
		// The decoder's message quotes no content, only positions.
		return nil, fmt.Errorf("registry auth file %s: not a docker config.json or podman auth.json: %w", path, err)
	}
	kc := fileKeychain{}
	for host, a := range f.Auths {
		cfg := authn.AuthConfig{Username: a.Username, Password: a.Password, IdentityToken: a.IdentityToken}
		if a.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(a.Auth)
			user, pass, ok := strings.Cut(string(raw), ":")
			if err != nil || !ok {
				return nil, fmt.Errorf("registry auth file %s: entry for %s: auth is not base64 user:password", path, host)
			}
			cfg.Username, cfg.Password = user, pass
		}
		kc[normalizeHost(host)] = cfg
	}
	return kc, nil
}

// normalizeHost maps the spellings auth files use for a registry
// ("https://quay.io", "quay.io/v1/", "docker.io") to one key.
func normalizeHost(h string) string {
	h = strings.TrimPrefix(strings.TrimPrefix(h, "https://"), "http://")
	h, _, _ = strings.Cut(h, "/")
	if h == "docker.io" || h == "registry-1.docker.io" {
		h = name.DefaultRegistry
	}
	return h
}

// Resolve implements authn.Keychain. podman's auth.json may also hold
// entries for a repository path; the longest matching one wins.
func (k fileKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	if cfg, ok := k[normalizeHost(r.RegistryStr())]; ok {
		return authn.FromConfig(cfg), nil
	}
	return authn.Anonymous, nil
}
