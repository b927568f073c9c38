package node

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi/controlapitest"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/cluster/store"
)

// The status page: one self-contained page, the control API's reads it
// shows and nothing else, and the event stream as Server-Sent Events.
func TestStatusPageHandler(t *testing.T) {
	f := controlapitest.New(t)
	ctl, err := server.New(server.Config{Store: f.Store})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(uiHandler(ctl))
	defer srv.Close()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := get("/")
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(page, `new EventSource("/api/events")`) {
		t.Fatalf("page: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if ext := regexp.MustCompile(`(src|href)=["']?(https?:)?//`).FindString(page); ext != "" {
		t.Errorf("the page loads an external asset: %s", ext)
	}
	if resp, body := get("/api/services"); resp.StatusCode != 200 || !strings.Contains(body, `"shop_web"`) {
		t.Errorf("/api/services: %s %.200s", resp.Status, body)
	}
	for _, path := range []string{"/api/secrets", "/api/registries", "/api/services/shop_web/scale"} {
		if resp, _ := get(path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s, want 404 (not on the status page)", path, resp.Status)
		}
	}
	if resp, err := http.Post(srv.URL+"/api/services/shop_web/scale", "application/json", strings.NewReader(`{"replicas":9}`)); err != nil || resp.StatusCode != http.StatusMethodNotAllowed && resp.StatusCode != http.StatusNotFound {
		t.Errorf("a write through the page: %v %v", resp.Status, err)
	}

	// A change reaches the page's event stream.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/api/events", nil)
	es, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer es.Body.Close()
	if es.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("events: %s", es.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(es.Body)
	if !sc.Scan() || !strings.HasPrefix(sc.Text(), ":") { // the stream's comment: it is up
		t.Fatalf("events: %q", sc.Text())
	}
	if _, err := f.Store.Update(ctx, func(tx store.Tx) error {
		tk, err := store.Get[api.Task](tx, "t-web-1")
		if err != nil {
			return err
		}
		tk.Status.Message, tk.Status.Timestamp = "moved on", tk.Status.Timestamp.Add(time.Second)
		return tx.Update(tk)
	}); err != nil {
		t.Fatal(err)
	}
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "data: ") && strings.Contains(l, `"moved on"`) {
			return
		}
	}
	t.Errorf("the change never reached the event stream: %v", sc.Err())
}
