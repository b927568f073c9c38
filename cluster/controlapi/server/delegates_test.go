package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	apiclient "github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/controlapi/controlapitest"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/cluster/store"
)

// noStore is a store the delegated endpoints never read.
type noStore struct{}

func (noStore) View(func(store.ReadTx) error) error { return errors.New("no store") }
func (noStore) Update(context.Context, func(store.Tx) error) (uint64, error) {
	return 0, errors.New("no store")
}

// fakeNode stands for the node behind the delegated endpoints: it records
// what it was asked and answers what the test set.
type fakeNode struct {
	asked []string
	err   error
}

func (f *fakeNode) note(s string) { f.asked = append(f.asked, s) }

func (f *fakeNode) Status(context.Context) (controlapi.SyncReport, error) {
	f.note("status")
	return controlapi.SyncReport{State: api.SyncState{Revision: "abc"}}, f.err
}
func (f *fakeNode) History(_ context.Context, limit int) ([]api.SyncRecord, error) {
	f.note("history " + time.Duration(limit).String())
	return nil, f.err
}
func (f *fakeNode) RequestSync(context.Context) (api.SyncRequest, error) {
	f.note("sync")
	return api.SyncRequest{ID: "r1"}, f.err
}
func (f *fakeNode) SyncRequest(_ context.Context, id string) (api.SyncRequest, error) {
	f.note("request " + id)
	return api.SyncRequest{ID: id}, f.err
}
func (f *fakeNode) Suspend(_ context.Context, on bool) (controlapi.Suspension, error) {
	f.note("suspend")
	return controlapi.Suspension{Suspended: on}, f.err
}
func (f *fakeNode) SetSource(_ context.Context, p controlapi.SourcePatch) (controlapi.SourceReport, error) {
	f.note("source " + *p.Branch)
	return controlapi.SourceReport{Source: api.SourceSpec{Ref: *p.Branch}}, f.err
}
func (f *fakeNode) DeployStack(_ context.Context, name string, req controlapi.DeployRequest) (controlapi.Plan, error) {
	f.note("deploy " + name + " " + string(req.Desired))
	if f.err != nil {
		return nil, &server.PlanError{Err: f.err, Plan: controlapi.Plan(`{"problems":["x"]}`)}
	}
	return controlapi.Plan(`{"steps":[]}`), nil
}
func (f *fakeNode) RemoveStack(_ context.Context, name string) (controlapi.Plan, error) {
	f.note("rm " + name)
	return controlapi.Plan(`{}`), f.err
}
func (f *fakeNode) Token(_ context.Context, role api.NodeRole, rotate bool, ttl *time.Duration) (controlapi.TokenReport, error) {
	what := "token " + role.String()
	if rotate {
		what += " rotate"
	}
	if ttl != nil {
		what += " ttl " + ttl.String()
	}
	f.note(what)
	return controlapi.TokenReport{Role: role.String(), Rotated: rotate}, f.err
}

func serveDelegates(t *testing.T, f *fakeNode) *apiclient.Client {
	t.Helper()
	h, err := server.New(server.Config{Store: noStore{}, Syncer: f, Stacks: f, Tokens: f,
		Info: func(context.Context) controlapi.Info { return controlapi.Info{Node: "n1", IsLeader: true} }})
	if err != nil {
		t.Fatal(err)
	}
	return apiclient.Unix(controlapitest.Serve(t, h))
}

// The endpoints the node serves through Config reach it with the request
// decoded, through the typed client, and answer what it answers.
func TestDelegatedEndpoints(t *testing.T) {
	f := &fakeNode{}
	c := serveDelegates(t, f)
	ctx := context.Background()
	if info, err := c.Info(ctx); err != nil || info.Node != "n1" || !info.IsLeader {
		t.Errorf("info: %+v %v", info, err)
	}
	if rep, err := c.SyncStatus(ctx); err != nil || rep.State.Revision != "abc" {
		t.Errorf("status: %+v %v", rep, err)
	}
	if req, err := c.Sync(ctx); err != nil || req.ID != "r1" {
		t.Errorf("sync: %+v %v", req, err)
	}
	if req, err := c.SyncRequest(ctx, "r1"); err != nil || req.ID != "r1" {
		t.Errorf("sync request: %+v %v", req, err)
	}
	if s, err := c.Resume(ctx); err != nil || s.Suspended {
		t.Errorf("resume: %+v %v", s, err)
	}
	if hist, err := c.History(ctx, 3); err != nil || hist == nil {
		t.Errorf("history: %v %v (want an empty list, not null)", hist, err)
	}
	branch := "main"
	if rep, err := c.SetSource(ctx, controlapi.SourcePatch{Branch: &branch}); err != nil || rep.Source.Ref != "main" {
		t.Errorf("source: %+v %v", rep, err)
	}
	if plan, err := c.DeployStack(ctx, "shop", controlapi.DeployRequest{Desired: json.RawMessage(`{"services":[]}`)}); err != nil || string(plan) != `{"steps":[]}` {
		t.Errorf("deploy: %s %v", plan, err)
	}
	ttl := time.Hour
	if tok, err := c.RotateToken(ctx, "worker", &ttl); err != nil || !tok.Rotated || tok.Role != "worker" {
		t.Errorf("rotate: %+v %v", tok, err)
	}
	if _, err := c.SetTokenTTL(ctx, "manager", 0); err != nil {
		t.Errorf("ttl: %v", err)
	}
	want := []string{"status", "sync", "request r1", "suspend", "history 3ns", "source main",
		`deploy shop {"services":[]}`, "token worker rotate ttl 1h0m0s", "token manager ttl 0s"}
	if len(f.asked) != len(want) {
		t.Fatalf("the node was asked %q, want %q", f.asked, want)
	}
	for i := range want {
		if f.asked[i] != want[i] {
			t.Errorf("call %d: %q, want %q", i, f.asked[i], want[i])
		}
	}
}

// What the node refuses, and what the API refuses before asking it, come
// back with their status; a group the node does not serve is a 501.
func TestDelegatedErrors(t *testing.T) {
	f := &fakeNode{err: server.Errorf(http.StatusConflict, "no source")}
	c := serveDelegates(t, f)
	ctx := context.Background()
	_, err := c.Sync(ctx)
	if apiclient.StatusOf(err) != http.StatusConflict || err.Error() != "no source" {
		t.Errorf("sync: %v", err)
	}
	// A stack refused carries its plan.
	_, err = c.DeployStack(ctx, "shop", controlapi.DeployRequest{})
	var ae *apiclient.Error
	var ans struct {
		Plan struct{ Problems []string } `json:"plan"`
	}
	if !errors.As(err, &ae) || ae.Code != http.StatusConflict || json.Unmarshal(ae.Body, &ans) != nil || len(ans.Plan.Problems) != 1 {
		t.Errorf("deploy: %v", err)
	}
	// An error without a status is the store's kind: 503 while there
	// is no leader.
	f.err = store.ErrNoLeader
	if _, err := c.SyncStatus(ctx); apiclient.StatusOf(err) != http.StatusServiceUnavailable {
		t.Errorf("status without a leader: %v", err)
	}
	n := len(f.asked)
	negative := -time.Second
	for name, call := range map[string]func() error{
		"bad role": func() error { _, err := c.Token(ctx, "admin"); return err },
		"bad ttl":  func() error { _, err := c.RotateToken(ctx, "worker", &negative); return err },
	} {
		if err := call(); apiclient.StatusOf(err) != http.StatusBadRequest {
			t.Errorf("%s: %v, want a 400", name, err)
		}
	}
	if len(f.asked) != n {
		t.Errorf("the node was asked %q after refusals", f.asked[n:])
	}
	for name, call := range map[string]func() error{
		"diff":       func() error { _, err := c.Diff(ctx, controlapi.DiffRequest{}); return err },
		"rollback":   func() error { _, err := c.Rollback(ctx, "abc"); return err },
		"admin-cert": func() error { _, err := c.AdminCerts(ctx); return err },
		"unlock key": func() error { _, err := c.UnlockKey(ctx); return err },
		"ca":         func() error { _, err := c.CA(ctx); return err },
		"ca rotate":  func() error { _, err := c.RotateCA(ctx); return err },
	} {
		if err := call(); apiclient.StatusOf(err) != http.StatusNotImplemented {
			t.Errorf("%s without the node's side: %v, want a 501", name, err)
		}
	}
}
