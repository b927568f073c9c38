package controlapi

import (
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
