package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store"
)

// Store is what the API needs of the store; *store.Store satisfies it.
type Store interface {
	View(fn func(store.ReadTx) error) error
	Update(ctx context.Context, fn func(store.Tx) error) (uint64, error)
}

var _ Store = (*store.Store)(nil)

// Config configures the handler.
type Config struct {
	Store Store
	// Now stamps rollouts the API starts (default time.Now).
	Now func() time.Time
	// Logger receives internal errors (default: discarded).
	Logger *slog.Logger
	// Leader returns the leading manager's node ID, shown on its node
	// (nil: the nodes' stored manager status is shown as it is).
	Leader func() string
	// HashSecret is the keyed hash of a secret's content (the cluster
	// identity's), for secrets created here; nil: none can be.
	HashSecret func(ctx context.Context, plain []byte) (string, error)
	// Logs answers GET /v1/logs (nil: 501).
	Logs LogStreamer

	// What the node serves through the API (each nil: its endpoints
	// answer 501). The node implements them (controlapi does not import
	// reconcile, nor the node).
	//
	// Info answers GET /v1/info.
	Info func(ctx context.Context) controlapi.Info
	// Syncer serves the sync endpoints and PATCH /v1/source.
	Syncer Syncer
	// Differ serves POST /v1/sync/diff and /v1/sync/rollback.
	Differ Differ
	// Stacks serves PUT and DELETE /v1/stacks/{name}.
	Stacks StackDeployer
	// Tokens serves /v1/tokens.
	Tokens Tokens
	// AdminCerts serves /v1/admin-certs.
	AdminCerts AdminCerts
	// Autolock serves /v1/unlock-key and /v1/autolock.
	Autolock Autolock
	// CA serves /v1/ca.
	CA CA
}

// Validate reports a missing store.
func (c *Config) Validate() error {
	if c.Store == nil {
		return errors.New("controlapi: Config.Store is required")
	}
	return nil
}

const (
	logKeyErr    = "err"
	logKeyMethod = "method"
	logKeyPath   = "path"
	maxBody      = 1 << 20
	// writeAttempts bounds retries of a read-modify-write that lost a race
	// with a controller (and named no version itself).
	writeAttempts = 5
)

type server struct {
	cfg    Config
	st     Store
	now    func() time.Time
	log    *slog.Logger
	leader func() string
	hash   func(ctx context.Context, plain []byte) (string, error)
	logs   LogStreamer
}

// New returns the API's handler: the endpoints of Register, and a JSON
// 404 for any other path.
func New(cfg Config) (http.Handler, error) {
	s, err := newServer(cfg)
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	s.register(mux)
	mux.HandleFunc("/", s.handle(func(r *http.Request) (any, error) {
		return nil, statusf(http.StatusNotFound, "no endpoint %s %s", r.Method, r.URL.Path)
	}))
	return mux, nil
}

// Register adds every endpoint of the API (doc.go lists them) to mux, for
// a daemon whose control socket serves other endpoints too (leave, the
// profiles); the daemon calls it once per API it serves.
func Register(mux *http.ServeMux, cfg Config) error {
	s, err := newServer(cfg)
	if err != nil {
		return err
	}
	s.register(mux)
	return nil
}

func newServer(cfg Config) (*server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, st: cfg.Store, now: cfg.Now, log: cfg.Logger, leader: cfg.Leader, hash: cfg.HashSecret, logs: cfg.Logs}
	s.fill()
	return s, nil
}

// fill sets the defaults of what the config left out.
func (s *server) fill() {
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
}

func (s *server) register(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/nodes", s.handle(s.listNodes))
	mux.HandleFunc("GET /v1/nodes/{node}", s.handle(s.getNode))
	mux.HandleFunc("POST /v1/nodes/{node}", s.handle(s.updateNode))
	mux.HandleFunc("DELETE /v1/nodes/{node}", s.handle(s.removeNode))
	mux.HandleFunc("GET /v1/services", s.handle(s.listServices))
	mux.HandleFunc("GET /v1/services/{service}", s.handle(s.getService))
	mux.HandleFunc("POST /v1/services/{service}/scale", s.handle(s.scaleService))
	mux.HandleFunc("POST /v1/services/{service}/rollback", s.handle(s.rollbackService))
	mux.HandleFunc("POST /v1/services/{service}/force", s.handle(s.forceService))
	mux.HandleFunc("GET /v1/tasks", s.handle(s.listTasks))
	mux.HandleFunc("GET /v1/logs", s.streamLogs)
	mux.HandleFunc("GET /v1/networks", s.handle(s.listNetworks))
	mux.HandleFunc("GET /v1/networks/{network}", s.handle(s.getNetwork))
	mux.HandleFunc("GET /v1/secrets", s.handle(s.listSecrets))
	mux.HandleFunc("GET /v1/configs", s.handle(s.listConfigs))
	mux.HandleFunc("POST /v1/secrets", s.handle(s.createSecret))
	mux.HandleFunc("DELETE /v1/secrets/{name}", s.handle(s.removeSecret))
	mux.HandleFunc("POST /v1/configs", s.handle(s.createConfig))
	mux.HandleFunc("DELETE /v1/configs/{name}", s.handle(s.removeConfig))
	mux.HandleFunc("POST /v1/networks", s.handle(s.createNetwork))
	mux.HandleFunc("DELETE /v1/networks/{network}", s.handle(s.removeNetwork))
	mux.HandleFunc("GET /v1/events", s.events)
	mux.HandleFunc("GET /v1/registries", s.handle(s.listRegistries))
	mux.HandleFunc("PUT /v1/registries/{host}", s.handle(s.loginRegistry))
	mux.HandleFunc("DELETE /v1/registries/{host}", s.handle(s.logoutRegistry))
	s.registerInfo(mux)
	s.registerSync(mux)
	s.registerDiff(mux)
	s.registerStacks(mux)
	s.registerTokens(mux)
	s.registerAdminCerts(mux)
	s.registerAutolock(mux)
	s.registerCA(mux)
}

// httpError is an error with the status code it answers with.
type httpError struct {
	code int
	msg  string
	err  error // wrapped, if any
}

func (e *httpError) Error() string { return e.msg }
func (e *httpError) Unwrap() error { return e.err }

func statusf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// handle adapts an endpoint that returns a value or an error to JSON.
func (s *server) handle(fn func(*http.Request) (any, error)) http.HandlerFunc {
	return s.handleCode(http.StatusOK, fn)
}

// handleCode is handle answering code on success (202 for a request
// queued).
func (s *server) handleCode(code int, fn func(*http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		v, err := fn(r)
		s.answerCode(w, r, code, v, err)
	}
}

// answer writes v, or err as an error answer.
func (s *server) answer(w http.ResponseWriter, r *http.Request, v any, err error) {
	s.answerCode(w, r, http.StatusOK, v, err)
}

func (s *server) answerCode(w http.ResponseWriter, r *http.Request, code int, v any, err error) {
	if err != nil {
		code = s.codeOf(r, err)
		v = controlapi.Error{Error: err.Error()}
	}
	writeJSON(w, code, v)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func (s *server) codeOf(r *http.Request, err error) int {
	var he *httpError
	switch {
	case errors.As(err, &he):
		return he.code
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, store.ErrVersionConflict), errors.Is(err, store.ErrNameConflict), errors.Is(err, store.ErrExists):
		return http.StatusConflict
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest
	case errors.Is(err, store.ErrNotLeader), errors.Is(err, store.ErrNoLeader), errors.Is(err, store.ErrLocked),
		errors.Is(err, store.ErrClosed), errors.Is(err, store.ErrUncertain):
		return http.StatusServiceUnavailable
	}
	s.log.Error("control api", logKeyMethod, r.Method, logKeyPath, r.URL.Path, logKeyErr, err)
	return http.StatusInternalServerError
}

// decode reads a JSON body into v; an empty body leaves v as it is.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil && !errors.Is(err, io.EOF) {
		return statusf(http.StatusBadRequest, "invalid request body: %v", err)
	}
	return nil
}

// decodeBody reads a JSON body of at most limit bytes into v (strict:
// refusing unknown fields); a bad or missing body answers 400, its error
// after prefix.
func decodeBody(r *http.Request, v any, limit int64, strict bool, prefix string) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, limit))
	if strict {
		dec.DisallowUnknownFields()
	}
	if err := dec.Decode(v); err != nil {
		return &httpError{code: http.StatusBadRequest, msg: prefix + err.Error(), err: err}
	}
	return nil
}

// wantVersion returns ?version=N (0 when absent): a write naming a
// version fails with 409 if the object changed since.
func wantVersion(r *http.Request) (uint64, error) {
	q := r.URL.Query().Get("version")
	if q == "" {
		return 0, nil
	}
	v, err := strconv.ParseUint(q, 10, 64)
	if err != nil {
		return 0, statusf(http.StatusBadRequest, "invalid version %q", q)
	}
	return v, nil
}

func checkVersion(what, name string, want, have uint64) error {
	if want != 0 && want != have {
		return statusf(http.StatusConflict, "%s %s changed since version %d (now %d): read it again", what, name, want, have)
	}
	return nil
}

// write runs a read-modify-write transaction, retrying when a controller
// changed the object in between, unless the caller named a version.
func (s *server) write(r *http.Request, fn func(store.Tx) error) error {
	pinned := r.URL.Query().Has("version")
	var err error
	caughtUp := false
	for range writeAttempts {
		_, err = s.st.Update(r.Context(), fn)
		var he *httpError
		notFound := errors.As(err, &he) && he.code == http.StatusNotFound || errors.Is(err, store.ErrNotFound)
		if notFound && !caughtUp {
			// The object may exist where this manager's replica has not
			// caught up yet (it was just restarted, or cut off): look
			// again once it holds everything the leader has.
			if !s.catchUp(r) {
				return statusf(http.StatusServiceUnavailable, "%v here, and this manager could not reach the leader to check that its copy of the state is current", err)
			}
			caughtUp = true
			continue
		}
		if !errors.Is(err, store.ErrVersionConflict) || pinned {
			return err
		}
		// Lost a race, or read a replica that lags the leader: the next
		// try reads what the leader had when it refused this one.
		caughtUp = s.catchUp(r) || caughtUp
	}
	return err
}

// barrierStore is a Store that can wait until its replica holds every
// write completed anywhere.
type barrierStore interface {
	Barrier(ctx context.Context) error
}

// catchUp waits until the local replica holds every write completed
// before the call; false if the store cannot or the wait failed.
func (s *server) catchUp(r *http.Request) bool {
	b, ok := s.st.(barrierStore)
	return ok && b.Barrier(r.Context()) == nil
}
