package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
)

// One method per endpoint, in the order of controlapi's doc.go. Names in
// paths are escaped here; callers pass them as the user gave them.

// get decodes a GET's answer into a T.
func get[T any](ctx context.Context, c *Client, path string) (T, error) {
	var v T
	err := c.call(ctx, http.MethodGet, path, nil, &v)
	return v, err
}

// send sends in with method and decodes the answer into a T.
func send[T any](ctx context.Context, c *Client, method, path string, in any) (T, error) {
	var v T
	err := c.call(ctx, method, path, in, &v)
	return v, err
}

func esc(s string) string { return url.PathEscape(s) }

// withQuery appends q to path when it holds anything.
func withQuery(path string, q url.Values) string {
	if len(q) > 0 {
		return path + "?" + q.Encode()
	}
	return path
}

// versioned appends ?version=N when version is not 0: the write fails
// with 409 if the object changed since.
func versioned(path string, version uint64) string {
	if version == 0 {
		return path
	}
	return path + "?version=" + strconv.FormatUint(version, 10)
}

// Info is GET /v1/info: the node that answers, and the leader.
func (c *Client) Info(ctx context.Context) (controlapi.Info, error) {
	return get[controlapi.Info](ctx, c, "/v1/info")
}

// Nodes is GET /v1/nodes.
func (c *Client) Nodes(ctx context.Context) ([]controlapi.Node, error) {
	return get[[]controlapi.Node](ctx, c, "/v1/nodes")
}

// Node is GET /v1/nodes/{node}: by ID, name or unique ID prefix.
func (c *Client) Node(ctx context.Context, ref string) (controlapi.Node, error) {
	return get[controlapi.Node](ctx, c, "/v1/nodes/"+esc(ref))
}

// ConsistentNode is GET /v1/nodes/{node}?consistent=1: a linearizable
// read, which holds every write completed anywhere before the call.
func (c *Client) ConsistentNode(ctx context.Context, ref string) (controlapi.Node, error) {
	return get[controlapi.Node](ctx, c, "/v1/nodes/"+esc(ref)+"?consistent=1")
}

// UpdateNode is POST /v1/nodes/{node}.
func (c *Client) UpdateNode(ctx context.Context, ref string, u controlapi.NodeUpdate) (controlapi.Node, error) {
	return send[controlapi.Node](ctx, c, http.MethodPost, "/v1/nodes/"+esc(ref), u)
}

// RemoveNode is DELETE /v1/nodes/{node}; force removes a ready node too.
func (c *Client) RemoveNode(ctx context.Context, ref string, force bool) (controlapi.Node, error) {
	path := "/v1/nodes/" + esc(ref)
	if force {
		path += "?force=1"
	}
	return send[controlapi.Node](ctx, c, http.MethodDelete, path, nil)
}

// Services is GET /v1/services.
func (c *Client) Services(ctx context.Context) ([]controlapi.Service, error) {
	return get[[]controlapi.Service](ctx, c, "/v1/services")
}

// Service is GET /v1/services/{service}.
func (c *Client) Service(ctx context.Context, name string) (controlapi.Service, error) {
	return get[controlapi.Service](ctx, c, "/v1/services/"+esc(name))
}

// Scale is POST /v1/services/{service}/scale; version, if not 0, is the
// service's version the change is meant for.
func (c *Client) Scale(ctx context.Context, name string, replicas, version uint64) (controlapi.Service, error) {
	return send[controlapi.Service](ctx, c, http.MethodPost, versioned("/v1/services/"+esc(name)+"/scale", version),
		controlapi.ScaleRequest{Replicas: &replicas})
}

// RollbackService is POST /v1/services/{service}/rollback: the service's
// previous spec.
func (c *Client) RollbackService(ctx context.Context, name string, version uint64) (controlapi.Service, error) {
	return send[controlapi.Service](ctx, c, http.MethodPost, versioned("/v1/services/"+esc(name)+"/rollback", version), nil)
}

// ForceUpdate is POST /v1/services/{service}/force: every task replaced.
func (c *Client) ForceUpdate(ctx context.Context, name string, version uint64) (controlapi.Service, error) {
	return send[controlapi.Service](ctx, c, http.MethodPost, versioned("/v1/services/"+esc(name)+"/force", version), nil)
}

// TaskFilter selects tasks: of a service or a stack, on a node; empty
// fields select all.
type TaskFilter struct {
	Service, Stack, Node string
}

// Tasks is GET /v1/tasks.
func (c *Client) Tasks(ctx context.Context, f TaskFilter) ([]controlapi.Task, error) {
	q := url.Values{}
	for k, v := range map[string]string{"service": f.Service, "stack": f.Stack, "node": f.Node} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return get[[]controlapi.Task](ctx, c, withQuery("/v1/tasks", q))
}

// Logs is GET /v1/logs?service=S|task=T[&tail=N][&since=T][&follow=1]:
// a stream of NDJSON lines (cluster/api.LogLine), read until it ends or ctx
// does. An unknown service or task is a 404 *Error.
func (c *Client) Logs(ctx context.Context, q url.Values) (io.ReadCloser, error) {
	return c.stream(ctx, withQuery("/v1/logs", q))
}

// Events is GET /v1/events[?type=T,...][&since=T]: a stream of NDJSON
// controlapi.Event lines, read until ctx ends.
func (c *Client) Events(ctx context.Context, q url.Values) (io.ReadCloser, error) {
	return c.stream(ctx, withQuery("/v1/events", q))
}

// Networks is GET /v1/networks.
func (c *Client) Networks(ctx context.Context) ([]controlapi.Network, error) {
	return get[[]controlapi.Network](ctx, c, "/v1/networks")
}

// Network is GET /v1/networks/{network}: by ID or name.
func (c *Client) Network(ctx context.Context, ref string) (controlapi.Network, error) {
	return get[controlapi.Network](ctx, c, "/v1/networks/"+esc(ref))
}

// CreateNetwork is POST /v1/networks: an external network.
func (c *Client) CreateNetwork(ctx context.Context, req controlapi.CreateNetworkRequest) (api.Network, error) {
	return send[api.Network](ctx, c, http.MethodPost, "/v1/networks", req)
}

// RemoveNetwork is DELETE /v1/networks/{network}.
func (c *Client) RemoveNetwork(ctx context.Context, ref string) (api.Network, error) {
	return send[api.Network](ctx, c, http.MethodDelete, "/v1/networks/"+esc(ref), nil)
}

// FileKind names the secrets or the configs of the file endpoints.
type FileKind string

// The file kinds: the path segment of their endpoints.
const (
	Secrets FileKind = "secrets"
	Configs FileKind = "configs"
)

// Files is GET /v1/secrets or /v1/configs: every version kept, without
// content.
func (c *Client) Files(ctx context.Context, kind FileKind) ([]controlapi.FileObject, error) {
	return get[[]controlapi.FileObject](ctx, c, "/v1/"+string(kind))
}

// CreateFile is POST /v1/secrets or /v1/configs: an external one.
func (c *Client) CreateFile(ctx context.Context, kind FileKind, req controlapi.CreateFileRequest) (controlapi.FileObject, error) {
	return send[controlapi.FileObject](ctx, c, http.MethodPost, "/v1/"+string(kind), req)
}

// RemoveFile is DELETE /v1/secrets/{name} or /v1/configs/{name}.
func (c *Client) RemoveFile(ctx context.Context, kind FileKind, name string) (controlapi.FileObject, error) {
	return send[controlapi.FileObject](ctx, c, http.MethodDelete, "/v1/"+string(kind)+"/"+esc(name), nil)
}

// Registries is GET /v1/registries: the logins, without passwords.
func (c *Client) Registries(ctx context.Context) ([]controlapi.Registry, error) {
	return get[[]controlapi.Registry](ctx, c, "/v1/registries")
}

// LoginRegistry is PUT /v1/registries/{host}.
func (c *Client) LoginRegistry(ctx context.Context, host string, req controlapi.RegistryLoginRequest) (controlapi.Registry, error) {
	return send[controlapi.Registry](ctx, c, http.MethodPut, "/v1/registries/"+esc(host), req)
}

// LogoutRegistry is DELETE /v1/registries/{host}.
func (c *Client) LogoutRegistry(ctx context.Context, host string) (controlapi.Registry, error) {
	return send[controlapi.Registry](ctx, c, http.MethodDelete, "/v1/registries/"+esc(host), nil)
}

// SyncStatus is GET /v1/sync: the sync state, the latest syncs, webhooks.
func (c *Client) SyncStatus(ctx context.Context) (controlapi.SyncReport, error) {
	return get[controlapi.SyncReport](ctx, c, "/v1/sync")
}

// Sync is POST /v1/sync: a manual sync queued; the answer is its request.
func (c *Client) Sync(ctx context.Context) (api.SyncRequest, error) {
	return send[api.SyncRequest](ctx, c, http.MethodPost, "/v1/sync", struct{}{})
}

// SyncRequest is GET /v1/sync/requests/{id}: with its outcome once done.
func (c *Client) SyncRequest(ctx context.Context, id string) (api.SyncRequest, error) {
	return get[api.SyncRequest](ctx, c, "/v1/sync/requests/"+esc(id))
}

// Suspend is POST /v1/sync/suspend: automatic syncs off.
func (c *Client) Suspend(ctx context.Context) (controlapi.Suspension, error) {
	return send[controlapi.Suspension](ctx, c, http.MethodPost, "/v1/sync/suspend", struct{}{})
}

// Resume is POST /v1/sync/resume: automatic syncs on.
func (c *Client) Resume(ctx context.Context) (controlapi.Suspension, error) {
	return send[controlapi.Suspension](ctx, c, http.MethodPost, "/v1/sync/resume", struct{}{})
}

// History is GET /v1/sync/history[?limit=N]: the syncs, oldest first;
// the last limit ones when limit > 0.
func (c *Client) History(ctx context.Context, limit int) ([]api.SyncRecord, error) {
	path := "/v1/sync/history"
	if limit > 0 {
		path += "?limit=" + strconv.Itoa(limit)
	}
	return get[[]api.SyncRecord](ctx, c, path)
}

// Diff is POST /v1/sync/diff: a reconcile.Diff, as JSON.
func (c *Client) Diff(ctx context.Context, req controlapi.DiffRequest) (controlapi.Plan, error) {
	return send[controlapi.Plan](ctx, c, http.MethodPost, "/v1/sync/diff", req)
}

// Rollback is POST /v1/sync/rollback: the cluster pinned to revision.
func (c *Client) Rollback(ctx context.Context, revision string) (controlapi.RollbackAnswer, error) {
	return send[controlapi.RollbackAnswer](ctx, c, http.MethodPost, "/v1/sync/rollback", controlapi.RollbackRequest{Revision: revision})
}

// SetSource is PATCH /v1/source.
func (c *Client) SetSource(ctx context.Context, p controlapi.SourcePatch) (controlapi.SourceReport, error) {
	return send[controlapi.SourceReport](ctx, c, http.MethodPatch, "/v1/source", p)
}

// DeployStack is PUT /v1/stacks/{name}: the plan applied (a
// reconcile.Changeset, as JSON). A plan refused is an *Error whose Body
// holds {"error", "plan"}.
func (c *Client) DeployStack(ctx context.Context, name string, req controlapi.DeployRequest) (controlapi.Plan, error) {
	return send[controlapi.Plan](ctx, c, http.MethodPut, "/v1/stacks/"+esc(name), req)
}

// RemoveStack is DELETE /v1/stacks/{name}: the plan applied.
func (c *Client) RemoveStack(ctx context.Context, name string) (controlapi.Plan, error) {
	return send[controlapi.Plan](ctx, c, http.MethodDelete, "/v1/stacks/"+esc(name), nil)
}

// Token is GET /v1/tokens/{role}: the join token of worker or manager.
func (c *Client) Token(ctx context.Context, role string) (controlapi.TokenReport, error) {
	return get[controlapi.TokenReport](ctx, c, "/v1/tokens/"+esc(role))
}

// RotateToken is POST /v1/tokens/{role}/rotate: a new token replaces the
// old one; with ttl, it stops admitting nodes ttl from now (0: never).
func (c *Client) RotateToken(ctx context.Context, role string, ttl *time.Duration) (controlapi.TokenReport, error) {
	return send[controlapi.TokenReport](ctx, c, http.MethodPost, withTTL("/v1/tokens/"+esc(role)+"/rotate", ttl), nil)
}

// SetTokenTTL is POST /v1/tokens/{role}/ttl?ttl=D: the token stops
// admitting nodes ttl from now (0: never).
func (c *Client) SetTokenTTL(ctx context.Context, role string, ttl time.Duration) (controlapi.TokenReport, error) {
	return send[controlapi.TokenReport](ctx, c, http.MethodPost, withTTL("/v1/tokens/"+esc(role)+"/ttl", &ttl), nil)
}

func withTTL(path string, ttl *time.Duration) string {
	if ttl == nil {
		return path
	}
	return path + "?ttl=" + ttl.String()
}

// IssueAdminCert is POST /v1/admin-certs.
func (c *Client) IssueAdminCert(ctx context.Context, req controlapi.AdminIssueRequest) (controlapi.AdminIssued, error) {
	return send[controlapi.AdminIssued](ctx, c, http.MethodPost, "/v1/admin-certs", req)
}

// AdminCerts is GET /v1/admin-certs.
func (c *Client) AdminCerts(ctx context.Context) ([]controlapi.AdminCertReport, error) {
	return get[[]controlapi.AdminCertReport](ctx, c, "/v1/admin-certs")
}

// RevokeAdminCert is POST /v1/admin-certs/revoke: by serial, or every
// certificate of a name; the answer lists those revoked.
func (c *Client) RevokeAdminCert(ctx context.Context, cert string) ([]controlapi.AdminCertReport, error) {
	return send[[]controlapi.AdminCertReport](ctx, c, http.MethodPost, "/v1/admin-certs/revoke", controlapi.AdminRevokeRequest{Cert: cert})
}

// UnlockKey is GET /v1/unlock-key.
func (c *Client) UnlockKey(ctx context.Context) (controlapi.UnlockKeyReport, error) {
	return get[controlapi.UnlockKeyReport](ctx, c, "/v1/unlock-key")
}

// RotateUnlockKey is POST /v1/unlock-key/rotate.
func (c *Client) RotateUnlockKey(ctx context.Context) (controlapi.UnlockKeyReport, error) {
	return send[controlapi.UnlockKeyReport](ctx, c, http.MethodPost, "/v1/unlock-key/rotate", nil)
}

// SetAutolock is POST /v1/autolock; turning it on answers the new key.
func (c *Client) SetAutolock(ctx context.Context, on bool) (controlapi.UnlockKeyReport, error) {
	return send[controlapi.UnlockKeyReport](ctx, c, http.MethodPost, "/v1/autolock", controlapi.AutolockRequest{Autolock: on})
}

// Unlock is POST /v1/unlock, to a locked manager's control socket.
func (c *Client) Unlock(ctx context.Context, key string) (controlapi.UnlockReport, error) {
	return send[controlapi.UnlockReport](ctx, c, http.MethodPost, "/v1/unlock", controlapi.UnlockRequest{Key: key})
}

// CA is GET /v1/ca: the cluster's root, and a rotation in progress.
func (c *Client) CA(ctx context.Context) (controlapi.CAReport, error) {
	return get[controlapi.CAReport](ctx, c, "/v1/ca")
}

// RotateCA is POST /v1/ca/rotate: a root rotation started, or the one
// running.
func (c *Client) RotateCA(ctx context.Context) (controlapi.CAReport, error) {
	return send[controlapi.CAReport](ctx, c, http.MethodPost, "/v1/ca/rotate", nil)
}

// Leave is POST /v1/leave[?force=1], to the node's own control socket:
// the node empties itself and stops. It answers once its containers
// stopped: give it a longer timeout (WithTimeout).
func (c *Client) Leave(ctx context.Context, force bool) (controlapi.LeaveReport, error) {
	path := "/v1/leave"
	if force {
		path += "?force=1"
	}
	return send[controlapi.LeaveReport](ctx, c, http.MethodPost, path, nil)
}
