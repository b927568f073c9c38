package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// SignatureHeader carries the body's HMAC-SHA256 as "sha256=<hex>", as
// GitHub signs its webhooks.
const SignatureHeader = "X-Gitorc-Signature"

// StatusContext names gitorc's commit status on the Git host.
const StatusContext = "gitorc"

// Event is the JSON body posted to Spec.URL for a sync's outcome.
type Event struct {
	// Event is synced, degraded, failed or reverted (a revert to the last
	// good revision that rolled out).
	Event    string    `json:"event"`
	Revision string    `json:"revision"`
	Trigger  string    `json:"trigger"`
	Record   string    `json:"record"`
	Message  string    `json:"message"`
	Services []string  `json:"services,omitempty"`
	Time     time.Time `json:"time"`
}

// Keys are the cluster keys a delivery needs, read when it is made.
type Keys struct {
	Secret []byte // HMAC key of the URL's body; nil: unsigned
	Token  []byte // the Git host's API token
}

// Config configures a Notifier.
type Config struct {
	// Keys returns the current keys.
	Keys func() Keys
	// Report receives the outcome of each delivery, retries done.
	Report func(api.NotifyDelivery)
	// Told is called when every delivery of a record's outcome ev is done
	// (delivered, or given up after its retries), not when the notifier
	// stopped first: what is not told is owed (Owed) to the next leader.
	Told   func(rec api.SyncRecord, ev string)
	Client *http.Client
	Logger *slog.Logger
	// Backoff is the first wait before a retry, doubled each time
	// (default 1s); Attempts bounds the tries (default 5).
	Backoff  time.Duration
	Attempts int
	// Now is the clock (time.Now by default).
	Now func() time.Time
}

// Notifier delivers notifications in the background.
type Notifier struct {
	cfg   Config
	queue chan job
}

type job struct {
	spec api.NotifySpec
	rec  api.SyncRecord
	svcs []string
}

// queueSize bounds the notifications waiting: beyond it, new ones are
// dropped, and reported so.
const queueSize = 64

// New returns a notifier; Run delivers.
func New(cfg Config) *Notifier {
	if cfg.Client == nil {
		cfg.Client = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = time.Second
	}
	if cfg.Attempts <= 0 {
		cfg.Attempts = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Keys == nil {
		cfg.Keys = func() Keys { return Keys{} }
	}
	if cfg.Report == nil {
		cfg.Report = func(api.NotifyDelivery) {}
	}
	if cfg.Told == nil {
		cfg.Told = func(api.SyncRecord, string) {}
	}
	return &Notifier{cfg: cfg, queue: make(chan job, queueSize)}
}

// Notify queues what spec asks for about a sync record: a started one
// sets the commit's status pending; a finished one posts its outcome and
// sets the status. It never blocks.
func (n *Notifier) Notify(spec *api.NotifySpec, rec api.SyncRecord, services []string) {
	if spec == nil || (spec.URL == "" && spec.CommitStatus == "") {
		return
	}
	select {
	case n.queue <- job{*spec, rec, services}:
	default:
		n.cfg.Report(api.NotifyDelivery{Time: n.cfg.Now(), Target: "queue", Revision: rec.Revision, Event: EventOf(rec),
			Error: fmt.Sprintf("%d notifications already wait: this one is dropped", queueSize)})
	}
}

// Run delivers queued notifications until ctx ends.
func (n *Notifier) Run(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case j := <-n.queue:
			if n.deliver(ctx, j) {
				n.cfg.Told(j.rec, EventOf(j.rec))
			}
		}
	}
}

// EventOf names a record's outcome: pending while it runs.
func EventOf(rec api.SyncRecord) string {
	switch {
	case rec.FinishedAt.IsZero():
		return "pending"
	case rec.Result == api.SyncSynced && rec.Trigger == api.TriggerRevert:
		return "reverted"
	case rec.Result == api.SyncSynced:
		return "synced"
	case rec.Result == api.SyncDegraded:
		return "degraded"
	}
	return "failed"
}

// Owed are the records whose outcome spec asks to tell and that were not
// told yet (Notified differs), oldest first as recs are: those that ended
// since the spec was set, and those that run (pending). A new leader
// tells them, so that a leader change loses no notification (it may tell
// one twice: at least once, as Flux and Argo CD deliver).
func Owed(spec *api.NotifySpec, recs []api.SyncRecord) []api.SyncRecord {
	if spec == nil || (spec.URL == "" && spec.CommitStatus == "") {
		return nil
	}
	var out []api.SyncRecord
	for _, r := range recs {
		ev := EventOf(r)
		if r.Notified == ev || r.StartedAt.Before(spec.Since) && (r.FinishedAt.IsZero() || r.FinishedAt.Before(spec.Since)) {
			continue
		}
		out = append(out, r)
	}
	return out
}

// deliver makes a job's deliveries and reports whether they are done:
// false when ctx ended first.
func (n *Notifier) deliver(ctx context.Context, j job) bool {
	ev := EventOf(j.rec)
	if j.spec.URL != "" && ev != "pending" {
		body, _ := json.Marshal(Event{Event: ev, Revision: j.rec.Revision, Trigger: j.rec.Trigger.String(), Record: j.rec.ID,
			Message: j.rec.Message, Services: j.services(), Time: j.rec.FinishedAt})
		n.try(ctx, "url", j.rec.Revision, ev, func(k Keys) (*http.Request, error) {
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, j.spec.URL, bytes.NewReader(body))
			if err != nil {
				return nil, err
			}
			req.Header.Set("Content-Type", "application/json")
			if len(k.Secret) > 0 {
				req.Header.Set(SignatureHeader, Sign(k.Secret, body))
			}
			return req, nil
		})
	}
	if j.spec.CommitStatus != "" && j.rec.Revision != "" {
		n.try(ctx, j.spec.CommitStatus, j.rec.Revision, ev, func(k Keys) (*http.Request, error) {
			return StatusRequest(ctx, j.spec, j.rec.Revision, ev, j.rec.Message, k.Token)
		})
	}
	return ctx.Err() == nil
}

func (j job) services() []string {
	if len(j.rec.Services) > 0 {
		return j.rec.Services
	}
	return j.svcs
}

// try sends a request up to Attempts times, waiting Backoff, doubled,
// between tries, and reports the outcome.
func (n *Notifier) try(ctx context.Context, target, revision, ev string, build func(Keys) (*http.Request, error)) {
	d := api.NotifyDelivery{Target: target, Revision: revision, Event: ev}
	wait := n.cfg.Backoff
	for d.Attempts < n.cfg.Attempts {
		d.Attempts++
		req, err := build(n.cfg.Keys())
		if err == nil {
			err = send(n.cfg.Client, req)
		}
		if err == nil {
			d.Error = ""
			break
		}
		d.Error = err.Error()
		n.cfg.Logger.Warn("notification not delivered", "target", target, "revision", revision, "attempt", d.Attempts, "err", err)
		if d.Attempts == n.cfg.Attempts {
			break
		}
		select {
		case <-ctx.Done():
			d.Error += "; given up: this manager stopped leading"
			d.Time = n.cfg.Now()
			n.cfg.Report(d)
			return
		case <-time.After(wait):
		}
		wait *= 2
	}
	if d.Error != "" {
		d.Error = fmt.Sprintf("%s (after %d attempts)", d.Error, d.Attempts)
	}
	d.Time = n.cfg.Now()
	n.cfg.Report(d)
}

func send(c *http.Client, req *http.Request) error {
	resp, err := c.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return fmt.Errorf("%s %s: %v", req.Method, redactURL(req.URL), ue.Err)
		}
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s %s", req.Method, redactURL(req.URL), resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// redactURL shows a URL without its query (GitLab's status parameters,
// possibly a token in a receiver's URL) nor user info.
func redactURL(u *url.URL) string {
	c := *u
	c.RawQuery, c.User = "", nil
	return c.String()
}

// Sign is the signature header's value for body: sha256=<hex of the
// HMAC-SHA256 of body keyed by secret>.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// description fits a commit status description (GitHub takes 140
// characters).
func description(ev, msg string) string {
	d := "gitorc: " + ev
	if msg != "" {
		d += ": " + msg
	}
	if r := []rune(d); len(r) > 140 {
		d = string(r[:139]) + "…"
	}
	return d
}

// StatusRequest is the request that sets a commit's status on a Git host,
// as its API documents it:
//   - GitHub: POST {api}/repos/{owner}/{repo}/statuses/{sha}, a bearer
//     token, JSON {state: pending|success|failure, description, context};
//   - Gitea: POST {api}/api/v1/repos/{owner}/{repo}/statuses/{sha},
//     "token" authorization, the same JSON;
//   - GitLab: POST {api}/api/v4/projects/{url-encoded path}/statuses/{sha}
//     with state (pending|success|failed), name and description as
//     parameters, and a PRIVATE-TOKEN header.
func StatusRequest(ctx context.Context, spec api.NotifySpec, sha, ev, msg string, token []byte) (*http.Request, error) {
	base := strings.TrimSuffix(spec.CommitStatusAPI, "/")
	owner, repo, ok := strings.Cut(spec.CommitStatusRepo, "/")
	if !ok || owner == "" || repo == "" {
		return nil, fmt.Errorf("commit status: repository %q: want owner/name", spec.CommitStatusRepo)
	}
	state := map[string]string{"pending": "pending", "synced": "success", "reverted": "failure", "degraded": "failure", "failed": "failure"}[ev]
	desc := description(ev, msg)
	jsonBody := func() []byte {
		b, _ := json.Marshal(map[string]string{"state": state, "description": desc, "context": StatusContext})
		return b
	}
	var req *http.Request
	var err error
	switch spec.CommitStatus {
	case "github":
		if base == "" {
			base = "https://api.github.com"
		}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/repos/%s/%s/statuses/%s", base, owner, repo, sha), bytes.NewReader(jsonBody()))
		if err == nil {
			req.Header.Set("Accept", "application/vnd.github+json")
			req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
			req.Header.Set("Authorization", "Bearer "+string(token))
			req.Header.Set("Content-Type", "application/json")
		}
	case "gitea":
		req, err = http.NewRequestWithContext(ctx, http.MethodPost, fmt.Sprintf("%s/api/v1/repos/%s/%s/statuses/%s", base, owner, repo, sha), bytes.NewReader(jsonBody()))
		if err == nil {
			req.Header.Set("Authorization", "token "+string(token))
			req.Header.Set("Content-Type", "application/json")
		}
	case "gitlab":
		if state == "failure" {
			state = "failed"
		}
		q := url.Values{"state": {state}, "name": {StatusContext}, "description": {desc}}
		req, err = http.NewRequestWithContext(ctx, http.MethodPost,
			fmt.Sprintf("%s/api/v4/projects/%s/statuses/%s?%s", base, url.PathEscape(spec.CommitStatusRepo), sha, q.Encode()), nil)
		if err == nil {
			req.Header.Set("PRIVATE-TOKEN", string(token))
		}
	default:
		return nil, fmt.Errorf("commit status: provider %q: want github, gitea or gitlab", spec.CommitStatus)
	}
	return req, err
}

// Validate checks a notify spec as an operator sets it.
func Validate(s api.NotifySpec) error {
	var errs []error
	if s.URL != "" {
		u, err := url.Parse(s.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("--notify %q: want an http(s) URL", s.URL))
		}
	}
	switch s.CommitStatus {
	case "":
	case "github", "gitea", "gitlab":
		if owner, repo, ok := strings.Cut(s.CommitStatusRepo, "/"); !ok || owner == "" || repo == "" {
			errs = append(errs, fmt.Errorf("--commit-status-repo %q: want owner/name", s.CommitStatusRepo))
		}
		if s.CommitStatus != "github" && s.CommitStatusAPI == "" {
			errs = append(errs, fmt.Errorf("--commit-status %s: give the host's address with --commit-status-api", s.CommitStatus))
		}
	default:
		errs = append(errs, fmt.Errorf("--commit-status %q: want github, gitea or gitlab", s.CommitStatus))
	}
	return errors.Join(errs...)
}
