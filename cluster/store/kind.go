package store

import (
	"fmt"

	"github.com/gitorc/gitorc/cluster/api"
)

// Kind names a type of stored object; each kind is one table.
type Kind uint8

const (
	KindNode Kind = iota + 1
	KindStack
	KindService
	KindTask
	KindNetwork
	KindVolume
	KindSecret
	KindConfig
	KindSyncState
	KindSyncRecord
	KindCluster
	KindAdminCert
)

var kindNames = []string{"", "node", "stack", "service", "task", "network", "volume",
	"secret", "config", "sync_state", "sync_record", "cluster", "admin_cert"}

// Kinds lists every kind, in table order.
func Kinds() []Kind {
	out := make([]Kind, 0, len(kindNames)-1)
	for k := KindNode; int(k) < len(kindNames); k++ {
		out = append(out, k)
	}
	return out
}

func (k Kind) String() string {
	if k.valid() {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k > 0 && int(k) < len(kindNames) }

// uniqueName reports whether two objects of the kind may not share a name.
func (k Kind) uniqueName() bool {
	switch k {
	case KindStack, KindService, KindNetwork, KindVolume, KindSecret, KindConfig:
		return true
	}
	return false
}

// KindOf returns the kind of a stored object type.
func KindOf(obj api.Object) (Kind, error) {
	switch obj.(type) {
	case *api.Node:
		return KindNode, nil
	case *api.Stack:
		return KindStack, nil
	case *api.Service:
		return KindService, nil
	case *api.Task:
		return KindTask, nil
	case *api.Network:
		return KindNetwork, nil
	case *api.Volume:
		return KindVolume, nil
	case *api.Secret:
		return KindSecret, nil
	case *api.Config:
		return KindConfig, nil
	case *api.SyncState:
		return KindSyncState, nil
	case *api.SyncRecord:
		return KindSyncRecord, nil
	case *api.Cluster:
		return KindCluster, nil
	case *api.AdminCert:
		return KindAdminCert, nil
	}
	return 0, fmt.Errorf("%w: %T is not a stored type", ErrInvalid, obj)
}

// newObject returns a zero object of the kind.
func (k Kind) newObject() api.Object {
	switch k {
	case KindNode:
		return new(api.Node)
	case KindStack:
		return new(api.Stack)
	case KindService:
		return new(api.Service)
	case KindTask:
		return new(api.Task)
	case KindNetwork:
		return new(api.Network)
	case KindVolume:
		return new(api.Volume)
	case KindSecret:
		return new(api.Secret)
	case KindConfig:
		return new(api.Config)
	case KindSyncState:
		return new(api.SyncState)
	case KindSyncRecord:
		return new(api.SyncRecord)
	case KindCluster:
		return new(api.Cluster)
	case KindAdminCert:
		return new(api.AdminCert)
	}
	return nil
}

// Keys are the secondary index values of a record. The proposer computes
// them from the object and they travel in the command, so the FSM never
// has to decode objects to apply a transaction.
type Keys struct {
	Name    string `json:"name,omitempty"`
	Stack   string `json:"stack,omitempty"`
	Service string `json:"service,omitempty"`
	Node    string `json:"node,omitempty"`
	Desired string `json:"desired,omitempty"`
}

func keysOf(obj api.Object) Keys {
	switch o := obj.(type) {
	case *api.Node:
		name := o.Spec.Name
		if name == "" {
			name = o.Description.Hostname
		}
		return Keys{Name: name}
	case *api.Stack:
		return Keys{Name: o.Spec.Name, Stack: o.Spec.Name}
	case *api.Service:
		return Keys{Name: o.Spec.Name, Stack: o.Spec.Stack}
	case *api.Task:
		return Keys{Service: o.ServiceID, Node: o.NodeID, Desired: o.DesiredState.String()}
	case *api.Network:
		return Keys{Name: o.Spec.Name, Stack: o.Spec.Stack}
	case *api.Volume:
		return Keys{Name: o.Spec.Name, Stack: o.Spec.Stack}
	case *api.Secret:
		return Keys{Name: o.Spec.Name, Stack: o.Spec.Stack}
	case *api.Config:
		return Keys{Name: o.Spec.Name, Stack: o.Spec.Stack}
	case *api.AdminCert:
		return Keys{Name: o.Name}
	}
	return Keys{}
}
