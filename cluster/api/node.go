package api

import "time"

// Node is a host of the cluster.
type Node struct {
	Meta
	Spec        NodeSpec        `json:"spec"`
	Description NodeDescription `json:"description"`
	Status      NodeStatus      `json:"status"`
	// Manager is set on managers.
	Manager *ManagerStatus `json:"manager,omitempty"`
	// Subnet is the node's share of the cluster's task pool (CIDR): its
	// tasks' addresses. The allocator gives it when the node joins and
	// takes it back when the node is removed.
	Subnet string `json:"subnet,omitempty"`
	// SubnetError says why the node has no subnet (its own addresses lie
	// in the cluster's pools, or the task pool is full): no task can be
	// placed on it.
	SubnetError string `json:"subnet_error,omitempty"`
	// RemovedAt is set when an operator removed the node: it stays as a
	// tombstone so that its certificate, valid until it expires, opens
	// nothing (no session, no renewal, no manager call).
	RemovedAt time.Time `json:"removed_at,omitzero"`
}

// Removed reports whether the node was removed from the cluster.
func (n *Node) Removed() bool { return !n.RemovedAt.IsZero() }

// NodeSpec is what an operator sets on a node.
type NodeSpec struct {
	Name         string            `json:"name,omitempty"`
	Role         NodeRole          `json:"role"`
	Availability NodeAvailability  `json:"availability"`
	Labels       map[string]string `json:"labels,omitempty"`
}

// NodeDescription is what a node reports about itself.
type NodeDescription struct {
	Hostname  string    `json:"hostname"`
	Platform  Platform  `json:"platform"`
	Resources Resources `json:"resources"`
	Version   string    `json:"version,omitempty"`
	// WireGuard is the node's overlay endpoint: its public key and UDP
	// port. The private key never leaves the node.
	WireGuard *WireGuardInfo `json:"wireguard,omitempty"`
	// Addrs are the node's own unicast addresses, which the cluster's
	// address pools must not overlap.
	Addrs []string `json:"addrs,omitempty"`
	// Policy is what the node lets tasks have beyond the defaults (its
	// --allow-* flags); nil: the defaults only.
	Policy *NodePolicy `json:"policy,omitempty"`
}

// WireGuardInfo is what other nodes need to reach a node's overlay
// interface; the endpoint's host is the address managers see the node at.
type WireGuardInfo struct {
	PublicKey string `json:"public_key"` // base64, as wg(8) prints it
	Port      uint16 `json:"port"`
}

// NodeStatus is what the managers last heard of a node.
type NodeStatus struct {
	State         NodeState `json:"state"`
	Message       string    `json:"message,omitempty"`
	Addr          string    `json:"addr,omitempty"`
	LastHeartbeat time.Time `json:"last_heartbeat,omitzero"`
	// CertNotBefore and CertNotAfter are the validity of the certificate
	// the node last showed a manager (it checks in every few seconds).
	CertNotBefore time.Time `json:"cert_not_before,omitzero"`
	CertNotAfter  time.Time `json:"cert_not_after,omitzero"`
	// CertRoot is the digest of the root CA that issued that certificate,
	// as the cluster's roots are known to the manager that saw it (gitorc
	// ca rotate waits for every node to show one of the new root).
	CertRoot string `json:"cert_root,omitempty"`
}

// CertRenewalGrace is how long past its renewal point (a third of its
// lifetime left) a node's certificate may be before the node is reported
// as failing to renew it: a node tries every few seconds from then on.
const CertRenewalGrace = time.Minute

// CertRenewalOverdue reports whether the node's certificate is past its
// renewal point by more than CertRenewalGrace: the node cannot renew it
// (it cannot reach a manager, or is refused) and is locked out when it
// expires.
func (s NodeStatus) CertRenewalOverdue(now time.Time) bool {
	if s.CertNotAfter.IsZero() {
		return false
	}
	renewAt := s.CertNotAfter.Add(-s.CertNotAfter.Sub(s.CertNotBefore) / 3)
	return now.After(renewAt.Add(CertRenewalGrace))
}

// ManagerStatus describes a manager's Raft membership.
type ManagerStatus struct {
	RaftID string `json:"raft_id"`
	// Addr is where nodes reach the manager's API (gRPC, mutual TLS).
	Addr string `json:"addr"`
	// RaftAddr is where the other managers reach its Raft transport.
	RaftAddr string `json:"raft_addr,omitempty"`
	Leader   bool   `json:"leader,omitempty"`
	// CaughtUp is set by a joining manager once its replica has caught up
	// with the leader: the leader then makes it a voter.
	CaughtUp bool `json:"caught_up,omitempty"`
}
