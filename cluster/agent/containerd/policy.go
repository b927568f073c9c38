package containerd

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/gitorc/gitorc/cluster/api"
)

// ErrNotAllowed: the task needs what this node's policy does not allow
// (Config.Policy). The task is rejected; the managers' scheduler should not
// have sent it (its policy filter reads the policy the node reports), so
// this is defense in depth against a manager, or a store, that lies.
var ErrNotAllowed = errors.New("not allowed by this node's policy")

// checkPolicy refuses a task whose container needs what the node's policy
// does not grant. A bind source that is allowed as written must also be
// allowed once its symbolic links are resolved: /srv/data/x -> / binds /.
func (e *Executor) checkPolicy(t *api.Task) error {
	p := e.cfg.Policy
	var errs []error
	for _, n := range api.Needs(&t.Spec.Container) {
		if !p.Allows(n) {
			errs = append(errs, fmt.Errorf("task.container.%s: %s: %w (gitorc daemon %s)", n.Field, n, ErrNotAllowed, n.Flag()))
			continue
		}
		if n.Kind != api.NeedBind {
			continue
		}
		real, err := filepath.EvalSymlinks(n.Value)
		if err != nil {
			continue // userMounts reports a missing source
		}
		if !api.AllowsPath(p.AllowBinds, real) {
			errs = append(errs, fmt.Errorf("task.container.%s: %s resolves to %s: %w (gitorc daemon %s)", n.Field, n, real, ErrNotAllowed, n.Flag()))
		}
	}
	return errors.Join(errs...)
}
