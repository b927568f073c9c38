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
)

// DefaultMaxBody is GitHub's payload cap.
const DefaultMaxBody = 25 << 20

// Log keys.
const (
	logKeyProvider = "provider"
	logKeyEvent    = "event"
	logKeyDelivery = "delivery"
	logKeyStatus   = "status"
	logKeyOutcome  = "outcome"
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
	// GitLab token. Required.
	Secret []byte
	// Ref is the source's ref, with gitsource.Config.Ref's meaning: a
	// branch or tag name, a full refs/heads/ or refs/tags/ name, an exact
	// commit (no push concerns it) or empty (the remote's HEAD: every
	// push is passed on, the sync's ls-remote decides).
	Ref string
	// MaxBody caps the request body; 0 means DefaultMaxBody.
	MaxBody int64
	// Logger records every delivery with its outcome; nil discards.
	Logger *slog.Logger
	// OnDelivery, when set, is called with every delivery's answer before
	// it is sent (to keep the last deliveries where users look). It must
	// not block for long: the sender is waiting.
	OnDelivery func(ctx context.Context, status int, resp Response)
	// Metrics, when set, counts every delivery (metrics.go).
	Metrics *Metrics
}

var fullCommit = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Validate reports what is wrong with the configuration.
func (c Config) Validate() error {
	var errs []error
	if len(c.Secret) == 0 {
		errs = append(errs, errors.New("webhook secret is empty"))
	}
	if c.MaxBody < 0 {
		errs = append(errs, errors.New("max body is negative"))
	}
	if strings.HasPrefix(c.Ref, "refs/") && !strings.HasPrefix(c.Ref, "refs/heads/") && !strings.HasPrefix(c.Ref, "refs/tags/") {
		errs = append(errs, fmt.Errorf("ref %s: only refs/heads/… and refs/tags/… are followed", c.Ref))
	}
	if len(errs) > 0 {
		return fmt.Errorf("webhook config: %w", errors.Join(errs...))
	}
	return nil
}

// Concerns reports whether a push event is for the configured ref, with
// the reason when it is not.
func (c Config) Concerns(ev Event) (bool, string) {
	if ev.Kind != KindPush {
		return false, "event " + ev.Name + " is not a push"
	}
	ref := c.Ref
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
// last path element.
type Handler struct {
	cfg     Config
	trigger Trigger
	log     *slog.Logger
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
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Handler{cfg: cfg, trigger: t, log: log}, nil
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("provider")
	if name == "" {
		name = path.Base(r.URL.Path)
	}
	p, err := ParseProvider(name)
	if err != nil {
		h.reply(r, w, http.StatusNotFound, Response{Action: ActionRefused, Message: fmt.Sprintf("unknown webhook provider %q (github, gitlab, gitea, generic)", name)})
		return
	}
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reply(r, w, http.StatusMethodNotAllowed, Response{Action: ActionRefused, Provider: string(p), Message: "method " + r.Method + " not allowed: use POST"})
		return
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
	if err := Verify(p, h.cfg.Secret, r.Header, body); err != nil {
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
	if ev.Kind == KindPing {
		resp.Action, resp.Message = ActionIgnored, "ping accepted, no sync"
		h.reply(r, w, http.StatusAccepted, resp)
		return
	}
	if ok, why := h.cfg.Concerns(ev); !ok {
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

func (h *Handler) reply(r *http.Request, w http.ResponseWriter, status int, resp Response) {
	lvl := slog.LevelInfo
	if status >= 400 {
		lvl = slog.LevelWarn
	}
	h.log.Log(r.Context(), lvl, "webhook delivery", logKeyProvider, resp.Provider, logKeyEvent, resp.Event,
		logKeyDelivery, resp.Delivery, logKeyStatus, status, logKeyOutcome, resp.Message)
	h.cfg.Metrics.Observe(resp.Provider, resp.Action)
	if h.cfg.OnDelivery != nil {
		h.cfg.OnDelivery(r.Context(), status, resp)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(resp)
}
