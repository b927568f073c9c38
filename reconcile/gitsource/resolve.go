package gitsource

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// ResolveRevision returns the full commit hash of a revision of the clone:
// a full or abbreviated (4+ hex digits) commit, or a branch or tag fetched
// before, with git's ~ and ^ suffixes. Only what Fetch brought in is
// known: a commit of a branch the source does not follow is not.
func (s *Source) ResolveRevision(rev string) (string, error) {
	rev = strings.TrimSpace(rev)
	if rev == "" {
		return "", fmt.Errorf("empty revision")
	}
	if shortHex.MatchString(rev) {
		return "", fmt.Errorf("revision %q: give at least 4 hex digits of the commit", rev)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	h, err := s.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil || h == nil || h.IsZero() {
		return "", errorf(ErrCommitNotFound, "revision %s not found in the clone of %s (only the followed ref %s is fetched)", rev, s.ep.display, s.refLabel())
	}
	return h.String(), nil
}

// shortHex is too short a commit prefix to name one commit.
var shortHex = regexp.MustCompile(`^[0-9a-f]{1,3}$`)
