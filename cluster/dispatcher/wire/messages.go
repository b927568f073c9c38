package wire

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// WorkerMessage is what a worker sends: first a Hello, then heartbeats and
// batches of task statuses. Exactly one field is set.
type WorkerMessage struct {
	Hello     *Hello       `json:"hello,omitempty"`
	Heartbeat *Heartbeat   `json:"heartbeat,omitempty"`
	Status    *StatusBatch `json:"status,omitempty"`
	// LogsChunk and LogsEnd answer a manager's LogsRequest (logs.go).
	LogsChunk *LogsChunk `json:"logs_chunk,omitempty"`
	LogsEnd   *LogsEnd   `json:"logs_end,omitempty"`
}

// Hello opens a session. It describes the node; who the node is comes
// from its certificate, never from a message.
type Hello struct {
	Description api.NodeDescription `json:"description"`
	// Deltas says the worker applies incremental assignment sets
	// (AssignmentSet.Delta); a worker that does not say so gets a
	// complete set on every change, as before deltas existed.
	Deltas bool `json:"deltas,omitempty"`
	// HasView says the worker holds a network view from an earlier
	// session (it reconnects): the leader may pace its first view like
	// any other, rather than send it at once. After a leader change every
	// worker reconnects at once, and sending each its whole view then (a
	// view is megabytes in a large cluster) cost the new leader its
	// Raft lease, and the next leader too.
	HasView bool `json:"has_view,omitempty"`
}

// Heartbeat tells the leader the node is alive.
type Heartbeat struct{}

// StatusBatch carries task status changes, at most one per task.
type StatusBatch struct {
	Updates []TaskStatusUpdate `json:"updates"`
}

// TaskStatusUpdate is the latest status of one task as the node sees it.
type TaskStatusUpdate struct {
	TaskID string         `json:"task_id"`
	Status api.TaskStatus `json:"status"`
}

// ManagerMessage is what the leader sends: a Session first, then the
// node's network view and its assignment set (complete first, then, to a
// worker that asked for them, deltas), each whenever it changes. A view always comes before an assignment set made from the
// same store state, so that the node's network plane knows a task before
// the task starts. Exactly one field is set.
type ManagerMessage struct {
	Session     *Session       `json:"session,omitempty"`
	Assignments *AssignmentSet `json:"assignments,omitempty"`
	// Network is the node's whole network view; it replaces the previous
	// one.
	Network *api.NetView `json:"network,omitempty"`
	// encoded, when set, is the message's encoding, made by
	// NetworkMessage: the codec sends it as is.
	encoded []byte
	// LogsRequest, LogsAck and LogsCancel drive the task log requests of
	// managers (logs.go).
	LogsRequest *LogsRequest `json:"logs_request,omitempty"`
	LogsAck     *LogsAck     `json:"logs_ack,omitempty"`
	LogsCancel  *LogsCancel  `json:"logs_cancel,omitempty"`
}

// Validate checks that exactly one field of a manager message is set.
func (m *ManagerMessage) Validate() error {
	n := 0
	for _, set := range []bool{m.Session != nil, m.Assignments != nil, m.Network != nil,
		m.LogsRequest != nil, m.LogsAck != nil, m.LogsCancel != nil} {
		if set {
			n++
		}
	}
	if n != 1 {
		return fmt.Errorf("manager message: %d fields set, want 1", n)
	}
	return nil
}

// NetworkMessage is the message that carries view v, encoded by
// appendJSON, which appends v's JSON encoding (the bytes json.Marshal
// makes of it) to its argument: the leader encodes views from encodings
// they share (netview.Index.AppendViewJSON), and the codec sends the
// message without encoding it again.
func NetworkMessage(v *api.NetView, appendJSON func(dst []byte) ([]byte, error)) (*ManagerMessage, error) {
	b, err := appendJSON([]byte(`{"network":`))
	if err != nil {
		return nil, err
	}
	return &ManagerMessage{Network: v, encoded: append(b, '}')}, nil
}

// Session acknowledges a Hello.
type Session struct {
	// NodeID is the node's ID as the leader read it from its certificate.
	NodeID string `json:"node_id"`
	// HeartbeatPeriod is how often the node must send a Heartbeat; a node
	// silent for the leader's tolerance (three periods by default) is
	// marked down.
	HeartbeatPeriod time.Duration `json:"heartbeat_period"`
}

// AssignmentSet is the tasks assigned to the node, with the payloads of
// the secrets and configs those tasks refer to, by cluster-wide name.
//
// A complete set (Delta false; the first of every session, and every one
// sent to a worker that did not ask for deltas) replaces the previous one
// as a whole. A delta (Delta true) holds only what changed since the
// session's previous set: the tasks added or changed, the IDs of those
// removed, and likewise for secrets, configs and registry logins. Seq
// numbers a session's sets from 1, one by one, so that a worker applies a
// delta only on top of the set it follows (Seq-1) and otherwise ends the
// session, whose next one starts again with a complete set (the stream is
// ordered and reliable, so a gap means a bug, not a loss). As Swarm's
// Assignments stream does, a task whose only change is its status (the
// node's own reports, written back) is not sent again.
type AssignmentSet struct {
	Delta   bool         `json:"delta,omitempty"`
	Seq     uint64       `json:"seq,omitempty"`
	Tasks   []*api.Task  `json:"tasks"`
	Secrets []SecretFile `json:"secrets,omitempty"`
	Configs []ConfigFile `json:"configs,omitempty"`
	// Registries are the logins for the registries the tasks' images
	// come from (gitorc registry login), and only those.
	Registries []RegistryLogin `json:"registries,omitempty"`
	// In a delta: the task IDs, secret and config names and registry
	// hosts no longer in the set.
	RemovedTasks      []string `json:"removed_tasks,omitempty"`
	RemovedSecrets    []string `json:"removed_secrets,omitempty"`
	RemovedConfigs    []string `json:"removed_configs,omitempty"`
	RemovedRegistries []string `json:"removed_registries,omitempty"`
}

// RegistryLogin is a registry's credentials, for the node's pulls.
type RegistryLogin struct {
	Host     string    `json:"host"`
	Username string    `json:"username"`
	Password Plaintext `json:"password"`
}

// SecretFile is a secret's plaintext. Name is the tasks' reference key
// (api.FileRef.Key): the name, with the version when pinned.
type SecretFile struct {
	Name string    `json:"name"`
	Data Plaintext `json:"data"`
}

// ConfigFile is a config's content.
type ConfigFile struct {
	Name string `json:"name"`
	Data []byte `json:"data"`
}

// Plaintext is secret data on the wire. It encodes as base64 JSON, but
// prints, formats and logs as "[redacted]".
type Plaintext []byte

const redacted = "[redacted]"

func (p Plaintext) String() string             { return redacted }
func (p Plaintext) GoString() string           { return redacted }
func (p Plaintext) LogValue() slog.Value       { return slog.StringValue(redacted) }
func (p Plaintext) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(redacted)) }

// MarshalJSON encodes the bytes (base64), for the wire only.
func (p Plaintext) MarshalJSON() ([]byte, error) { return json.Marshal([]byte(p)) }

// UnmarshalJSON decodes what MarshalJSON encoded.
func (p *Plaintext) UnmarshalJSON(b []byte) error {
	var raw []byte
	if err := json.Unmarshal(b, &raw); err != nil {
		return fmt.Errorf("secret data: %w", err)
	}
	*p = raw
	return nil
}
