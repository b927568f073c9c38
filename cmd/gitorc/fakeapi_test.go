package main

import (
	"encoding/json"
	"io"
	"net/http"
	"sync"
	"testing"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/controlapitest"
)

// fakeAPI answers the control API's calls from a table of handlers by
// "METHOD /path" and records the bodies it got, by the same key.
type fakeAPI struct {
	mu     sync.Mutex
	routes map[string]func(body []byte) (int, any)
	got    map[string][]string
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	key := r.Method + " " + r.URL.Path
	f.mu.Lock()
	f.got[key] = append(f.got[key], string(b))
	h := f.routes[key]
	f.mu.Unlock()
	if h == nil {
		w.WriteHeader(http.StatusNotFound)
		_ = json.NewEncoder(w).Encode(controlapi.Error{Error: "no route " + key})
		return
	}
	code, v := h(b)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if s, ok := v.(string); ok && code >= 400 {
		v = controlapi.Error{Error: s}
	}
	_ = json.NewEncoder(w).Encode(v)
}

// bodies are the request bodies the fake got for key.
func (f *fakeAPI) bodies(key string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.got[key]
}

// serveFake serves routes on a socket until the test ends.
func serveFake(t *testing.T, routes map[string]func(body []byte) (int, any)) (*fakeAPI, string) {
	t.Helper()
	t.Setenv("GITORC_HOST", "")
	f := &fakeAPI{routes: routes, got: map[string][]string{}}
	return f, controlapitest.Serve(t, f)
}

// answer is a handler that always gives v with code.
func answer(code int, v any) func([]byte) (int, any) {
	return func([]byte) (int, any) { return code, v }
}
