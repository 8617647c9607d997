package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/mail"
	"os"
	"path"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-gitops/ferry/gitsync"
	"github.com/ferry-gitops/ferry/internal/pipeline"
)

// repoFlags are the repository flags of every command that reads a spec:
// --repo instead of DIR, and how to reach and write the repository.
type repoFlags struct {
	Repo, Branch, Path, PushBranch string
	GitUsername, GitPasswordFile   string
	GitSSHKey, GitKnownHosts       string
	GitCAFile, GitSecretDir        string
	GitAuthor, GitCommitter        string
}

func (f *repoFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.Repo, "repo", "", "config repository URL (https://, ssh://, git@host:path) to read the spec from instead of DIR; cloned into --cache-dir and fetched on later runs")
	fl.StringVar(&f.Branch, "branch", "main", "with --repo: the branch holding the spec")
	fl.StringVar(&f.Path, "path", "", "with --repo: the spec directory inside the repository (default: its root)")
	fl.StringVar(&f.PushBranch, "push-branch", "", "with --repo: push Ferry's render commits to this branch instead of --branch, for review by pull request (the plan is always made from --branch)")
	fl.StringVar(&f.GitUsername, "git-username", "", "with --repo: user name for HTTPS (also $FERRY_GIT_USERNAME or the URL's user info)")
	fl.StringVar(&f.GitPasswordFile, "git-password-file", "", "with --repo: file holding the HTTPS password or token (also $FERRY_GIT_PASSWORD_FILE, $FERRY_GIT_PASSWORD)")
	fl.StringVar(&f.GitSSHKey, "git-ssh-key", "", "with --repo: SSH private key file (also $FERRY_GIT_SSH_KEY)")
	fl.StringVar(&f.GitKnownHosts, "git-known-hosts", "", "with --repo: known_hosts file; SSH host keys are always checked (default: $FERRY_GIT_KNOWN_HOSTS, then ~/.ssh/known_hosts)")
	fl.StringVar(&f.GitCAFile, "git-ca-file", "", "with --repo: PEM CA bundle trusted for HTTPS besides the system roots (also $FERRY_GIT_CA_FILE)")
	fl.StringVar(&f.GitSecretDir, "git-secret-dir", "", "with --repo: a mounted Argo CD or Flux repository Secret (username, password, bearerToken, sshPrivateKey/identity, known_hosts, ca.crt, ...; also $FERRY_GIT_SECRET_DIR)")
}

// addSignature adds the flags naming who signs the commits Ferry pushes.
func (f *repoFlags) addSignature(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.GitAuthor, "git-author", "Ferry <ferry@localhost>", `with --repo: author of Ferry's commits, "Name <email>"`)
	cmd.Flags().StringVar(&f.GitCommitter, "git-committer", "", `with --repo: committer of Ferry's commits, "Name <email>" (default: the author)`)
}

// check refuses --repo together with DIR, and repository flags without
// --repo (they would be silently ignored).
func (f *repoFlags) check(cmd *cobra.Command, args []string) error {
	if f.Repo == "" {
		for _, name := range []string{"branch", "path", "push-branch", "git-username", "git-password-file", "git-ssh-key", "git-known-hosts", "git-ca-file", "git-secret-dir", "git-author", "git-committer"} {
			if fl := cmd.Flags().Lookup(name); fl != nil && fl.Changed {
				return &usageError{fmt.Errorf("--%s needs --repo", name)}
			}
		}
		return nil
	}
	if len(args) > 0 {
		return &usageError{fmt.Errorf("give either DIR (%s) or --repo, not both: with --repo the spec is read from the repository's clone in --cache-dir", args[0])}
	}
	return nil
}

// settings are the repository settings of the flags.
func (f *repoFlags) settings(cacheDir, renderDir string, readOnly bool) (pipeline.RepoSettings, error) {
	rs := pipeline.RepoSettings{
		URL: f.Repo, Branch: f.Branch, Path: f.Path, PushBranch: f.PushBranch,
		RenderDir: renderDir, CacheDir: cacheDir, ReadOnly: readOnly,
		Credentials: gitsync.CredentialSources{
			Username: f.GitUsername, PasswordFile: f.GitPasswordFile, SSHKeyFile: f.GitSSHKey,
			KnownHostsFile: f.GitKnownHosts, CAFile: f.GitCAFile, SecretDir: f.GitSecretDir,
			Getenv: os.Getenv,
		},
		Log: slog.Default(),
	}
	var err error
	if f.GitAuthor != "" {
		if rs.Author, err = parseSignature("--git-author", f.GitAuthor); err != nil {
			return rs, err
		}
	}
	if f.GitCommitter != "" {
		if rs.Committer, err = parseSignature("--git-committer", f.GitCommitter); err != nil {
			return rs, err
		}
	}
	return rs, nil
}

// parseSignature reads "Name <email>", as git writes an identity.
func parseSignature(flag, s string) (gitsync.Signature, error) {
	a, err := mail.ParseAddress(s)
	if err != nil || a.Name == "" || strings.ContainsAny(s, "\n\r") {
		return gitsync.Signature{}, &usageError{fmt.Errorf(`%s %q: want "Name <email>"`, flag, s)}
	}
	return gitsync.Signature{Name: a.Name, Email: a.Address}, nil
}

// specSource is where a command reads the spec: DIR, or the clone of
// --repo at the tip of its branch.
type specSource struct {
	// Dir is the spec directory on disk.
	Dir string
	// Display names Dir in messages: DIR as given, or --path inside the
	// repository.
	Display string
	// Name is the source in summaries: DIR, or the repository (no
	// credentials), branch and path.
	Name string
	// Repo is the clone with --repo, nil otherwise.
	Repo *gitsync.Repo
}

// Close releases the clone's cache lock.
func (s *specSource) Close() {
	if s.Repo != nil {
		s.Repo.Close()
	}
}

// openSource resolves DIR or --repo. With --repo the clone is synced to
// the branch's tip (fetching only what the cache lacks); read-only, it
// can never write to the remote. sync=false opens without touching the
// network (reconcile syncs itself).
func (f *repoFlags) openSource(ctx context.Context, args []string, cacheDir, renderDir string, readOnly, sync bool) (*specSource, error) {
	if f.Repo == "" {
		dir, err := dirArg(args)
		if err != nil {
			return nil, err
		}
		return &specSource{Dir: dir, Display: dir, Name: dir}, nil
	}
	rs, err := f.settings(cacheDir, renderDir, readOnly)
	if err != nil {
		return nil, err
	}
	repo, err := pipeline.OpenRepo(ctx, rs)
	if err != nil {
		return nil, err
	}
	src := &specSource{Dir: repo.Dir(), Display: displayRepoPath(f.Path), Name: f.repoName(repo), Repo: repo}
	if sync {
		if _, err := repo.Sync(ctx); err != nil {
			repo.Close()
			return nil, err
		}
	}
	return src, nil
}

// repoName names the repository in summaries and the daemon's status.
func (f *repoFlags) repoName(repo *gitsync.Repo) string {
	name := repo.URL() + " " + repo.Branch()
	if p := displayRepoPath(f.Path); p != "." {
		name += " " + p
	}
	return name
}

// displayRepoPath is --path as a path inside the repository.
func displayRepoPath(p string) string {
	if p == "" {
		return "."
	}
	return path.Clean(p)
}

// errNoCommit refuses --commit=false with --repo.
var errNoCommit = errors.New("--commit=false with --repo would render into the cache and throw it away; use --dry-run to see the plan")
