package server

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/logs"
)

// LogStreamer answers a logs query (*logs.Service).
type LogStreamer interface {
	Stream(ctx context.Context, q logs.Query, emit func(api.LogLine) error) error
}

// streamLogs serves GET /v1/logs?service=S|task=T[&tail=N][&since=RFC3339][&follow=1]
// as NDJSON, one api.LogLine a line, flushed as it comes. An error before
// the first line is a JSON error with its code; after, an error line.
func (s *server) streamLogs(w http.ResponseWriter, r *http.Request) {
	fail := func(err error) {
		code := s.codeOf(r, err)
		if errors.Is(err, logs.ErrNotFound) {
			code = http.StatusNotFound
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(controlapi.Error{Error: err.Error()})
	}
	if s.logs == nil {
		fail(statusf(http.StatusNotImplemented, "this manager serves no logs"))
		return
	}
	qv := r.URL.Query()
	q := logs.Query{Service: qv.Get("service"), Task: qv.Get("task")}
	q.Options.Tail = -1
	if v := qv.Get("tail"); v != "" && v != "all" {
		n, err := strconv.Atoi(v)
		if err != nil {
			fail(statusf(http.StatusBadRequest, "invalid tail %q", v))
			return
		}
		q.Options.Tail = n
	}
	if v := qv.Get("since"); v != "" {
		t, err := time.Parse(time.RFC3339Nano, v)
		if err != nil {
			fail(statusf(http.StatusBadRequest, "invalid since %q: want RFC 3339", v))
			return
		}
		q.Options.Since = t
	}
	q.Options.Follow = qv.Get("follow") == "1" || qv.Get("follow") == "true"
	if (q.Service == "") == (q.Task == "") {
		fail(statusf(http.StatusBadRequest, "give service or task"))
		return
	}
	started := false
	flusher, _ := w.(http.Flusher)
	enc := json.NewEncoder(w)
	begin := func() {
		if !started {
			started = true
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
	}
	if q.Options.Follow {
		begin() // the client sees the stream open before the first line
		if flusher != nil {
			flusher.Flush()
		}
	}
	err := s.logs.Stream(r.Context(), q, func(l api.LogLine) error {
		begin()
		if err := enc.Encode(&l); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	switch {
	case err == nil, r.Context().Err() != nil:
		begin()
	case !started:
		fail(err)
	default:
		_ = enc.Encode(&api.LogLine{Time: time.Now(), Error: err.Error()})
	}
}
