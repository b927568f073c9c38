package api

import (
	"fmt"
	"strings"
)

// enumString returns names[v], or a placeholder for out-of-range values.
func enumString[T ~uint8](names []string, v T) string {
	if int(v) < len(names) {
		return names[v]
	}
	return fmt.Sprintf("unknown(%d)", uint8(v))
}

// parseEnum finds s (case-insensitive) in names and reports every valid
// choice when it is absent, so the error tells the user what to write.
func parseEnum[T ~uint8](what string, names []string, s string) (T, error) {
	for i, n := range names {
		if strings.EqualFold(n, s) {
			return T(i), nil
		}
	}
	return 0, fmt.Errorf("invalid %s %q: must be one of %s", what, s, strings.Join(quoteAll(names), ", "))
}

func quoteAll(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = fmt.Sprintf("%q", s)
	}
	return out
}

// ServiceMode is how a service turns into tasks.
type ServiceMode uint8

const (
	ModeReplicated    ServiceMode = iota // a fixed number of slots
	ModeGlobal                           // one task per eligible node
	ModeReplicatedJob                    // run to completion, N completions
	ModeGlobalJob                        // run to completion once per eligible node
)

var serviceModeNames = []string{"replicated", "global", "replicated-job", "global-job"}

func (m ServiceMode) String() string { return enumString(serviceModeNames, m) }

// ParseServiceMode parses a compose deploy.mode value.
func ParseServiceMode(s string) (ServiceMode, error) {
	return parseEnum[ServiceMode]("deploy mode", serviceModeNames, s)
}
func (m ServiceMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }
func (m *ServiceMode) UnmarshalText(b []byte) (err error) {
	*m, err = ParseServiceMode(string(b))
	return err
}

// IsJob reports whether tasks of this mode run to completion.
func (m ServiceMode) IsJob() bool { return m == ModeReplicatedJob || m == ModeGlobalJob }

// IsGlobal reports whether the mode places one task per eligible node.
func (m ServiceMode) IsGlobal() bool { return m == ModeGlobal || m == ModeGlobalJob }

// RestartCondition says when a task that stopped is replaced.
type RestartCondition uint8

const (
	RestartAny       RestartCondition = iota // always (Swarm's default)
	RestartOnFailure                         // only after a non-zero exit
	RestartNone                              // never
)

var restartConditionNames = []string{"any", "on-failure", "none"}

func (c RestartCondition) String() string { return enumString(restartConditionNames, c) }

// ParseRestartCondition parses restart_policy.condition.
func ParseRestartCondition(s string) (RestartCondition, error) {
	return parseEnum[RestartCondition]("restart condition", restartConditionNames, s)
}
func (c RestartCondition) MarshalText() ([]byte, error) { return []byte(c.String()), nil }
func (c *RestartCondition) UnmarshalText(b []byte) (err error) {
	*c, err = ParseRestartCondition(string(b))
	return err
}

// FailureAction is what a rolling update does when too many tasks fail.
type FailureAction uint8

const (
	FailurePause    FailureAction = iota // stop the update and wait (Swarm's default)
	FailureContinue                      // carry on regardless
	FailureRollback                      // roll back to the previous spec
)

var failureActionNames = []string{"pause", "continue", "rollback"}

func (a FailureAction) String() string { return enumString(failureActionNames, a) }

// ParseFailureAction parses update_config.failure_action.
func ParseFailureAction(s string) (FailureAction, error) {
	return parseEnum[FailureAction]("failure action", failureActionNames, s)
}
func (a FailureAction) MarshalText() ([]byte, error) { return []byte(a.String()), nil }
func (a *FailureAction) UnmarshalText(b []byte) (err error) {
	*a, err = ParseFailureAction(string(b))
	return err
}

// UpdateOrder says whether the old task stops before its replacement starts.
type UpdateOrder uint8

const (
	OrderStopFirst  UpdateOrder = iota // Swarm's default
	OrderStartFirst                    // new task healthy before the old one stops
)

var updateOrderNames = []string{"stop-first", "start-first"}

func (o UpdateOrder) String() string { return enumString(updateOrderNames, o) }

// ParseUpdateOrder parses update_config.order.
func ParseUpdateOrder(s string) (UpdateOrder, error) {
	return parseEnum[UpdateOrder]("update order", updateOrderNames, s)
}
func (o UpdateOrder) MarshalText() ([]byte, error) { return []byte(o.String()), nil }
func (o *UpdateOrder) UnmarshalText(b []byte) (err error) {
	*o, err = ParseUpdateOrder(string(b))
	return err
}

// PublishMode says where a published port answers.
type PublishMode uint8

const (
	PublishIngress PublishMode = iota // every node, routed to tasks anywhere
	PublishHost                       // only the nodes running a task
)

var publishModeNames = []string{"ingress", "host"}

func (m PublishMode) String() string { return enumString(publishModeNames, m) }

// ParsePublishMode parses ports[].mode.
func ParsePublishMode(s string) (PublishMode, error) {
	return parseEnum[PublishMode]("port mode", publishModeNames, s)
}
func (m PublishMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }
func (m *PublishMode) UnmarshalText(b []byte) (err error) {
	*m, err = ParsePublishMode(string(b))
	return err
}

// Protocol is a published port's transport protocol.
type Protocol uint8

const (
	ProtocolTCP Protocol = iota
	ProtocolUDP
	ProtocolSCTP
)

var protocolNames = []string{"tcp", "udp", "sctp"}

func (p Protocol) String() string { return enumString(protocolNames, p) }

// ParseProtocol parses ports[].protocol.
func ParseProtocol(s string) (Protocol, error) {
	return parseEnum[Protocol]("protocol", protocolNames, s)
}
func (p Protocol) MarshalText() ([]byte, error) { return []byte(p.String()), nil }
func (p *Protocol) UnmarshalText(b []byte) (err error) {
	*p, err = ParseProtocol(string(b))
	return err
}

// EndpointMode says how a service is reached by name.
type EndpointMode uint8

const (
	EndpointVIP   EndpointMode = iota // one virtual IP, balanced to tasks
	EndpointDNSRR                     // DNS round robin over task IPs
)

var endpointModeNames = []string{"vip", "dnsrr"}

func (m EndpointMode) String() string { return enumString(endpointModeNames, m) }

// ParseEndpointMode parses deploy.endpoint_mode.
func ParseEndpointMode(s string) (EndpointMode, error) {
	return parseEnum[EndpointMode]("endpoint mode", endpointModeNames, s)
}
func (m EndpointMode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }
func (m *EndpointMode) UnmarshalText(b []byte) (err error) {
	*m, err = ParseEndpointMode(string(b))
	return err
}

// MountType is the kind of a container mount.
type MountType uint8

const (
	MountVolume MountType = iota // a named node-local volume
	MountBind                    // a host path
	MountTmpfs                   // a memory-backed filesystem
)

var mountTypeNames = []string{"volume", "bind", "tmpfs"}

func (t MountType) String() string { return enumString(mountTypeNames, t) }

// ParseMountType parses volumes[].type.
func ParseMountType(s string) (MountType, error) {
	return parseEnum[MountType]("mount type", mountTypeNames, s)
}
func (t MountType) MarshalText() ([]byte, error) { return []byte(t.String()), nil }
func (t *MountType) UnmarshalText(b []byte) (err error) {
	*t, err = ParseMountType(string(b))
	return err
}

// NodeRole is a node's part in the cluster.
type NodeRole uint8

const (
	RoleWorker NodeRole = iota
	RoleManager
)

var nodeRoleNames = []string{"worker", "manager"}

func (r NodeRole) String() string { return enumString(nodeRoleNames, r) }

// ParseNodeRole parses a role name.
func ParseNodeRole(s string) (NodeRole, error) {
	return parseEnum[NodeRole]("node role", nodeRoleNames, s)
}
func (r NodeRole) MarshalText() ([]byte, error) { return []byte(r.String()), nil }
func (r *NodeRole) UnmarshalText(b []byte) (err error) {
	*r, err = ParseNodeRole(string(b))
	return err
}

// NodeAvailability is whether the scheduler may use a node.
type NodeAvailability uint8

const (
	AvailabilityActive NodeAvailability = iota // takes new tasks
	AvailabilityPause                          // keeps its tasks, takes no new ones
	AvailabilityDrain                          // its tasks move elsewhere
)

var availabilityNames = []string{"active", "pause", "drain"}

func (a NodeAvailability) String() string { return enumString(availabilityNames, a) }

// ParseNodeAvailability parses an availability name.
func ParseNodeAvailability(s string) (NodeAvailability, error) {
	return parseEnum[NodeAvailability]("availability", availabilityNames, s)
}
func (a NodeAvailability) MarshalText() ([]byte, error) { return []byte(a.String()), nil }
func (a *NodeAvailability) UnmarshalText(b []byte) (err error) {
	*a, err = ParseNodeAvailability(string(b))
	return err
}

// NodeState is what the managers last heard of a node.
type NodeState uint8

const (
	NodeUnknown NodeState = iota
	NodeDown
	NodeReady
	NodeDisconnected
)

var nodeStateNames = []string{"unknown", "down", "ready", "disconnected"}

func (s NodeState) String() string { return enumString(nodeStateNames, s) }

// ParseNodeState parses a node state name.
func ParseNodeState(s string) (NodeState, error) {
	return parseEnum[NodeState]("node state", nodeStateNames, s)
}
func (s NodeState) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
func (s *NodeState) UnmarshalText(b []byte) (err error) {
	*s, err = ParseNodeState(string(b))
	return err
}

// HealthState is the result of a task's healthcheck.
type HealthState uint8

const (
	HealthNone     HealthState = iota // no healthcheck
	HealthStarting                    // within start_period, no verdict yet
	HealthHealthy
	HealthUnhealthy
)

var healthStateNames = []string{"none", "starting", "healthy", "unhealthy"}

func (h HealthState) String() string { return enumString(healthStateNames, h) }

// ParseHealthState parses a health state name.
func ParseHealthState(s string) (HealthState, error) {
	return parseEnum[HealthState]("health state", healthStateNames, s)
}
func (h HealthState) MarshalText() ([]byte, error) { return []byte(h.String()), nil }
func (h *HealthState) UnmarshalText(b []byte) (err error) {
	*h, err = ParseHealthState(string(b))
	return err
}
