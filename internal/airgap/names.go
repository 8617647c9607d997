package airgap

import (
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/ferry-gitops/ferry/internal/mirror"
)

func parseRepo(repo, tag string) (string, error) {
	r, err := name.NewRepository(repo, name.StrictValidation)
	if err != nil {
		return "", err
	}
	if tag != "" {
		if _, err := name.NewTag(repo+":"+tag, name.StrictValidation); err != nil {
			return "", err
		}
	}
	return r.Name(), nil
}

// repoPath is the path part of "host/path".
func repoPath(repo string) string {
	_, p, _ := strings.Cut(repo, "/")
	return p
}

// repoHost is the registry part of "host/path".
func repoHost(repo string) string {
	h, _, _ := strings.Cut(repo, "/")
	return h
}

// localRemotes gives the copy engine access to the archive's own registry
// on 127.0.0.1: plain HTTP, no credentials. Every other registry is the
// caller's Remotes, so their credentials never reach the local server.
type localRemotes struct {
	host string
	next mirror.Remotes
}

var _ mirror.Remotes = localRemotes{}

func (l localRemotes) Reference(ref string) (name.Reference, error) {
	if strings.HasPrefix(ref, l.host+"/") {
		// name.Insecure is how the engine learns a registry speaks plain
		// HTTP by the caller's decision.
		return name.ParseReference(ref, name.StrictValidation, name.Insecure)
	}
	if l.next == nil {
		return nil, errors.New("no Remotes given for registries other than the archive's")
	}
	return l.next.Reference(ref)
}

func (l localRemotes) Remote(ref name.Reference, extra ...remote.Option) []remote.Option {
	if ref.Context().RegistryStr() == l.host || l.next == nil {
		return append([]remote.Option{remote.WithAuth(authn.Anonymous)}, extra...)
	}
	return l.next.Remote(ref, extra...)
}

// destination is a validated destination of an image to export.
type destination struct {
	repo string // host/path
	tag  string
}

func (d destination) path() string { return repoPath(d.repo) }

// local is the destination as the archive's local registry names it.
func (d destination) local(host string) string {
	s := host + "/" + d.path()
	if d.tag != "" {
		s += ":" + d.tag
	}
	return s
}

// parseDestinations validates every destination at once. An archive is
// for one mirror registry: its record names repositories of that registry
// for mounts, and two registries could hold the same path.
func parseDestinations(dsts []string) ([]destination, error) {
	var errs []error
	out := make([]destination, len(dsts))
	hosts := map[string]bool{}
	for i, d := range dsts {
		repo, tag, err := splitDestination(d)
		if err != nil {
			errs = append(errs, fmt.Errorf("destination %q: %w", d, err))
			continue
		}
		out[i] = destination{repo: repo, tag: tag}
		hosts[repoHost(repo)] = true
	}
	if len(hosts) > 1 {
		errs = append(errs, fmt.Errorf("destinations name %d registries; an archive is for one mirror registry", len(hosts)))
	}
	return out, errors.Join(errs...)
}
