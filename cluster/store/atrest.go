package store

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/raft"
	"golang.org/x/crypto/nacl/secretbox"
)

// Encryption at rest: every Raft log entry and every snapshot is sealed by
// the data key before it reaches the disk (raft.db, snapshots/), not only
// secret payloads: services' environments, labels, the sync state and
// every other object are as unreadable on disk as secrets. Memory and the
// wire (mutual TLS) hold them plain. Entries and snapshots written before
// (plain) are still read: they carry no seal marker.

// sealedMarker starts a sealed log entry's data: plain entries (gitorc's
// commands, Raft's configurations) never start with it.
var sealedMarker = []byte{0xff, 'G', 'E', '1'}

// sealedLogs is a raft.LogStore that seals entries' Data and Extensions.
type sealedLogs struct {
	raft.LogStore
	key *DataKey
}

func (s *sealedLogs) sealField(b []byte) ([]byte, error) {
	if len(b) == 0 {
		return b, nil
	}
	out, err := seal((*[32]byte)(s.key), b)
	if err != nil {
		return nil, err
	}
	return append(append(make([]byte, 0, len(sealedMarker)+len(out)), sealedMarker...), out...), nil
}

func (s *sealedLogs) openField(b []byte) ([]byte, error) {
	if !bytes.HasPrefix(b, sealedMarker) {
		return b, nil // written before encryption at rest
	}
	return open((*[32]byte)(s.key), b[len(sealedMarker):])
}

func (s *sealedLogs) sealed(l *raft.Log) (*raft.Log, error) {
	c := *l
	var err error
	if c.Data, err = s.sealField(l.Data); err != nil {
		return nil, fmt.Errorf("seal raft log %d: %w", l.Index, err)
	}
	if c.Extensions, err = s.sealField(l.Extensions); err != nil {
		return nil, fmt.Errorf("seal raft log %d: %w", l.Index, err)
	}
	return &c, nil
}

func (s *sealedLogs) GetLog(index uint64, l *raft.Log) error {
	if err := s.LogStore.GetLog(index, l); err != nil {
		return err
	}
	var err error
	if l.Data, err = s.openField(l.Data); err != nil {
		return fmt.Errorf("open raft log %d: %w", index, err)
	}
	if l.Extensions, err = s.openField(l.Extensions); err != nil {
		return fmt.Errorf("open raft log %d: %w", index, err)
	}
	return nil
}

func (s *sealedLogs) StoreLog(l *raft.Log) error { return s.StoreLogs([]*raft.Log{l}) }

func (s *sealedLogs) StoreLogs(logs []*raft.Log) error {
	out := make([]*raft.Log, len(logs))
	for i, l := range logs {
		c, err := s.sealed(l)
		if err != nil {
			return err
		}
		out[i] = c
	}
	return s.LogStore.StoreLogs(out)
}

// snapshotMagic starts a sealed snapshot; frames follow, each a
// big-endian uint32 length and a sealed chunk of at most snapshotChunk
// plain bytes.
var snapshotMagic = []byte("GES1")

const snapshotChunk = 64 << 10

// sealedSnapshots is a raft.SnapshotStore whose snapshots are sealed.
type sealedSnapshots struct {
	raft.SnapshotStore
	key *DataKey
}

func (s *sealedSnapshots) Create(version raft.SnapshotVersion, index, term uint64, conf raft.Configuration,
	confIndex uint64, trans raft.Transport) (raft.SnapshotSink, error) {
	sink, err := s.SnapshotStore.Create(version, index, term, conf, confIndex, trans)
	if err != nil {
		return nil, err
	}
	if _, err := sink.Write(snapshotMagic); err != nil {
		_ = sink.Cancel()
		return nil, err
	}
	return &sealedSink{SnapshotSink: sink, key: s.key, buf: make([]byte, 0, snapshotChunk)}, nil
}

func (s *sealedSnapshots) Open(id string) (*raft.SnapshotMeta, io.ReadCloser, error) {
	meta, rc, err := s.SnapshotStore.Open(id)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(rc, snapshotChunk)
	head, err := br.Peek(len(snapshotMagic))
	if err != nil && !errors.Is(err, io.EOF) {
		rc.Close()
		return nil, nil, err
	}
	if !bytes.Equal(head, snapshotMagic) {
		return meta, readCloser{br, rc}, nil // written before encryption at rest
	}
	_, _ = br.Discard(len(snapshotMagic))
	// Raft sends a snapshot to a follower as meta.Size bytes of what Open
	// reads: the plain size, not the file's.
	m := *meta
	m.Size = plainSize(meta.Size)
	return &m, &openedSnapshot{r: br, c: rc, key: s.key}, nil
}

// frameOverhead is what a frame adds to its chunk: its length, the
// nonce and the seal's tag.
const frameOverhead = 4 + nonceSize + secretbox.Overhead

// plainSize is the plain size of a sealed snapshot of sealedSize bytes:
// every frame but the last holds a full chunk.
func plainSize(sealedSize int64) int64 {
	body := sealedSize - int64(len(snapshotMagic))
	if body <= 0 {
		return 0
	}
	full := int64(snapshotChunk + frameOverhead)
	frames := (body + full - 1) / full
	return body - frames*frameOverhead
}

type readCloser struct {
	io.Reader
	io.Closer
}

// sealedSink seals what Raft writes, a chunk at a time.
type sealedSink struct {
	raft.SnapshotSink
	key *DataKey
	buf []byte
	err error
}

func (s *sealedSink) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	n := 0
	for len(p) > 0 {
		k := min(len(p), snapshotChunk-len(s.buf))
		s.buf = append(s.buf, p[:k]...)
		p, n = p[k:], n+k
		if len(s.buf) == snapshotChunk {
			if s.err = s.flush(); s.err != nil {
				return n, s.err
			}
		}
	}
	return n, nil
}

func (s *sealedSink) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	sealed, err := seal((*[32]byte)(s.key), s.buf)
	if err != nil {
		return err
	}
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(sealed)))
	if _, err := s.SnapshotSink.Write(n[:]); err != nil {
		return err
	}
	if _, err := s.SnapshotSink.Write(sealed); err != nil {
		return err
	}
	s.buf = s.buf[:0]
	return nil
}

func (s *sealedSink) Close() error {
	if s.err == nil {
		s.err = s.flush()
	}
	if s.err != nil {
		_ = s.SnapshotSink.Cancel()
		return s.err
	}
	return s.SnapshotSink.Close()
}

// openedSnapshot reads a sealed snapshot's frames.
type openedSnapshot struct {
	r    *bufio.Reader
	c    io.Closer
	key  *DataKey
	left []byte
}

func (o *openedSnapshot) Read(p []byte) (int, error) {
	for len(o.left) == 0 {
		var n [4]byte
		if _, err := io.ReadFull(o.r, n[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return 0, io.EOF
			}
			return 0, fmt.Errorf("read snapshot: %w", err)
		}
		size := binary.BigEndian.Uint32(n[:])
		if size > snapshotChunk+nonceSize+64 {
			return 0, fmt.Errorf("read snapshot: a frame of %d bytes: %w", size, ErrDecrypt)
		}
		frame := make([]byte, size)
		if _, err := io.ReadFull(o.r, frame); err != nil {
			return 0, fmt.Errorf("read snapshot: %w", err)
		}
		plain, err := open((*[32]byte)(o.key), frame)
		if err != nil {
			return 0, fmt.Errorf("read snapshot: %w", err)
		}
		o.left = plain
	}
	k := copy(p, o.left)
	o.left = o.left[k:]
	return k, nil
}

func (o *openedSnapshot) Close() error { return o.c.Close() }
