package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"path"
	"regexp"
	"strings"
	"time"
)

// Log keys.
const (
	logKeyProvider = "provider"
	logKeyEvent    = "event"
	logKeyDelivery = "delivery"
	logKeyStatus   = "status"
	logKeyOutcome  = "outcome"
	logKeyDropped  = "dropped"
)

// Trigger is what the handler calls for a verified push that concerns
// the source. It must not block on the sync itself (queue it, as the
// Coalescer does). Returning an *IgnoredError (see Ignore) answers 202
// "ignored: <reason>"; any other error answers 503.
type Trigger interface {
	Trigger(ctx context.Context, ev Event) error
}

// Config configures a Handler.
type Config struct {
	// Secret is the shared HMAC secret (GitHub, Gitea, generic) and the
	// GitLab token. Required unless Keys is set.
	Secret []byte
	// Ref is the source's ref, with gitsource.Config.Ref's meaning: a
	// branch or tag name, a full refs/heads/ or refs/tags/ name, an exact
	// commit (no push concerns it) or empty (the remote's HEAD: every
	// push is passed on, the sync's ls-remote decides).
	Ref string
	// Keys, when set, gives the secret and the ref for each delivery
	// instead of Secret and Ref (a long-lived handler whose source may
	// change). It is called only for a delivery whose signature header is
	// well formed, before its body is read. A *RefusalError (Refuse)
	// answers with its status; any other error answers 503.
	Keys func(ctx context.Context) (Keys, error)
	// MaxBody caps the request body; 0 means DefaultMaxBody.
	MaxBody int64
	// MaxInFlight is how many deliveries are served at once; 0 means
	// DefaultMaxInFlight. Beyond it a delivery is answered 503 at once,
	// with Retry-After: 1.
	MaxInFlight int
	// ReplayWindow is how long a delivery ID acted on is remembered: a
	// delivery with the same ID within it is answered 202 "ignored" and
	// not acted on again. 0 means DefaultReplayWindow.
	ReplayWindow time.Duration
	// Clock times replays and log throttling; nil means RealClock.
	Clock Clock
	// Logger records deliveries with their outcome, refusals at most one
	// line a second per status and provider (with the count of lines
	// dropped since the last); nil discards.
	Logger *slog.Logger
	// OnDelivery, when set, is called with every delivery's answer before
	// it is sent (to keep the last deliveries where users look); each of
	// its fields is at most MaxFieldBytes. It must not block for long:
	// the sender is waiting.
	OnDelivery func(ctx context.Context, status int, resp Response)
	// Metrics, when set, counts every delivery (metrics.go).
	Metrics *Metrics
}

// Keys are what a delivery is checked against.
type Keys struct {
	Secret []byte
	Ref    string
}

// RefusalError is a Keys error that answers with its status: "this
// cluster follows no Git source" (409), "no webhook secret" (401).
type RefusalError struct {
	Status int
	Reason string
}

func (e *RefusalError) Error() string { return e.Reason }

// Refuse returns a RefusalError.
func Refuse(status int, reason string) error { return &RefusalError{Status: status, Reason: reason} }

var fullCommit = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.Secret) == 0 && c.Keys == nil {
		errs = append(errs, errors.New("webhook secret is empty"))
	}
	if c.MaxBody < 0 || c.MaxInFlight < 0 || c.ReplayWindow < 0 {
		errs = append(errs, errors.New("max body, max in flight and replay window must not be negative"))
	}
	if err := validRef(c.Ref); err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return fmt.Errorf("webhook config: %w", errors.Join(errs...))
	}
	return nil
}

func validRef(ref string) error {
	if strings.HasPrefix(ref, "refs/") && !strings.HasPrefix(ref, "refs/heads/") && !strings.HasPrefix(ref, "refs/tags/") {
		return fmt.Errorf("ref %s: only refs/heads/… and refs/tags/… are followed", ref)
	}
	return nil
}

// Concerns reports whether a push event is for the configured ref, with
// the reason when it is not.
func (c Config) Concerns(ev Event) (bool, string) { return concerns(c.Ref, ev) }

func concerns(ref string, ev Event) (bool, string) {
	if ev.Kind != KindPush {
		return false, "event " + ev.Name + " is not a push"
	}
	switch {
	case ref == "":
		return true, ""
	case fullCommit.MatchString(ref):
		return false, "source is pinned to commit " + ref[:7]
	case strings.HasPrefix(ref, "refs/"):
		if ev.Ref == ref {
			return true, ""
		}
	case ev.Ref == "refs/heads/"+ref || ev.Ref == "refs/tags/"+ref:
		return true, ""
	}
	kind := "ref"
	if ev.Branch() != "" {
		kind = "branch"
	} else if strings.HasPrefix(ev.Ref, "refs/tags/") {
		kind = "tag"
	}
	return false, "push to " + kind + " " + ev.ShortRef() + " (source follows " + strings.TrimPrefix(strings.TrimPrefix(ref, "refs/heads/"), "refs/tags/") + ")"
}

// Response is the JSON body of every answer: it says what will happen.
type Response struct {
	// Action is "sync_queued", "ignored" or "refused".
	Action   string `json:"action"`
	Message  string `json:"message"`
	Provider string `json:"provider,omitempty"`
	Event    string `json:"event,omitempty"`
	Ref      string `json:"ref,omitempty"`
	Commit   string `json:"commit,omitempty"`
	Delivery string `json:"delivery,omitempty"`
}

// Actions.
const (
	ActionQueued  = "sync_queued"
	ActionIgnored = "ignored"
	ActionRefused = "refused"
)

// Handler serves POST /hooks/{provider}. The provider is the request's
// "provider" path value when routed with a ServeMux pattern, else the
// last path element. One Handler serves a listener: its limits (in
// flight, replays, log lines) hold across its deliveries.
type Handler struct {
	cfg     Config
	trigger Trigger
	log     *slog.Logger
	slots   chan struct{}
	replays replays
	logs    logThrottle
}

var _ http.Handler = (*Handler)(nil)

// NewHandler returns a Handler that passes relevant pushes to t.
func NewHandler(cfg Config, t Trigger) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if t == nil {
		return nil, errors.New("webhook: nil trigger")
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.MaxInFlight == 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.ReplayWindow == 0 {
		cfg.ReplayWindow = DefaultReplayWindow
	}
	if cfg.Clock == nil {
		cfg.Clock = RealClock{}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, trigger: t, log: log, slots: make(chan struct{}, cfg.MaxInFlight),
		replays: replays{window: cfg.ReplayWindow}}, nil
}

// ServeHTTP answers one delivery. What it costs before the signature is
// verified is bounded: the signature header is checked first, a
// Content-Length over MaxBody is refused unread, a delivery beyond
// MaxInFlight is answered 503 at once, and at most MaxBody is read.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("provider")
	if name == "" {
		name = path.Base(r.URL.Path)
	}
	p, err := ParseProvider(name)
	if err != nil {
		h.reply(r, w, http.StatusNotFound, Response{Action: ActionRefused, Message: fmt.Sprintf("unknown webhook provider %s (github, gitlab, gitea, generic)", quote(name))})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reply(r, w, http.StatusMethodNotAllowed, Response{Action: ActionRefused, Provider: string(p), Message: "method " + r.Method + " not allowed: use POST"})
		return
	}
	if err := CheckHeader(p, r.Header); err != nil {
		h.reply(r, w, http.StatusUnauthorized, Response{Action: ActionRefused, Provider: string(p), Message: err.Error() + "; nothing changed"})
		return
	}
	if r.ContentLength > h.cfg.MaxBody {
		h.reply(r, w, http.StatusRequestEntityTooLarge, Response{Action: ActionRefused, Provider: string(p), Message: fmt.Sprintf("body larger than %d bytes", h.cfg.MaxBody)})
		return
	}
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		w.Header().Set("Retry-After", "1")
		h.reply(r, w, http.StatusServiceUnavailable, Response{Action: ActionRefused, Provider: string(p),
			Message: fmt.Sprintf("busy: %d deliveries in flight; retry later", h.cfg.MaxInFlight)})
		return
	}
	keys := Keys{Secret: h.cfg.Secret, Ref: h.cfg.Ref}
	if h.cfg.Keys != nil {
		if keys, err = h.cfg.Keys(r.Context()); err == nil {
			err = validRef(keys.Ref)
		}
		if err != nil {
			status := http.StatusServiceUnavailable
			var ref *RefusalError
			if errors.As(err, &ref) {
				status = ref.Status
			}
			h.reply(r, w, status, Response{Action: ActionRefused, Provider: string(p), Message: err.Error()})
			return
		}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.cfg.MaxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			h.reply(r, w, http.StatusRequestEntityTooLarge, Response{Action: ActionRefused, Provider: string(p), Message: fmt.Sprintf("body larger than %d bytes", h.cfg.MaxBody)})
			return
		}
		h.reply(r, w, http.StatusBadRequest, Response{Action: ActionRefused, Provider: string(p), Message: "read body: " + err.Error()})
		return
	}
	if err := Verify(p, keys.Secret, r.Header, body); err != nil {
		h.reply(r, w, http.StatusUnauthorized, Response{Action: ActionRefused, Provider: string(p), Message: err.Error() + "; nothing changed"})
		return
	}
	ev, err := Parse(p, r.Header, body)
	resp := Response{Provider: string(p), Event: ev.Name, Ref: ev.Ref, Commit: ev.Commit, Delivery: ev.Delivery}
	if err != nil {
		resp.Action, resp.Message = ActionRefused, err.Error()
		h.reply(r, w, http.StatusBadRequest, resp)
		return
	}
	if ev.Delivery != "" {
		key := string(p) + "/" + Truncate(ev.Delivery, MaxFieldBytes)
		if at, fresh := h.replays.reserve(key, h.cfg.Clock.Now()); !fresh {
			resp.Action = ActionIgnored
			resp.Message = "ignored: delivery " + ev.Delivery + " was already received at " + at.UTC().Format(time.RFC3339) + " (a replay): not acted on twice"
			h.reply(r, w, http.StatusAccepted, resp)
			return
		}
		defer func() {
			if resp.Action == ActionRefused {
				h.replays.forget(key) // not acted on: a retry is welcome
			}
		}()
	}
	if ev.Kind == KindPing {
		resp.Action, resp.Message = ActionIgnored, "ping accepted, no sync"
		h.reply(r, w, http.StatusAccepted, resp)
		return
	}
	if ok, why := concerns(keys.Ref, ev); !ok {
		resp.Action, resp.Message = ActionIgnored, "ignored: "+why
		h.reply(r, w, http.StatusAccepted, resp)
		return
	}
	if err := h.trigger.Trigger(r.Context(), ev); err != nil {
		var ign *IgnoredError
		if errors.As(err, &ign) {
			resp.Action, resp.Message = ActionIgnored, ign.Error()
			h.reply(r, w, http.StatusAccepted, resp)
			return
		}
		resp.Action, resp.Message = ActionRefused, "sync not queued: "+err.Error()
		h.reply(r, w, http.StatusServiceUnavailable, resp)
		return
	}
	resp.Action, resp.Message = ActionQueued, QueuedMessage(ev)
	h.reply(r, w, http.StatusAccepted, resp)
}

// QueuedMessage is the answer to a push whose sync was queued.
func QueuedMessage(ev Event) string {
	msg := "sync queued for " + ev.ShortRef()
	switch {
	case ev.Deleted:
		return msg + " (ref deleted)"
	case ev.Commit != "":
		return msg + " at " + ev.Commit[:7]
	}
	return msg
}

// reply answers a delivery with resp, bounded: it is logged (refusals
// at most once a second per cause), counted, handed to OnDelivery and
// sent.
func (h *Handler) reply(r *http.Request, w http.ResponseWriter, status int, resp Response) {
	resp = resp.bounded()
	lvl, log, dropped := slog.LevelInfo, true, 0
	if status >= 400 {
		lvl = slog.LevelWarn
		log, dropped = h.logs.allow(causeOf(status, resp.Provider), h.cfg.Clock.Now())
	}
	if log {
		args := []any{logKeyProvider, resp.Provider, logKeyEvent, resp.Event,
			logKeyDelivery, resp.Delivery, logKeyStatus, status, logKeyOutcome, resp.Message}
		if dropped > 0 {
			args = append(args, logKeyDropped, dropped)
		}
		h.log.Log(r.Context(), lvl, "webhook delivery", args...)
	}
	h.cfg.Metrics.Observe(resp.Provider, resp.Action)
	if h.cfg.OnDelivery != nil {
		h.cfg.OnDelivery(r.Context(), status, resp)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}
