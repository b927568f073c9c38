package controlapi

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// LabelChangedBy is set on a service changed through this API, naming the
// operation ("scale 5", "rollback", "force update"). The spec change itself
// is what makes the GitOps loop report drift; the label says why.
const LabelChangedBy = "gitorc.changed-by"

// Node is a node as the API shows it.
type Node struct {
	api.Node
	// Name is the spec name, or the hostname when it has none.
	Name string `json:"name"`
	// Tasks counts the tasks meant to run on the node.
	Tasks int `json:"tasks"`
	// Policy is what the node lets containers have, defaults included
	// (Description.Policy holds only what its --allow-* flags add).
	Policy api.EffectivePolicy `json:"policy"`
}

// NodeUpdate changes what an operator sets on a node; empty fields are kept.
type NodeUpdate struct {
	Availability string            `json:"availability,omitempty"`
	Role         string            `json:"role,omitempty"`
	LabelAdd     map[string]string `json:"label_add,omitempty"`
	LabelRm      []string          `json:"label_rm,omitempty"`
}

// Service is a service with the progress of its tasks.
type Service struct {
	api.Service
	// Running counts tasks that should run and do.
	Running uint64 `json:"running"`
	// Serving counts tasks in the load-balancing set (running, healthy
	// when there is a healthcheck, not draining): those that VIPs and
	// published ports send connections to.
	Serving uint64 `json:"serving"`
	// Desired is the replica count, or the number of nodes of a global service.
	Desired uint64 `json:"desired"`
	// Completed counts tasks of a job that exited successfully.
	Completed uint64 `json:"completed,omitempty"`
}

// Progress summarises the service's rollout, e.g. "updating 4/10, 1 failed";
// "" when no rollout ever ran.
func (s *Service) Progress() string {
	u := s.Update
	if u == nil || u.State == api.UpdateNone {
		return ""
	}
	counts := fmt.Sprintf(" %d/%d", u.Updated, s.Desired)
	if u.Failed > 0 {
		counts += fmt.Sprintf(", %d failed", u.Failed)
	}
	switch u.State {
	case api.UpdateUpdating:
		return "updating" + counts
	case api.UpdateRollbackStarted:
		return "rolling back" + counts
	case api.UpdatePaused, api.UpdateRollbackPaused:
		return u.State.String() + counts
	}
	return u.State.String()
}

// ScaleRequest sets a replicated service's replica count.
type ScaleRequest struct {
	Replicas *uint64 `json:"replicas"`
}

// Task is a task as the API shows it.
type Task struct {
	api.Task
	// NodeName is the name of the node the task is on, if any.
	NodeName string `json:"node_name,omitempty"`
}

// LeaderHeader names, on answers of a follower over the API port, the
// leader's API address: a client retries there when the follower could
// not serve a request (503). Followers forward writes to the leader
// themselves.
const LeaderHeader = "Gitorc-Leader"

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

// Network is a network with what is on it.
type Network struct {
	api.Network
	Services []NetworkService `json:"services"`
	// Tasks are the tasks on the network that hold an address and have
	// not ended.
	Tasks []NetworkTask `json:"tasks"`
}

// NetworkService is a service on a network: the names it answers to
// there (its short name in its stack, then its aliases) and its VIP.
type NetworkService struct {
	Name    string   `json:"name"`
	Aliases []string `json:"aliases,omitempty"`
	Mode    string   `json:"endpoint_mode"`
	VIP     string   `json:"vip,omitempty"`
}

// NetworkTask is a task's address on a network.
type NetworkTask struct {
	ID      string `json:"id"`
	Name    string `json:"name"` // service.slot
	Service string `json:"service"`
	Node    string `json:"node,omitempty"`
	Addr    string `json:"addr"`
	State   string `json:"state"`
	// InLoadBalancer: the task gets the service's traffic (VIP, DNS).
	InLoadBalancer bool `json:"in_load_balancer"`
}

// FileObject is one version of a secret or config, without its content:
// the current one (VersionOf empty), or an earlier one the cluster keeps
// while tasks or a rollback still use it (VersionOf names the object's
// stored name, Name the secret or config it is a version of).
type FileObject struct {
	ID        string `json:"id"`
	Name      string `json:"name"`
	Stack     string `json:"stack,omitempty"`
	DataHash  string `json:"data_hash,omitempty"`
	External  bool   `json:"external,omitempty"`
	VersionOf string `json:"version_of,omitempty"`
	// Services refer to this version in their spec; Tasks counts the
	// tasks not ended that run with it.
	Services  []string  `json:"services,omitempty"`
	Tasks     int       `json:"tasks"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// Registry is a registry login as the API shows it: never its password.
type Registry struct {
	Host      string    `json:"host"`
	Username  string    `json:"username,omitempty"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// RegistryLoginRequest sets a registry's login (PUT /v1/registries/{host}).
type RegistryLoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// CreateFileRequest makes an external secret or config (POST
// /v1/secrets, /v1/configs). Data is the content (base64 in JSON).
type CreateFileRequest struct {
	Name   string            `json:"name"`
	Labels map[string]string `json:"labels,omitempty"`
	Data   []byte            `json:"data"`
}

// CreateNetworkRequest makes an external network (POST /v1/networks).
type CreateNetworkRequest struct {
	Name       string            `json:"name"`
	Labels     map[string]string `json:"labels,omitempty"`
	Internal   bool              `json:"internal,omitempty"`
	Attachable bool              `json:"attachable,omitempty"`
	Subnet     string            `json:"subnet,omitempty"`
}

// Event is one change in the cluster (GET /v1/events, a line each).
type Event struct {
	Time time.Time `json:"time"`
	// Type is service, task, node or sync; "gap" when events were lost.
	Type string `json:"type"`
	// Action is create, update or delete; for a sync, started or
	// finished.
	Action string `json:"action,omitempty"`
	ID     string `json:"id,omitempty"`
	// Name is the service's, service.slot for a task, the node's, or the
	// revision of a sync.
	Name string `json:"name,omitempty"`
	// State is a task's or node's state, a service's rollout state, a
	// sync's result.
	State    string `json:"state,omitempty"`
	Message  string `json:"message,omitempty"`
	Service  string `json:"service,omitempty"`
	Node     string `json:"node,omitempty"`
	Desired  string `json:"desired,omitempty"`
	Revision string `json:"revision,omitempty"`
	Trigger  string `json:"trigger,omitempty"`
	// Replayed: the object's latest state, sent for --since, not a change
	// seen as it happened.
	Replayed bool `json:"replayed,omitempty"`
}

// Info is GET /v1/info: the node that answered, its role, and the leader.
type Info struct {
	Node     string       `json:"node"`
	Role     api.NodeRole `json:"role"`
	Leader   string       `json:"leader"`
	IsLeader bool         `json:"is_leader"`
	// Recipient is the cluster's age recipient (gitorc seal), when the
	// manager could read the cluster's identity.
	Recipient string `json:"recipient,omitempty"`
}

// SyncReport is GET /v1/sync: the sync state and the latest history.
type SyncReport struct {
	State   api.SyncState    `json:"state"`
	History []api.SyncRecord `json:"history,omitempty"`
	Webhook WebhookReport    `json:"webhook"`
}

// WebhookReport says whether webhooks can be verified, and where the
// manager that answered serves them.
type WebhookReport struct {
	SecretSet bool   `json:"secret_set"`
	Listen    string `json:"listen,omitempty"`
}

// Suspension answers POST /v1/sync/suspend and /v1/sync/resume (and is
// gitorc suspend|resume -o json): whether automatic syncs are now
// suspended.
type Suspension struct {
	Suspended bool `json:"suspended"`
}

// DiffRequest is POST /v1/sync/diff (reconcile.DiffRequest's fields):
// the source's current commit (after a fetch) when both are empty.
type DiffRequest struct {
	// Revision is a commit, full or abbreviated, or a ref the clone holds.
	Revision string `json:"revision,omitempty"`
	// Dir is an absolute directory of stacks on the manager's host.
	Dir string `json:"dir,omitempty"`
}

// Plan is an answer the manager's reconcile packages make and the CLI
// decodes (a reconcile.Diff for POST /v1/sync/diff, a reconcile.Changeset
// for PUT and DELETE /v1/stacks/{name}): controlapi does not import
// reconcile, so it carries them as JSON.
type Plan = json.RawMessage

// RollbackRequest is POST /v1/sync/rollback.
type RollbackRequest struct {
	// Revision is a commit, full or abbreviated, or a ref of the clone.
	Revision string `json:"revision"`
}

// RollbackAnswer is what POST /v1/sync/rollback did: the pin recorded,
// and the sync request that makes the leader apply it.
type RollbackAnswer struct {
	Pin     api.SyncPin `json:"pin"`
	Request string      `json:"request"`
}

// SourcePatch is PATCH /v1/source: the fields to change, nil for those
// kept. The secrets travel only to managers (control socket, or the API
// port's mutual TLS) and become cluster keys.
type SourcePatch struct {
	Repo          *string           `json:"repo,omitempty"`
	Branch        *string           `json:"branch,omitempty"`
	Path          *string           `json:"path,omitempty"`
	Interval      *api.Duration     `json:"interval,omitempty"`
	Revert        *string           `json:"revert,omitempty"`
	SelfHeal      *string           `json:"self_heal,omitempty"`
	Windows       *[]api.SyncWindow `json:"windows,omitempty"`
	WebhookSecret *string           `json:"webhook_secret,omitempty"`
	// Notifications: "off" clears the URL or the commit status. The
	// notify secret and the Git host's token become cluster keys.
	NotifyURL         *string `json:"notify_url,omitempty"`
	CommitStatus      *string `json:"commit_status,omitempty"`
	CommitStatusAPI   *string `json:"commit_status_api,omitempty"`
	CommitStatusRepo  *string `json:"commit_status_repo,omitempty"`
	NotifySecret      *string `json:"notify_secret,omitempty"`
	CommitStatusToken *string `json:"commit_status_token,omitempty"`
	// GitUsername and GitPassword are the repository's https credentials
	// (a cluster key, never in the URL); the password may be a token.
	GitUsername *string `json:"git_username,omitempty"`
	GitPassword *string `json:"git_password,omitempty"`
}

// SourceReport answers PATCH /v1/source: the source now followed.
type SourceReport struct {
	Source           api.SourceSpec `json:"source"`
	WebhookSecretSet bool           `json:"webhook_secret_set"`
	// NotifySecretSet and CommitStatusTokenSet: those keys exist.
	NotifySecretSet      bool `json:"notify_secret_set"`
	CommitStatusTokenSet bool `json:"commit_status_token_set"`
	// GitCredentialsSet: the repository's https credentials are set.
	GitCredentialsSet bool `json:"git_credentials_set"`
}

// DeployRequest is PUT /v1/stacks/{name}: a stack as the CLI read it —
// its desired state (a reconcile.State, as JSON) — and the sealed content
// of its file secrets, which only the managers can open.
type DeployRequest struct {
	Desired json.RawMessage   `json:"desired"`
	Sealed  map[string][]byte `json:"sealed,omitempty"` // secret name → sealed file
}

// TokenReport is GET /v1/tokens/{role} (and POST .../rotate, .../ttl),
// and gitorc token -o json: the role the token admits, the token, and the
// address of the manager that answered, for gitorc join. Rotated (set by
// the CLI) says the old token stopped working.
type TokenReport struct {
	Role    string `json:"role"`
	Token   string `json:"token"`
	Manager string `json:"manager"`
	Rotated bool   `json:"rotated"`
	// Expires is when the token stops admitting nodes; none: never.
	Expires *time.Time `json:"expires,omitempty"`
}

// AdminIssueRequest is POST /v1/admin-certs: a manager signs an admin
// certificate for the CSR.
type AdminIssueRequest struct {
	Name string `json:"name"`
	CSR  string `json:"csr"`
	// TTL is a Go duration ("720h"); empty is ca.DefaultAdminValidity.
	TTL string `json:"ttl,omitempty"`
}

// AdminIssued answers POST /v1/admin-certs: the signed certificate, the
// CA, and where managers are.
type AdminIssued struct {
	AdminCertReport
	Cert     string   `json:"cert"`
	CA       string   `json:"ca"`
	Managers []string `json:"managers"`
}

// AdminCertReport is an admin certificate's record as the API and -o json
// show it (GET /v1/admin-certs, POST /v1/admin-certs/revoke).
type AdminCertReport struct {
	Name      string    `json:"name"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	RevokedAt time.Time `json:"revoked_at,omitzero"`
	// State is valid, expired or revoked.
	State string `json:"state"`
}

// AdminRevokeRequest is POST /v1/admin-certs/revoke: the certificates to
// revoke, by serial, or by name (every certificate of that name).
type AdminRevokeRequest struct {
	Cert string `json:"cert"`
}

// UnlockKeyReport answers GET /v1/unlock-key, POST /v1/unlock-key/rotate
// and POST /v1/autolock.
type UnlockKeyReport struct {
	Autolock bool   `json:"autolock"`
	Key      string `json:"key,omitempty"`
}

// AutolockRequest is POST /v1/autolock.
type AutolockRequest struct {
	Autolock bool `json:"autolock"`
}

// UnlockRequest is POST /v1/unlock, on a locked manager's socket.
type UnlockRequest struct {
	Key string `json:"key"`
}

// UnlockReport answers POST /v1/unlock: the node that starts.
type UnlockReport struct {
	Unlocked bool   `json:"unlocked"`
	Node     string `json:"node"`
}

// LeaveReport answers POST /v1/leave (node-local: the control socket
// only), and is gitorc leave -o json: the node that left, its role, how
// many task containers it removed, whether it removed its network plane,
// and the paths of its data dir (those that exist) that it deletes as it
// stops, just after this answer.
type LeaveReport struct {
	Node         string       `json:"node"`
	Role         api.NodeRole `json:"role"`
	DataDir      string       `json:"data_dir"`
	Containers   int          `json:"containers_removed"`
	NetworkPlane bool         `json:"network_plane_removed"`
	Removes      []string     `json:"removes"`
}

// CAReport is GET /v1/ca and POST /v1/ca/rotate (gitorc ca): the
// cluster's root and a rotation in progress.
type CAReport struct {
	// Root is the digest of the cluster's root (what join tokens pin).
	Root         string          `json:"root"`
	RootNotAfter time.Time       `json:"root_not_after"`
	RotatedAt    time.Time       `json:"rotated_at,omitzero"`
	Rotation     *RotationReport `json:"rotation,omitempty"`
	// Started, in the answer to a rotation, says whether it started one
	// (false: one was running already).
	Started *bool `json:"started,omitempty"`
}

// RotationReport is a root rotation in progress.
type RotationReport struct {
	NewRoot string    `json:"new_root"`
	Started time.Time `json:"started"`
	// Nodes counts the nodes not removed; Done those that showed a
	// certificate of the new root.
	Nodes   int           `json:"nodes"`
	Done    int           `json:"done"`
	Pending []PendingNode `json:"pending"`
}

// PendingNode is a node a rotation waits for.
type PendingNode struct {
	ID       string `json:"id"`
	Hostname string `json:"hostname,omitempty"`
	Role     string `json:"role"`
	State    string `json:"state"`
}

// Event types: what an event is about.
const (
	EventService = "service"
	EventTask    = "task"
	EventNode    = "node"
	EventSync    = "sync"
)

// NodePolicies are the policies of the nodes that are not removed (what
// gitorc stack deploy checks a stack against, at its lines).
func NodePolicies(nodes []Node) []api.NodePolicy {
	var out []api.NodePolicy
	for _, n := range nodes {
		if n.Removed() {
			continue
		}
		var p api.NodePolicy
		if n.Description.Policy != nil {
			p = *n.Description.Policy
		}
		out = append(out, p)
	}
	return out
}
