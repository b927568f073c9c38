package gitsource

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	git "github.com/go-git/go-git/v5"
	gitconfig "github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Log keys.
const (
	logKeyURL    = "url"
	logKeyRef    = "ref"
	logKeyCommit = "commit"
	logKeyTook   = "took"
)

// passThrough are the causes a redacted error keeps in its chain.
var passThrough = []error{
	context.Canceled, context.DeadlineExceeded,
	ErrAuth, ErrRefNotFound, ErrCommitNotFound, ErrPathNotFound,
	transport.ErrAuthenticationRequired, transport.ErrAuthorizationFailed,
	transport.ErrRepositoryNotFound, transport.ErrEmptyRemoteRepository,
}

// Revision is a commit the Source resolved and holds locally.
type Revision struct {
	// Commit is the full 40-hex commit hash.
	Commit string
	// Ref is the remote reference it came from ("refs/heads/main",
	// "refs/tags/v1", "HEAD"), empty for an exact-commit source.
	Ref string
	// Fetched is true when objects were downloaded, false when the commit
	// was already in the clone.
	Fetched bool
	// Subject is the first line of the commit message.
	Subject string
	Author  string
	When    time.Time
}

// Short returns the 7-character abbreviation of the commit.
func (r Revision) Short() string { return short(r.Commit) }

// Status is what a caller stores about the source (for gitorc status).
// LastError is kept after a later success; it is current only when
// LastErrorAt is after LastFetch (see Failing).
type Status struct {
	URL         string // redacted
	Ref         string
	Commit      string // last commit resolved by Fetch
	LastFetch   time.Time
	LastError   string
	LastErrorAt time.Time
}

// Failing reports whether the last attempt failed.
func (s Status) Failing() bool { return s.LastError != "" && s.LastErrorAt.After(s.LastFetch) }

// Source is one followed repository. Its methods are safe for concurrent
// use; Git operations on the clone are serialised.
type Source struct {
	cfg     Config
	subPath string
	ep      *endpoint
	log     *slog.Logger
	now     func() time.Time

	mu     sync.Mutex // guards repo operations
	repo   *git.Repository
	remote *git.Remote

	stMu   sync.Mutex
	status Status
}

// New validates cfg and opens (or creates) the bare clone in cfg.DataDir.
// It does no network I/O.
func New(cfg Config) (*Source, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	sub, _ := cleanSubPath(cfg.Path)
	ep, err := newEndpoint(&cfg)
	if err != nil {
		return nil, fmt.Errorf("git source %s: %w", RedactURL(cfg.URL), err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	repo, err := openBare(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	remote := git.NewRemote(repo.Storer, &gitconfig.RemoteConfig{Name: "origin", URLs: []string{ep.url}})
	s := &Source{cfg: cfg, subPath: sub, ep: ep, log: log.With(logKeyURL, ep.display), now: now, repo: repo, remote: remote}
	s.status = Status{URL: ep.display, Ref: cfg.Ref}
	return s, nil
}

func openBare(dir string) (*git.Repository, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("git data dir: %w", err)
	}
	repo, err := git.PlainOpen(dir)
	if errors.Is(err, git.ErrRepositoryNotExists) {
		repo, err = git.PlainInit(dir, true)
	}
	if err != nil {
		return nil, fmt.Errorf("open clone %s: %w", dir, err)
	}
	return repo, nil
}

// Status returns a copy of the source's status.
func (s *Source) Status() Status {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	return s.status
}

// Config returns the source's configuration (Auth included: do not log
// it with %#v; its String and LogValue are redacted).
func (s *Source) Config() Config { return s.cfg }

func (s *Source) recordErr(err error) {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	s.status.LastError = err.Error()
	s.status.LastErrorAt = s.now()
}

func (s *Source) recordOK(commit string) {
	s.stMu.Lock()
	defer s.stMu.Unlock()
	s.status.Commit = commit
	s.status.LastFetch = s.now()
}

// Resolve asks the remote which commit the ref points to (one ls-remote,
// no fetch). An exact-commit source resolves to its commit without I/O.
func (s *Source) Resolve(ctx context.Context) (string, error) {
	if s.cfg.IsCommit() {
		return s.cfg.Ref, nil
	}
	_, h, err := s.lsRemote(ctx)
	if err != nil {
		s.recordErr(err)
		return "", err
	}
	return h.String(), nil
}

// lsRemote lists the remote's refs and picks the configured one. It
// returns the remote ref name and the commit it points to (annotated tags
// peeled).
func (s *Source) lsRemote(ctx context.Context) (plumbing.ReferenceName, plumbing.Hash, error) {
	refs, err := s.remote.ListContext(ctx, &git.ListOptions{
		Auth: s.ep.auth, InsecureSkipTLS: s.ep.insecure, CABundle: s.ep.caBundle,
		PeelingOption: git.AppendPeeled,
	})
	if err != nil {
		return "", plumbing.ZeroHash, s.wrap("ls-remote", err)
	}
	byName := make(map[plumbing.ReferenceName]*plumbing.Reference, len(refs))
	for _, r := range refs {
		byName[r.Name()] = r
	}
	for _, name := range s.candidates() {
		r, ok := byName[name]
		if !ok {
			continue
		}
		if r.Type() == plumbing.SymbolicReference {
			t, ok := byName[r.Target()]
			if !ok {
				continue
			}
			r = t
		}
		h := r.Hash()
		if p, ok := byName[name+"^{}"]; ok {
			h = p.Hash() // annotated tag: the commit it points to
		}
		return name, h, nil
	}
	return "", plumbing.ZeroHash, errorf(ErrRefNotFound, "ref %s not found in %s", s.refLabel(), s.ep.display)
}

func (s *Source) refLabel() string {
	if s.cfg.Ref == "" {
		return "HEAD"
	}
	return s.cfg.Ref
}

// candidates are the remote names the configured ref may stand for, in
// order of preference.
func (s *Source) candidates() []plumbing.ReferenceName {
	ref := s.cfg.Ref
	switch {
	case ref == "":
		return []plumbing.ReferenceName{plumbing.HEAD}
	case strings.HasPrefix(ref, "refs/"):
		return []plumbing.ReferenceName{plumbing.ReferenceName(ref)}
	}
	return []plumbing.ReferenceName{plumbing.NewBranchReferenceName(ref), plumbing.NewTagReferenceName(ref)}
}

// localName is where a fetched remote ref is kept in the clone.
func localName(remote plumbing.ReferenceName) plumbing.ReferenceName {
	if remote == plumbing.HEAD {
		return "refs/gitorc/HEAD"
	}
	return remote
}

// Fetch brings the configured ref's commit into the clone and returns it.
// It first asks the remote (ls-remote) which commit the ref points to, and
// downloads objects only when that commit is not already present. A
// force-pushed ref is followed; a deleted one gives ErrRefNotFound.
func (s *Source) Fetch(ctx context.Context) (Revision, error) {
	rev, err := s.fetch(ctx)
	if err != nil {
		s.recordErr(err)
		return Revision{}, err
	}
	s.recordOK(rev.Commit)
	return rev, nil
}

func (s *Source) fetch(ctx context.Context) (Revision, error) {
	start := time.Now()
	if s.cfg.IsCommit() {
		return s.fetchCommit(ctx, plumbing.NewHash(s.cfg.Ref))
	}
	name, want, err := s.lsRemote(ctx)
	if err != nil {
		return Revision{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, err := s.repo.CommitObject(want); err == nil {
		s.log.DebugContext(ctx, "git ref unchanged or already fetched", logKeyRef, name.String(), logKeyCommit, short(want.String()))
		return revision(c, name, false), nil
	}
	local := localName(name)
	spec := gitconfig.RefSpec("+" + name.String() + ":" + local.String())
	if err := s.fetchSpecs(ctx, spec); err != nil {
		return Revision{}, err
	}
	// The ref may have moved again between ls-remote and fetch: what the
	// fetch wrote is the truth.
	r, err := s.repo.Reference(local, true)
	if err != nil {
		return Revision{}, fmt.Errorf("fetch %s: %s: %w", s.ep.display, name, err)
	}
	c, err := s.peelCommit(r.Hash())
	if err != nil {
		return Revision{}, fmt.Errorf("fetch %s: %s: %w", s.ep.display, name, err)
	}
	s.log.InfoContext(ctx, "git fetched", logKeyRef, name.String(), logKeyCommit, short(c.Hash.String()), logKeyTook, time.Since(start))
	return revision(c, name, true), nil
}

// fetchCommit makes an exact commit present: nothing to do when it is
// already there, else every branch and tag is fetched and searched.
func (s *Source) fetchCommit(ctx context.Context, h plumbing.Hash) (Revision, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, err := s.repo.CommitObject(h); err == nil {
		return revision(c, "", false), nil
	}
	if err := s.fetchSpecs(ctx, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"); err != nil {
		return Revision{}, err
	}
	c, err := s.repo.CommitObject(h)
	if err != nil {
		return Revision{}, errorf(ErrCommitNotFound, "commit %s not found in %s", short(h.String()), s.ep.display)
	}
	return revision(c, "", true), nil
}

func (s *Source) fetchSpecs(ctx context.Context, specs ...gitconfig.RefSpec) error {
	err := s.remote.FetchContext(ctx, &git.FetchOptions{
		RefSpecs: specs, Auth: s.ep.auth, Force: true, Tags: git.NoTags,
		InsecureSkipTLS: s.ep.insecure, CABundle: s.ep.caBundle,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return s.wrap("fetch", err)
	}
	return nil
}

// wrap turns a transport error into "op url: reason" without secrets.
func (s *Source) wrap(op string, err error) error {
	var sentinel error
	switch {
	case errors.Is(err, transport.ErrAuthenticationRequired):
		sentinel, err = ErrAuth, transport.ErrAuthenticationRequired
	case errors.Is(err, transport.ErrAuthorizationFailed):
		sentinel, err = ErrAuth, transport.ErrAuthorizationFailed
	case errors.Is(err, transport.ErrRepositoryNotFound):
		err = transport.ErrRepositoryNotFound
	case isSSHAuthError(err):
		sentinel = ErrAuth
	}
	msg := redactErr(err, s.ep.secrets)
	if sentinel != nil {
		return &redactedError{msg: op + " " + s.ep.display + ": " + msg.Error(), causes: []error{sentinel, msg}}
	}
	return &redactedError{msg: op + " " + s.ep.display + ": " + msg.Error(), causes: []error{msg}}
}

func isSSHAuthError(err error) bool {
	m := err.Error()
	return strings.Contains(m, "ssh: unable to authenticate")
}

// peelCommit follows annotated tags to a commit.
func (s *Source) peelCommit(h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		obj, err := s.repo.Object(plumbing.AnyObject, h)
		if err != nil {
			return nil, err
		}
		switch o := obj.(type) {
		case *object.Commit:
			return o, nil
		case *object.Tag:
			h = o.Target
		default:
			return nil, fmt.Errorf("points to a %s, not a commit", obj.Type())
		}
	}
	return nil, errors.New("tag chain too long")
}

func revision(c *object.Commit, ref plumbing.ReferenceName, fetched bool) Revision {
	subject, _, _ := strings.Cut(c.Message, "\n")
	return Revision{
		Commit: c.Hash.String(), Ref: ref.String(), Fetched: fetched,
		Subject: subject, Author: c.Author.Name, When: c.Committer.When,
	}
}

func short(h string) string {
	if len(h) > 7 {
		return h[:7]
	}
	return h
}
