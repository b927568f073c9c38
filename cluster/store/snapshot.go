package store

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/raft"
)

// Snapshot stream: JSON values, one per line. First a snapHeader, then a
// snapLine per record and per staged chunked transaction. Secret payloads
// are in records already sealed, so a snapshot holds no plaintext.
const snapFormat = 1

type snapHeader struct {
	Format int    `json:"format"`
	Index  uint64 `json:"index"`
}

type snapLine struct {
	Record *record     `json:"r,omitempty"`
	Staged *snapStaged `json:"s,omitempty"`
}

type snapStaged struct {
	ID txnID `json:"id"`
	stagedTxn
}

type fsmSnapshot struct {
	txn    *memdb.Txn
	index  uint64
	staged []snapStaged
}

var _ raft.FSMSnapshot = (*fsmSnapshot)(nil)

// Snapshot captures the state in O(1) (memdb snapshots are immutable
// trees); Persist writes it out while Apply carries on.
func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	txn, idx := f.view()
	s := &fsmSnapshot{txn: txn, index: idx}
	for id, st := range f.staged {
		s.staged = append(s.staged, snapStaged{ID: id, stagedTxn: stagedTxn{Term: st.Term, Next: st.Next,
			Data: append([]byte(nil), st.Data...)}})
	}
	sort.Slice(s.staged, func(i, j int) bool { return string(s.staged[i].ID[:]) < string(s.staged[j].ID[:]) })
	return s, nil
}

func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		_ = sink.Cancel()
		return fmt.Errorf("persist snapshot: %w", err)
	}
	return sink.Close()
}

func (s *fsmSnapshot) write(w io.Writer) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	enc := json.NewEncoder(bw)
	if err := enc.Encode(snapHeader{Format: snapFormat, Index: s.index}); err != nil {
		return err
	}
	recs, err := records(s.txn)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if err := enc.Encode(snapLine{Record: r}); err != nil {
			return err
		}
	}
	for i := range s.staged {
		if err := enc.Encode(snapLine{Staged: &s.staged[i]}); err != nil {
			return err
		}
	}
	return bw.Flush()
}

func (s *fsmSnapshot) Release() {}

// readSnapshot decodes a snapshot stream into a new database.
func readSnapshot(r io.Reader) (*memdb.MemDB, uint64, map[txnID]*stagedTxn, error) {
	dec := json.NewDecoder(bufio.NewReaderSize(r, 64<<10))
	var h snapHeader
	if err := dec.Decode(&h); err != nil {
		return nil, 0, nil, fmt.Errorf("read snapshot header: %w", err)
	}
	if h.Format != snapFormat {
		return nil, 0, nil, fmt.Errorf("read snapshot: unknown format %d", h.Format)
	}
	db := newMemDB()
	txn := db.Txn(true)
	staged := map[txnID]*stagedTxn{}
	for {
		var line snapLine
		err := dec.Decode(&line)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			txn.Abort()
			return nil, 0, nil, fmt.Errorf("read snapshot: %w", err)
		}
		switch {
		case line.Record != nil:
			if !line.Record.Kind.valid() {
				txn.Abort()
				return nil, 0, nil, fmt.Errorf("read snapshot: record of unknown kind %d", line.Record.Kind)
			}
			if err := txn.Insert(line.Record.Kind.String(), line.Record); err != nil {
				txn.Abort()
				return nil, 0, nil, fmt.Errorf("read snapshot: %w", err)
			}
		case line.Staged != nil:
			st := line.Staged.stagedTxn
			staged[line.Staged.ID] = &st
		}
	}
	txn.Commit()
	return db, h.Index, staged, nil
}

// Restore replaces the whole state with a snapshot's. Every watcher ends
// with ErrResync: the changes between its position and the snapshot are
// not known.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	db, idx, staged, err := readSnapshot(rc)
	if err != nil {
		return err
	}
	f.staged = staged
	f.mu.Lock()
	f.db, f.index = db, idx
	close(f.notify)
	f.notify = make(chan struct{})
	f.hub.closeAll(ErrResync)
	f.mu.Unlock()
	return nil
}
