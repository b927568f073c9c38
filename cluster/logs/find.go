package logs

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/store"
)

func findService(tx store.ReadTx, ref string) (*api.Service, error) {
	if svc, err := store.Get[api.Service](tx, ref); err == nil {
		return svc, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	byName, err := store.Find[api.Service](tx, store.ByName(ref))
	if err != nil {
		return nil, err
	}
	if len(byName) == 0 {
		return nil, fmt.Errorf("%w: service %q", ErrNotFound, ref)
	}
	return byName[0], nil
}

// findTask finds a task by ID or unique ID prefix.
func findTask(tx store.ReadTx, ref string) (*api.Task, error) {
	if t, err := store.Get[api.Task](tx, ref); err == nil {
		return t, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	all, err := store.Find[api.Task](tx, store.All())
	if err != nil {
		return nil, err
	}
	var found *api.Task
	for _, t := range all {
		if strings.HasPrefix(t.ID, ref) {
			if found != nil {
				return nil, fmt.Errorf("%w: task prefix %q is ambiguous", store.ErrInvalid, ref)
			}
			found = t
		}
	}
	if found == nil {
		return nil, fmt.Errorf("%w: task %q", ErrNotFound, ref)
	}
	return found, nil
}

// sortTasks orders tasks by slot (node for global tasks), then age.
func sortTasks(ts []*task) {
	sort.SliceStable(ts, func(i, j int) bool {
		a, b := ts[i].t, ts[j].t
		if a.Slot != b.Slot {
			return a.Slot < b.Slot
		}
		if ts[i].nodeName != ts[j].nodeName {
			return ts[i].nodeName < ts[j].nodeName
		}
		return a.CreatedAt.Before(b.CreatedAt)
	})
}
