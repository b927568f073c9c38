package store

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
)

func testKey(t *testing.T) *DataKey {
	t.Helper()
	k, err := NewDataKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// Log entries are sealed on their way to the log store and opened on
// their way back; entries stored plain before are read as they are.
func TestSealedLogs(t *testing.T) {
	inner := raft.NewInmemStore()
	s := &sealedLogs{LogStore: inner, key: testKey(t)}
	plain := []byte("service env DB_HOST=db.internal")
	if err := s.StoreLogs([]*raft.Log{{Index: 1, Type: raft.LogCommand, Data: plain, Extensions: []byte("ext")}, {Index: 2, Type: raft.LogNoop}}); err != nil {
		t.Fatal(err)
	}
	var raw raft.Log
	if err := inner.GetLog(1, &raw); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(raw.Data, plain) || bytes.Contains(raw.Extensions, []byte("ext")) || !bytes.HasPrefix(raw.Data, sealedMarker) {
		t.Errorf("the stored entry is not sealed: %q", raw.Data)
	}
	var got raft.Log
	if err := s.GetLog(1, &got); err != nil || !bytes.Equal(got.Data, plain) || string(got.Extensions) != "ext" {
		t.Errorf("opened entry %q %q: %v", got.Data, got.Extensions, err)
	}
	if err := s.GetLog(2, &got); err != nil || len(got.Data) != 0 {
		t.Errorf("a no-op entry: %q %v", got.Data, err)
	}
	// Written before encryption at rest.
	if err := inner.StoreLog(&raft.Log{Index: 3, Type: raft.LogCommand, Data: []byte("old plain entry")}); err != nil {
		t.Fatal(err)
	}
	if err := s.GetLog(3, &got); err != nil || string(got.Data) != "old plain entry" {
		t.Errorf("an entry stored plain: %q %v", got.Data, err)
	}
	// Another key does not open it.
	other := &sealedLogs{LogStore: inner, key: testKey(t)}
	if err := other.GetLog(1, &got); err == nil {
		t.Error("an entry opened with another key")
	}
}

// Snapshots are sealed in frames; Open reads them back with their plain
// size (what Raft sends a follower), and a snapshot stored plain before
// is read as it is.
func TestSealedSnapshots(t *testing.T) {
	dir := t.TempDir()
	files, err := raft.NewFileSnapshotStore(dir, 3, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	s := &sealedSnapshots{SnapshotStore: files, key: testKey(t)}
	for _, size := range []int{0, 1, snapshotChunk - 1, snapshotChunk, snapshotChunk + 1, 3*snapshotChunk + 17} {
		want := bytes.Repeat([]byte("labels: team=payments; "), size/23+1)[:size]
		sink, err := s.Create(raft.SnapshotVersionMax, uint64(size+1), 1, raft.Configuration{}, 1, nil)
		if err != nil {
			t.Fatal(err)
		}
		// In uneven writes, as an encoder makes them.
		for rest := want; len(rest) > 0; {
			k := min(len(rest), 1000+len(rest)%7)
			if _, err := sink.Write(rest[:k]); err != nil {
				t.Fatal(err)
			}
			rest = rest[k:]
		}
		if err := sink.Close(); err != nil {
			t.Fatal(err)
		}
		meta, rc, err := s.Open(sink.ID())
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || !bytes.Equal(got, want) || meta.Size != int64(size) {
			t.Errorf("size %d: read %d bytes (meta %d), equal %v, %v", size, len(got), meta.Size, bytes.Equal(got, want), err)
		}
		onDisk, err := os.ReadFile(filepath.Join(dir, "snapshots", sink.ID(), "state.bin"))
		if err != nil {
			t.Fatal(err)
		}
		if size > 0 && bytes.Contains(onDisk, []byte("team=payments")) {
			t.Errorf("size %d: the snapshot is in clear on disk", size)
		}
	}
	// Written before encryption at rest.
	sink, err := files.Create(raft.SnapshotVersionMax, 1<<30, 1, raft.Configuration{}, 1, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = sink.Write([]byte("an old plain snapshot"))
	if err := sink.Close(); err != nil {
		t.Fatal(err)
	}
	_, rc, err := s.Open(sink.ID())
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "an old plain snapshot" {
		t.Errorf("a plain snapshot reads %q", got)
	}
}
