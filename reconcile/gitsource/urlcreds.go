package gitsource

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrURLCredentials: a repository URL carries credentials.
var ErrURLCredentials = errors.New("credentials in the URL")

// RefuseURLCredentials refuses a repository URL that carries userinfo
// (https://user:token@host/…): it would be kept in clear in node.json,
// the Raft log and every status. An ssh user without a password
// (ssh://git@host/…, git@host:path) is no credential.
func RefuseURLCredentials(flag, raw string) error {
	if !strings.Contains(raw, "://") {
		return nil // a path or scp-like user@host:path
	}
	u, err := url.Parse(raw)
	if err != nil {
		if strings.Contains(raw, "@") {
			return fmt.Errorf("%s %s: %w", flag, RedactURL(raw), ErrURLCredentials)
		}
		return nil // gitsource's checks say what is wrong
	}
	if u.User == nil {
		return nil
	}
	_, hasPassword := u.User.Password()
	if !hasPassword && !IsHTTPURL(raw) {
		return nil
	}
	u.User = nil
	return fmt.Errorf("%s %s: %w would be kept in clear in the node's state, the Raft log and gitorc status: "+
		"give %s, and the password or access token with --git-password-file FILE (and --git-username NAME, default git)",
		flag, RedactURL(raw), ErrURLCredentials, u.String())
}

// IsHTTPURL says whether s is an http(s) URL.
func IsHTTPURL(s string) bool {
	return strings.HasPrefix(s, "https://") || strings.HasPrefix(s, "http://")
}
