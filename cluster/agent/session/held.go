package session

import (
	"fmt"
	"sort"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/dispatcher/wire"
)

// Held is the assignment set a session's messages add up to: the last
// complete set with every delta since applied (wire.AssignmentSet). The
// zero value holds nothing and takes a complete set first.
type Held struct {
	seq        uint64
	complete   bool // a complete set arrived
	tasks      map[string]*api.Task
	secrets    map[string]wire.Plaintext
	configs    map[string][]byte
	registries map[string]wire.RegistryLogin
}

// Change is what one set changed of a Held: everything (Complete), or the
// tasks added or changed (with those whose secret or config payloads
// changed) and the tasks removed.
type Change struct {
	Complete bool
	Tasks    []string
	Removed  []string
	// Registries: the registry logins changed.
	Registries bool
}

// Apply applies a set. A delta must follow the set it was made against
// (its Seq is the previous one's plus one) and a complete set; otherwise
// Apply changes nothing and fails: the session is to start again.
func (h *Held) Apply(set *wire.AssignmentSet) (Change, error) {
	if !set.Delta {
		h.seq, h.complete = set.Seq, true
		h.tasks = make(map[string]*api.Task, len(set.Tasks))
		h.secrets = make(map[string]wire.Plaintext, len(set.Secrets))
		h.configs = make(map[string][]byte, len(set.Configs))
		h.registries = make(map[string]wire.RegistryLogin, len(set.Registries))
		for _, t := range set.Tasks {
			if t != nil {
				h.tasks[t.ID] = t
			}
		}
		for _, s := range set.Secrets {
			h.secrets[s.Name] = s.Data
		}
		for _, cf := range set.Configs {
			h.configs[cf.Name] = cf.Data
		}
		for _, r := range set.Registries {
			h.registries[r.Host] = r
		}
		return Change{Complete: true, Registries: true}, nil
	}
	if !h.complete {
		return Change{}, fmt.Errorf("%w: a delta (set %d) before a complete set", ErrAssignmentOrder, set.Seq)
	}
	if set.Seq != h.seq+1 {
		return Change{}, fmt.Errorf("%w: set %d follows set %d", ErrAssignmentOrder, set.Seq, h.seq)
	}
	h.seq = set.Seq
	var ch Change
	files := map[string]bool{} // secret and config keys whose payload changed
	for _, s := range set.Secrets {
		h.secrets[s.Name] = s.Data
		files["s"+s.Name] = true
	}
	for _, k := range set.RemovedSecrets {
		delete(h.secrets, k)
		files["s"+k] = true
	}
	for _, cf := range set.Configs {
		h.configs[cf.Name] = cf.Data
		files["c"+cf.Name] = true
	}
	for _, k := range set.RemovedConfigs {
		delete(h.configs, k)
		files["c"+k] = true
	}
	for _, r := range set.Registries {
		h.registries[r.Host] = r
		ch.Registries = true
	}
	for _, host := range set.RemovedRegistries {
		delete(h.registries, host)
		ch.Registries = true
	}
	changed := map[string]bool{}
	for _, t := range set.Tasks {
		if t != nil {
			h.tasks[t.ID] = t
			changed[t.ID] = true
		}
	}
	for _, id := range set.RemovedTasks {
		if _, ok := h.tasks[id]; ok {
			delete(h.tasks, id)
			delete(changed, id)
			ch.Removed = append(ch.Removed, id)
		}
	}
	if len(files) > 0 {
		for id, t := range h.tasks {
			if usesAny(t, files) {
				changed[id] = true
			}
		}
	}
	for id := range changed {
		ch.Tasks = append(ch.Tasks, id)
	}
	sort.Strings(ch.Tasks)
	sort.Strings(ch.Removed)
	return ch, nil
}

func usesAny(t *api.Task, files map[string]bool) bool {
	for _, r := range t.Spec.Container.Secrets {
		if files["s"+r.Key()] {
			return true
		}
	}
	for _, r := range t.Spec.Container.Configs {
		if files["c"+r.Key()] {
			return true
		}
	}
	return false
}

// Assignments is the whole set as the agent takes it, by task ID.
func (h *Held) Assignments() []agent.Assignment {
	ids := make([]string, 0, len(h.tasks))
	for id := range h.tasks {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]agent.Assignment, 0, len(ids))
	for _, id := range ids {
		out = append(out, h.assignment(h.tasks[id]))
	}
	return out
}

// assignment is t with the payloads of the secrets and configs it refers
// to.
func (h *Held) assignment(t *api.Task) agent.Assignment {
	var files agent.Files
	for _, r := range t.Spec.Container.Secrets {
		if data, ok := h.secrets[r.Key()]; ok {
			if files.Secrets == nil {
				files.Secrets = map[string]api.SecretBytes{}
			}
			files.Secrets[r.Name] = api.SecretBytes(data)
		}
	}
	for _, r := range t.Spec.Container.Configs {
		if data, ok := h.configs[r.Key()]; ok {
			if files.Configs == nil {
				files.Configs = map[string][]byte{}
			}
			files.Configs[r.Name] = data
		}
	}
	return agent.Assignment{Task: t, Files: files}
}

// Logins are the registry logins held, by host.
func (h *Held) Logins() map[string]api.RegistryLogin {
	out := make(map[string]api.RegistryLogin, len(h.registries))
	for host, r := range h.registries {
		out[host] = api.RegistryLogin{Username: r.Username, Password: api.SecretBytes(r.Password)}
	}
	return out
}
