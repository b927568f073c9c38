package containerd

import (
	"fmt"
	"sync"

	"github.com/gitorc/gitorc/cluster/api"
)

// The replicas of a service on a node share runc shims: containerd's
// runc v2 shim groups containers by the shimGroupAnnotation of their OCI
// spec, as Kubernetes groups a pod's containers. A replica then starts
// without a shim of its own (two process starts and a resident process
// fewer), which is a large part of a start on a busy node. A shim that
// dies takes only that service's tasks on that node with it.
//
// containerd 1.6 does not guard a group's birth and death: two tasks
// created at once race to start the group's shim, and a task created while
// the group's last task is deleted may reach a shim that is shutting down.
// The executor therefore creates and deletes the tasks of one group one at
// a time (shimGroups); the shim serializes its creates anyway. So that a
// deploy of many replicas does not queue behind one shim, a group holds
// Config.TasksPerShim slots (default 25): 50 replicas start through 2
// shims in parallel. Measured (BenchmarkGroupStart_Root, 50 replicas,
// alternated, under load): one shim 3.7–6.5 s, a shim per 25 slots
// 3.3/3.4 s, per 10 slots 3.2/3.4 s; two parallel creates already keep
// the 2 vCPUs busy. Each shim costs ~14 MiB RSS, ~4.5 MiB PSS
// (BenchmarkMemory50_Root: 5 shims 71 / 24 MiB, 2 shims 30 / 12, one
// 17 / 8), so 25 keeps the speed of 10 for 40 MiB RSS less at 50.
const (
	shimGroupAnnotation = "io.containerd.runc.v2.group"
	labelShimGroup      = "gitorc.shim-group"
)

// shimGroup names the shim of a task: one per service, or per perShim
// slots of a service when perShim > 0 (slots 1…perShim share one, and so
// on), or the task's own for a task without a service.
func shimGroup(t *api.Task, perShim int) string {
	if t.ServiceID == "" {
		return "gitorc-" + t.ID
	}
	if perShim > 0 && t.Slot > 0 {
		return fmt.Sprintf("gitorc-%s-%d", t.ServiceID, (t.Slot-1)/uint64(perShim))
	}
	return "gitorc-" + t.ServiceID
}

// shimGroups holds one lock per shim group in use.
type shimGroups struct {
	mu sync.Mutex
	m  map[string]*shimGroupLock
}

type shimGroupLock struct {
	sync.Mutex
	users int // holders and waiters
}

// lock locks the group and returns its unlock; "" (a container made before
// groups) locks nothing.
func (s *shimGroups) lock(group string) (unlock func()) {
	if group == "" {
		return func() {}
	}
	s.mu.Lock()
	if s.m == nil {
		s.m = map[string]*shimGroupLock{}
	}
	l := s.m[group]
	if l == nil {
		l = &shimGroupLock{}
		s.m[group] = l
	}
	l.users++
	s.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		s.mu.Lock()
		if l.users--; l.users == 0 {
			delete(s.m, group)
		}
		s.mu.Unlock()
	}
}
