package logs

import "github.com/gitorc/gitorc/cluster/api"

// stream is one task's stream in a merge.
type stream struct {
	recs  []api.LogRecord // the batch being merged
	live  bool            // caught up: new lines need not wait for it
	ended bool
}

// merger merges task streams by time. It is pure: the caller feeds it
// batches and ends, and takes lines while Next says one may go.
type merger struct {
	streams map[int]*stream
}

func newMerger() *merger { return &merger{streams: map[int]*stream{}} }

// add starts a stream.
func (m *merger) add(id int) { m.streams[id] = &stream{} }

// feed gives stream id its next batch; the previous one must be used up.
func (m *merger) feed(id int, recs []api.LogRecord, live bool) {
	s := m.streams[id]
	s.recs = recs
	s.live = s.live || live
}

// end ends stream id; its remaining lines still go.
func (m *merger) end(id int) { m.streams[id].ended = true }

// empty reports whether stream id has used up its batch (and is not
// ended): it wants the next one.
func (m *merger) empty(id int) bool {
	s := m.streams[id]
	return s != nil && !s.ended && len(s.recs) == 0
}

// next returns the stream whose head line goes next, or false when a
// stream that is still reading its backlog has nothing to compare with
// (or no stream has a line). Lines without a time go first.
func (m *merger) next() (int, bool) {
	best := -1
	for id, s := range m.streams {
		if len(s.recs) == 0 {
			if !s.ended && !s.live {
				return 0, false
			}
			continue
		}
		if best < 0 || before(s.recs[0], id, m.streams[best].recs[0], best) {
			best = id
		}
	}
	return best, best >= 0
}

func before(a api.LogRecord, ai int, b api.LogRecord, bi int) bool {
	if !a.Time.Equal(b.Time) {
		return a.Time.Before(b.Time)
	}
	return ai < bi
}

// pop takes stream id's head line.
func (m *merger) pop(id int) api.LogRecord {
	s := m.streams[id]
	r := s.recs[0]
	s.recs = s.recs[1:]
	return r
}

// done reports whether every stream ended and was used up.
func (m *merger) done() bool {
	for _, s := range m.streams {
		if !s.ended || len(s.recs) > 0 {
			return false
		}
	}
	return true
}
