package node

import (
	"bufio"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"
)

//go:embed ui/index.html
var uiPage []byte

// uiReads are the control API's reads the page shows: nothing that
// writes, and no secret, config or registry listing.
var uiReads = map[string]bool{"/v1/sync": true, "/v1/sync/history": true, "/v1/services": true,
	"/v1/tasks": true, "/v1/nodes": true}

// uiHandler is the status page: the page itself (embedded, no external
// assets), the control API's reads it shows under /api/, and the event
// stream as Server-Sent Events (/api/events), on which the page fetches
// again what changed.
func uiHandler(ctl http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Content-Security-Policy", "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'")
		_, _ = w.Write(uiPage)
	})
	mux.HandleFunc("GET /api/events", func(w http.ResponseWriter, r *http.Request) {
		uiEvents(ctl, w, r)
	})
	mux.HandleFunc("GET /api/", func(w http.ResponseWriter, r *http.Request) {
		path := "/v1/" + strings.TrimPrefix(r.URL.Path, "/api/")
		if !uiReads[path] {
			http.Error(w, `{"error":"not on the status page"}`, http.StatusNotFound)
			return
		}
		req := r.Clone(r.Context())
		req.URL.Path, req.RequestURI = path, ""
		ctl.ServeHTTP(w, req)
	})
	return mux
}

// uiEvents relays the control API's event stream (NDJSON) as SSE.
func uiEvents(ctl http.Handler, w http.ResponseWriter, r *http.Request) {
	flusher, ok := w.(http.Flusher)
	if !ok {
		http.Error(w, "streaming unsupported", http.StatusInternalServerError)
		return
	}
	pr, pw := newPipeWriter()
	defer pr.Close() // a client gone: the relayed handler's writes fail, and it returns
	req := httptest.NewRequestWithContext(r.Context(), http.MethodGet, "/v1/events?type=service,task,node,sync", nil)
	go func() {
		ctl.ServeHTTP(pw, req)
		pw.close()
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": gitorc events\n\n")
	flusher.Flush()
	sc := bufio.NewScanner(pr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if _, err := fmt.Fprintf(w, "data: %s\n\n", sc.Bytes()); err != nil {
			return
		}
		flusher.Flush()
	}
}

// serveUI serves the status page on the manager's UI address until ctx
// ends.
func (d *daemon) serveUI(ctx context.Context, ctl http.Handler) error {
	ln, err := net.Listen("tcp", d.state.UIListen)
	if err != nil {
		return fmt.Errorf("status page: %w", err)
	}
	srv := &http.Server{Handler: uiHandler(ctl), ReadHeaderTimeout: 10 * time.Second}
	go func() { <-ctx.Done(); _ = srv.Close() }()
	d.log.Info("serving the status page", "listen", ln.Addr().String())
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
