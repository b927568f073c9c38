package webhook

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// Kind is what a delivery announces.
type Kind uint8

// Kinds.
const (
	KindOther Kind = iota // an event that is not a push (issues, merge requests…)
	KindPush
	KindPing // GitHub's "ping" when a hook is created
)

var kindNames = []string{"other", "push", "ping"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// Event is a parsed delivery.
type Event struct {
	Provider Provider
	Kind     Kind
	// Name is the provider's event name ("push", "Push Hook", "issues").
	Name string
	// Ref is the full pushed reference ("refs/heads/main").
	Ref string
	// Commit is the commit the ref points to after the push; empty when
	// the sender did not say (generic) or the ref was deleted.
	Commit string
	// Deleted is true when the push removed the ref.
	Deleted bool
	// Delivery is the provider's delivery id, if any.
	Delivery string
}

// Branch returns the branch name of a refs/heads/ ref, or "".
func (e Event) Branch() string {
	b, _ := strings.CutPrefix(e.Ref, "refs/heads/")
	if b == e.Ref {
		return ""
	}
	return b
}

// ShortRef returns the branch or tag name, or the ref as is.
func (e Event) ShortRef() string {
	for _, p := range []string{"refs/heads/", "refs/tags/"} {
		if s, ok := strings.CutPrefix(e.Ref, p); ok {
			return s
		}
	}
	return e.Ref
}

var (
	hexHash  = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)
	zeroHash = regexp.MustCompile(`^0+$`)
)

// Parse reads the event of a verified delivery. Non-push events parse to
// KindOther (or KindPing) without error; a push without a usable ref or
// commit is a *PayloadError.
func Parse(p Provider, h http.Header, body []byte) (Event, error) {
	ev := Event{Provider: p}
	switch p {
	case GitHub:
		ev.Name, ev.Delivery = h.Get(HeaderGitHubEvent), h.Get("X-GitHub-Delivery")
		switch ev.Name {
		case "ping":
			ev.Kind = KindPing
			return ev, nil
		case "push":
			return parseHubPush(ev, h, body)
		case "":
			return ev, &PayloadError{Provider: p, Reason: "missing " + HeaderGitHubEvent + " header"}
		}
		return ev, nil
	case Gitea:
		ev.Name = firstNonEmpty(h.Get(HeaderGiteaEvent), h.Get(HeaderGogsEvent), h.Get(HeaderGitHubEvent))
		ev.Delivery = firstNonEmpty(h.Get("X-Gitea-Delivery"), h.Get("X-Gogs-Delivery"))
		switch ev.Name {
		case "push":
			return parseHubPush(ev, h, body)
		case "":
			return ev, &PayloadError{Provider: p, Reason: "missing " + HeaderGiteaEvent + " header"}
		}
		return ev, nil
	case GitLab:
		ev.Name, ev.Delivery = h.Get(HeaderGitLabEvent), h.Get("X-Gitlab-Event-UUID")
		return parseGitLab(ev, body)
	case Generic:
		ev.Name, ev.Delivery = firstNonEmpty(h.Get(HeaderGitorcEvent), "push"), h.Get("X-Request-Id")
		if ev.Name != "push" {
			return ev, nil
		}
		return parseGeneric(ev, body)
	}
	return ev, ErrUnknownProvider
}

// hubPush is the part of a GitHub or Gitea push payload gitorc reads.
type hubPush struct {
	Ref     *string `json:"ref"`
	After   *string `json:"after"`
	Deleted bool    `json:"deleted"`
}

func parseHubPush(ev Event, h http.Header, body []byte) (Event, error) {
	var p hubPush
	// GitHub can send application/x-www-form-urlencoded: payload=<json>.
	if strings.HasPrefix(h.Get("Content-Type"), "application/x-www-form-urlencoded") {
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return ev, &PayloadError{Provider: ev.Provider, Reason: "invalid form body"}
		}
		body = []byte(q.Get("payload"))
	}
	if err := decode(body, &p); err != nil {
		return ev, &PayloadError{Provider: ev.Provider, Reason: err.Error()}
	}
	if p.Ref == nil || p.After == nil {
		return ev, &PayloadError{Provider: ev.Provider, Reason: "push without ref or after"}
	}
	return finishPush(ev, *p.Ref, *p.After, p.Deleted, true)
}

// gitLabPush is the part of a GitLab push or tag push payload gitorc reads.
type gitLabPush struct {
	ObjectKind  string  `json:"object_kind"`
	Ref         *string `json:"ref"`
	After       string  `json:"after"`
	CheckoutSHA *string `json:"checkout_sha"`
}

func parseGitLab(ev Event, body []byte) (Event, error) {
	switch ev.Name {
	case "Push Hook", "Tag Push Hook", "System Hook":
	case "":
		return ev, &PayloadError{Provider: ev.Provider, Reason: "missing " + HeaderGitLabEvent + " header"}
	default:
		return ev, nil
	}
	var p gitLabPush
	if err := decode(body, &p); err != nil {
		return ev, &PayloadError{Provider: ev.Provider, Reason: err.Error()}
	}
	if p.ObjectKind != "push" && p.ObjectKind != "tag_push" {
		return ev, nil // a system hook about something else
	}
	if p.Ref == nil {
		return ev, &PayloadError{Provider: ev.Provider, Reason: "push without ref"}
	}
	commit := p.After
	if p.CheckoutSHA != nil {
		commit = *p.CheckoutSHA
	} else if commit == "" || zeroHash.MatchString(commit) {
		commit = "" // deletion: checkout_sha is null
	}
	return finishPush(ev, *p.Ref, commit, p.CheckoutSHA == nil && (p.After == "" || zeroHash.MatchString(p.After)), false)
}

type genericPush struct {
	Ref   *string `json:"ref"`
	After string  `json:"after"`
}

func parseGeneric(ev Event, body []byte) (Event, error) {
	var p genericPush
	if err := decode(body, &p); err != nil {
		return ev, &PayloadError{Provider: ev.Provider, Reason: err.Error()}
	}
	if p.Ref == nil || *p.Ref == "" {
		return ev, &PayloadError{Provider: ev.Provider, Reason: `push without "ref"`}
	}
	ref := *p.Ref
	if !strings.HasPrefix(ref, "refs/") {
		ref = "refs/heads/" + ref
	}
	return finishPush(ev, ref, p.After, false, false)
}

// finishPush validates ref and commit and fills the event.
func finishPush(ev Event, ref, commit string, deleted, commitRequired bool) (Event, error) {
	if !strings.HasPrefix(ref, "refs/") || strings.ContainsAny(ref, " \t\n\x00") || len(ref) > 1024 {
		return ev, &PayloadError{Provider: ev.Provider, Reason: "ref " + quote(ref) + " is not a full reference name"}
	}
	commit = strings.ToLower(commit)
	switch {
	case commit == "" && commitRequired:
		return ev, &PayloadError{Provider: ev.Provider, Reason: "push without after commit"}
	case commit == "":
	case !hexHash.MatchString(commit):
		return ev, &PayloadError{Provider: ev.Provider, Reason: "commit " + quote(commit) + " is not a hex hash"}
	case zeroHash.MatchString(commit):
		deleted, commit = true, ""
	}
	ev.Kind, ev.Ref, ev.Commit, ev.Deleted = KindPush, ref, commit, deleted
	if deleted {
		ev.Commit = ""
	}
	return ev, nil
}

func decode(body []byte, v any) error {
	if len(body) == 0 {
		return errEmpty
	}
	if err := json.Unmarshal(body, v); err != nil {
		return errInvalidJSON{err}
	}
	return nil
}

type errInvalidJSON struct{ err error }

func (e errInvalidJSON) Error() string { return "invalid JSON: " + e.err.Error() }

var errEmpty = errors.New("empty body")

func quote(s string) string {
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	b, _ := json.Marshal(s)
	return string(b)
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
