package server

import (
	"context"
	"net/http"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
)

// The endpoints whose work is the node's (tokens, admin certificates,
// autolock, leave) or reconcile's (sync, diff, rollback, source, stacks):
// controlapi decodes the request, calls what Config gives it, and answers;
// what it calls lives with the node, through the interfaces below. An
// error made with Errorf or WithStatus answers with its status; others
// as the store's errors do (503 while there is no leader, else 500).

// Syncer is the GitOps loop's side of the sync endpoints (the node's, over
// reconcile's storecluster).
type Syncer interface {
	// Status is GET /v1/sync.
	Status(ctx context.Context) (controlapi.SyncReport, error)
	// History is GET /v1/sync/history: the last limit syncs (all: 0).
	History(ctx context.Context, limit int) ([]api.SyncRecord, error)
	// RequestSync is POST /v1/sync: a manual sync queued for the leader.
	RequestSync(ctx context.Context) (api.SyncRequest, error)
	// SyncRequest is GET /v1/sync/requests/{id}.
	SyncRequest(ctx context.Context, id string) (api.SyncRequest, error)
	// Suspend is POST /v1/sync/suspend (on) and /v1/sync/resume.
	Suspend(ctx context.Context, on bool) (controlapi.Suspension, error)
	// SetSource is PATCH /v1/source.
	SetSource(ctx context.Context, p controlapi.SourcePatch) (controlapi.SourceReport, error)
}

// Differ plans against the cluster with a clone of its source, on any
// manager: POST /v1/sync/diff and /v1/sync/rollback, which resolves the
// revisions the history does not know in that clone.
type Differ interface {
	Diff(ctx context.Context, req controlapi.DiffRequest) (controlapi.Plan, error)
	Rollback(ctx context.Context, req controlapi.RollbackRequest) (controlapi.RollbackAnswer, error)
}

// StackDeployer applies a stack by hand: PUT and DELETE /v1/stacks/{name}.
// A plan refused is a *PlanError (409, with the plan).
type StackDeployer interface {
	DeployStack(ctx context.Context, name string, req controlapi.DeployRequest) (controlapi.Plan, error)
	RemoveStack(ctx context.Context, name string) (controlapi.Plan, error)
}

// PlanError is a stack deploy refused for its plan's problems: answered
// 409 with {"error", "plan"}.
type PlanError struct {
	Err  error
	Plan controlapi.Plan
}

func (e *PlanError) Error() string { return e.Err.Error() }
func (e *PlanError) Unwrap() error { return e.Err }

// Tokens are the cluster's join tokens: GET /v1/tokens/{role}, and POST
// .../rotate and .../ttl. rotate replaces the token; ttl, if not nil,
// sets when it stops admitting nodes (0: never).
type Tokens interface {
	Token(ctx context.Context, role api.NodeRole, rotate bool, ttl *time.Duration) (controlapi.TokenReport, error)
}

// AdminCerts issues, lists and revokes admin certificates:
// /v1/admin-certs.
type AdminCerts interface {
	IssueAdminCert(ctx context.Context, req controlapi.AdminIssueRequest) (controlapi.AdminIssued, error)
	AdminCerts(ctx context.Context) ([]controlapi.AdminCertReport, error)
	RevokeAdminCert(ctx context.Context, cert string) ([]controlapi.AdminCertReport, error)
}

// Autolock is the cluster's unlock key: /v1/unlock-key, /v1/autolock.
type Autolock interface {
	UnlockKey(ctx context.Context) (controlapi.UnlockKeyReport, error)
	RotateUnlockKey(ctx context.Context) (controlapi.UnlockKeyReport, error)
	SetAutolock(ctx context.Context, on bool) (controlapi.UnlockKeyReport, error)
}

// CA is the cluster's root CA: GET /v1/ca, and POST /v1/ca/rotate, which
// starts a root rotation (CAReport.Started false: one runs already).
type CA interface {
	CA(ctx context.Context) (controlapi.CAReport, error)
	RotateCA(ctx context.Context) (controlapi.CAReport, error)
}

// Leaver makes the node leave its cluster: POST /v1/leave, node-local.
type Leaver interface {
	Leave(ctx context.Context, force bool) (controlapi.LeaveReport, error)
}

// WithStatus is err answered with the HTTP status code.
func WithStatus(code int, err error) error {
	if err == nil {
		return nil
	}
	return &httpError{code: code, msg: err.Error(), err: err}
}

// Errorf is an error answered with the HTTP status code.
func Errorf(code int, format string, args ...any) error { return statusf(code, format, args...) }

// errNotServed answers the endpoints of a group the node did not give.
func errNotServed(what string) error {
	return statusf(http.StatusNotImplemented, "this node serves no %s", what)
}
