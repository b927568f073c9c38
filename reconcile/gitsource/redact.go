package gitsource

import (
	"errors"
	"net/url"
	"strings"
)

// RedactURL returns the URL without any password or token: userinfo
// becomes "user:***" (or is dropped when it holds only a token-like user).
// Non-URL forms (scp-like, paths) are returned unchanged.
func RedactURL(raw string) string {
	if !strings.Contains(raw, "://") {
		return raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Do not echo something that may hold a secret we cannot find.
		if i := strings.Index(raw, "@"); i >= 0 {
			if j := strings.Index(raw, "://"); j >= 0 && j < i {
				return raw[:j+3] + "***@" + raw[i+1:]
			}
		}
		return raw
	}
	if u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), "***")
		s := u.String()
		return strings.Replace(s, ":%2A%2A%2A@", ":***@", 1)
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		// A lone user name over https is often a token.
		u.User = url.User("***")
		return strings.Replace(u.String(), "%2A%2A%2A@", "***@", 1)
	}
	return u.String()
}

// redactString replaces every secret in s with "***".
func redactString(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 3 {
			s = strings.ReplaceAll(s, sec, "***")
			if esc := url.QueryEscape(sec); esc != sec {
				s = strings.ReplaceAll(s, esc, "***")
			}
			if esc := url.PathEscape(sec); esc != sec {
				s = strings.ReplaceAll(s, esc, "***")
			}
		}
	}
	return s
}

// redactedError scrubs the text of an error and keeps only sentinel causes
// in its chain (never the original error, whose text may hold a secret),
// so errors.Is still works.
type redactedError struct {
	msg    string
	causes []error
}

func (e *redactedError) Error() string   { return e.msg }
func (e *redactedError) Unwrap() []error { return e.causes }

func redactErr(err error, secrets []string) error {
	if err == nil {
		return nil
	}
	var causes []error
	for _, s := range passThrough {
		if errors.Is(err, s) {
			causes = append(causes, s)
		}
	}
	return &redactedError{msg: redactString(err.Error(), secrets), causes: causes}
}
