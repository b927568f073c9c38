package main

import (
	"encoding/json"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
)

// gitorc leave waits for the node's answer as long as the node bounds its
// drain, not the shorter bound of other calls: a leave slowed by a loaded
// machine used to fail in the CLI (Client.Timeout exceeded) while the node
// went on leaving.
func TestLeaveOutwaitsTheCallTimeout(t *testing.T) {
	old := callTimeout
	callTimeout = 50 * time.Millisecond
	t.Cleanup(func() { callTimeout = old })
	socket := filepath.Join(t.TempDir(), "gitorc.sock")
	ln, err := net.Listen("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/leave", func(w http.ResponseWriter, r *http.Request) {
		<-time.After(8 * callTimeout) // the containers take their time to stop
		_ = json.NewEncoder(w).Encode(controlapi.LeaveReport{Node: "n1", Role: api.RoleWorker})
	})
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) {
		<-time.After(8 * callTimeout)
		_ = json.NewEncoder(w).Encode([]any{})
	})
	srv := &http.Server{Handler: mux}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	// Another call is cut at callTimeout: the bound is real.
	if _, errOut, code := run(t, "service", "ls", "--socket", socket); code == 0 || !strings.Contains(errOut, "Timeout") {
		t.Fatalf("service ls against a slow daemon: exit %d %s: want the call timeout", code, errOut)
	}
	out, errOut, code := run(t, "leave", "--socket", socket)
	if code != 0 || !strings.Contains(out, "node n1 left the cluster") {
		t.Errorf("leave: exit %d\n%s%s", code, out, errOut)
	}
}
