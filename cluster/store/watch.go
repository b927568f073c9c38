package store

import (
	"sync"

	"github.com/gitorc/gitorc/cluster/api"
)

// Event is one committed change. Index is the Raft index of the entry that
// made it, which is also the object's Version after a create or update.
type Event struct {
	Index   uint64
	Action  Action
	Kind    Kind
	ID      string
	Version uint64 // the object's version after the change (before, for a delete)
	rec     *record
}

// Object returns the object as the change left it (as it was, for a
// delete). Each call returns a fresh copy the caller may change. A secret's
// payload is not included: read it with Get.
func (e Event) Object() (api.Object, error) { return e.rec.object() }

// View returns the object as the change left it without copying it: the
// one decoded object every watcher of the event shares, which the caller
// must not modify (nor anything it refers to). It is for consumers that
// only look, such as each of thousands of worker sessions deciding whether
// a change concerns its node, where a copy per session and event is most
// of the leader's work. A secret's payload is not included.
func (e Event) View() (api.Object, error) { return e.rec.shared() }

// Watcher receives committed changes in commit order. It is bounded: when
// it falls more than Config.WatchBuffer events behind, Apply drops it
// rather than wait, closes its channel and Err returns ErrWatchOverflow.
// The consumer then resynchronises with Store.ViewAndWatch.
type Watcher struct {
	ch    chan Event
	kinds map[Kind]bool // nil: every kind
	hub   *hub
	err   error // set before ch is closed; guarded by hub.mu
}

// Events returns the channel of changes; it is closed when the watcher ends.
func (w *Watcher) Events() <-chan Event { return w.ch }

// Err tells why the channel was closed: ErrWatchOverflow, ErrResync (a
// snapshot replaced the state), or ErrClosed (Close, or the store closed).
// It is nil while the watcher is live.
func (w *Watcher) Err() error {
	w.hub.mu.Lock()
	defer w.hub.mu.Unlock()
	return w.err
}

// Close ends the watcher. It is safe to call more than once.
func (w *Watcher) Close() {
	w.hub.mu.Lock()
	defer w.hub.mu.Unlock()
	w.hub.end(w, ErrClosed)
}

// hub fans committed events out to watchers without ever blocking.
type hub struct {
	buf  int
	mu   sync.Mutex
	subs map[*Watcher]struct{}
}

func newHub(buf int) *hub { return &hub{buf: buf, subs: map[*Watcher]struct{}{}} }

func (h *hub) add(kinds []Kind) *Watcher {
	w := &Watcher{ch: make(chan Event, h.buf), hub: h}
	if len(kinds) > 0 {
		w.kinds = map[Kind]bool{}
		for _, k := range kinds {
			w.kinds[k] = true
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subs[w] = struct{}{}
	return w
}

// end closes w with err; h.mu must be held.
func (h *hub) end(w *Watcher, err error) {
	if _, ok := h.subs[w]; !ok {
		return
	}
	delete(h.subs, w)
	w.err = err
	close(w.ch)
}

func (h *hub) publish(events []Event) {
	if len(events) == 0 {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.subs {
		for _, e := range events {
			if w.kinds != nil && !w.kinds[e.Kind] {
				continue
			}
			e.Version = e.rec.Version
			select {
			case w.ch <- e:
				continue
			default:
			}
			h.end(w, ErrWatchOverflow)
			break
		}
	}
}

func (h *hub) closeAll(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.subs {
		h.end(w, err)
	}
}
