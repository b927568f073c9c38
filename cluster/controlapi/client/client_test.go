package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
)

func answer(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// A follower that cannot serve a call (503) and names the leader: the
// client sends the call again to the leader, body and all.
func TestClientFollowsLeader(t *testing.T) {
	var body string
	leader := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		body = r.Method + " " + r.URL.String() + " " + string(b)
		answer(w, http.StatusOK, controlapi.Service{Running: 3})
	}))
	defer leader.Close()
	follower := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(controlapi.LeaderHeader, leader.Listener.Addr().String())
		answer(w, http.StatusServiceUnavailable, controlapi.Error{Error: "not leader"})
	}))
	defer follower.Close()
	// httptest's servers share one certificate: the leader's client
	// trusts the follower as well.
	tlsCfg := leader.Client().Transport.(*http.Transport).TLSClientConfig
	c := Remote(follower.Listener.Addr().String(), "test", tlsCfg)
	svc, err := c.Scale(context.Background(), "shop web", 5, 7)
	if err != nil {
		t.Fatal(err)
	}
	if svc.Running != 3 {
		t.Errorf("answer %+v", svc)
	}
	if want := `POST /v1/services/shop%20web/scale?version=7 {"replicas":5}`; body != want {
		t.Errorf("the leader got %q, want %q", body, want)
	}
	// Without a leader named, the follower's error is the answer.
	lost := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		answer(w, http.StatusServiceUnavailable, controlapi.Error{Error: "no leader"})
	}))
	defer lost.Close()
	c = Remote(lost.Listener.Addr().String(), "test", lost.Client().Transport.(*http.Transport).TLSClientConfig)
	_, err = c.Nodes(context.Background())
	if err == nil || err.Error() != "no leader" || StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("err = %v", err)
	}
}

// An error answer keeps its body; one without a JSON error names the
// call. Over a control socket, as the CLI calls a local node.
func TestErrorAnswers(t *testing.T) {
	c := serveSocket(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodDelete && r.URL.Path == "/v1/stacks/app" {
			answer(w, http.StatusConflict, map[string]any{"error": "refused", "plan": map[string]any{"problems": []string{"x"}}})
			return
		}
		http.Error(w, "teapot", http.StatusTeapot)
	}))
	_, err := c.RemoveStack(context.Background(), "app")
	var ae *Error
	if !errors.As(err, &ae) || ae.Code != http.StatusConflict || ae.Message != "refused" {
		t.Fatalf("err = %#v", err)
	}
	var ans struct {
		Plan struct{ Problems []string } `json:"plan"`
	}
	if json.Unmarshal(ae.Body, &ans) != nil || len(ans.Plan.Problems) != 1 {
		t.Errorf("body %s", ae.Body)
	}
	_, err = c.Info(context.Background())
	if err == nil || err.Error() != "GET /v1/info: 418 I'm a teapot" || StatusOf(err) != http.StatusTeapot {
		t.Errorf("err = %v", err)
	}
}

// serveSocket serves h on a unix socket until the test ends, and returns
// a client of it.
func serveSocket(t *testing.T, h http.Handler) *Client {
	t.Helper()
	socket := filepath.Join(t.TempDir(), "api.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return Unix(socket)
}

// A call is cut at the client's timeout; WithTimeout lengthens it for one
// client without changing the other.
func TestWithTimeout(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	c := serveSocket(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("force") == "" {
			<-release // the node takes its time to drain
		}
		answer(w, http.StatusOK, controlapi.LeaveReport{Node: "n1"})
	}))
	short := c.WithTimeout(50 * time.Millisecond)
	if _, err := short.Leave(context.Background(), false); err == nil {
		t.Fatal("a call past its timeout returned")
	}
	if c.hc.Timeout != DefaultTimeout {
		t.Errorf("WithTimeout changed the client it copied: %s", c.hc.Timeout)
	}
	if rep, err := c.Leave(context.Background(), true); err != nil || rep.Node != "n1" {
		t.Errorf("leave --force: %+v %v", rep, err)
	}
}

// Calls of a client that could not be set up return why.
func TestFailed(t *testing.T) {
	c := Failed(io.ErrUnexpectedEOF)
	if _, err := c.Services(context.Background()); err != io.ErrUnexpectedEOF {
		t.Errorf("Services = %v", err)
	}
	if _, err := c.Events(context.Background(), nil); err != io.ErrUnexpectedEOF {
		t.Errorf("Events = %v", err)
	}
}

// A remote client given several managers goes to the next when one cannot
// be connected to, and stays with the one that answered; an answer, even
// an error, is never sent on to another manager.
func TestRemoteFailsOver(t *testing.T) {
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close() // connections to it are refused
	var calls []string
	live := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls = append(calls, r.Method+" "+r.URL.Path)
		if r.Method == http.MethodPost {
			answer(w, http.StatusInternalServerError, controlapi.Error{Error: "boom"})
			return
		}
		answer(w, http.StatusOK, []controlapi.Node{{Name: "n1"}})
	}))
	defer live.Close()
	tlsCfg := live.Client().Transport.(*http.Transport).TLSClientConfig
	c := Remote(deadAddr+","+live.Listener.Addr().String(), "test", tlsCfg)
	nodes, err := c.Nodes(context.Background())
	if err != nil {
		t.Fatalf("with the first manager down: %v", err)
	}
	if len(nodes) != 1 || nodes[0].Name != "n1" {
		t.Errorf("nodes %+v", nodes)
	}
	if host, _ := c.target(); host != live.Listener.Addr().String() {
		t.Errorf("the client calls %s next, want the manager that answered", host)
	}
	if _, err := c.UpdateNode(context.Background(), "n1", controlapi.NodeUpdate{}); StatusOf(err) != http.StatusInternalServerError {
		t.Errorf("an error answer: err = %v, want the 500", err)
	}
	if want := []string{"GET /v1/nodes", "POST /v1/nodes/n1"}; !slices.Equal(calls, want) {
		t.Errorf("the live manager got %q, want %q", calls, want)
	}
	c = Remote(deadAddr+","+deadAddr, "test", tlsCfg)
	if _, err := c.Nodes(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot reach any of the managers") {
		t.Errorf("every manager down: err = %v", err)
	}
}
