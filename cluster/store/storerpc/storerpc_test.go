package storerpc_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/gitorc/gitorc/cluster/store"
	"github.com/gitorc/gitorc/cluster/store/storerpc"
	"google.golang.org/grpc"
)

// fakeLeader answers with a fixed index or error and records commands.
type fakeLeader struct {
	idx uint64
	err error
	got [][]byte
}

func (l *fakeLeader) ApplyCommand(_ context.Context, cmd []byte) (uint64, error) {
	l.got = append(l.got, cmd)
	return l.idx, l.err
}
func (l *fakeLeader) LeaderBarrier(context.Context) (uint64, error) { return l.idx, l.err }

func serve(t *testing.T, l storerpc.Leader, authorize func(context.Context) error) *storerpc.Forwarder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	storerpc.Register(srv, l, authorize)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	f := &storerpc.Forwarder{Resolve: func(raftAddr string) (string, error) {
		if raftAddr != "leader-raft:1" {
			return "", fmt.Errorf("unknown raft address %s", raftAddr)
		}
		return ln.Addr().String(), nil
	}}
	t.Cleanup(func() { _ = f.Close() })
	return f
}

func TestForwardApplyAndBarrier(t *testing.T) {
	l := &fakeLeader{idx: 42}
	f := serve(t, l, nil)
	idx, err := f.Apply(context.Background(), "leader-raft:1", []byte("cmd-1"))
	if err != nil || idx != 42 {
		t.Fatalf("apply = %d, %v; want 42", idx, err)
	}
	if len(l.got) != 1 || string(l.got[0]) != "cmd-1" {
		t.Errorf("leader got %q, want the command once", l.got)
	}
	if idx, err := f.Barrier(context.Background(), "leader-raft:1"); err != nil || idx != 42 {
		t.Errorf("barrier = %d, %v; want 42", idx, err)
	}
	if _, err := f.Apply(context.Background(), "elsewhere:1", nil); err == nil {
		t.Error("apply to an address that does not resolve succeeded")
	}
}

// The leader's errors keep their identity on the follower.
func TestForwardKeepsStoreErrors(t *testing.T) {
	for _, want := range []error{store.ErrVersionConflict, store.ErrNameConflict, store.ErrNotFound,
		store.ErrExists, store.ErrInvalid, store.ErrNoLeader, store.ErrUncertain, store.ErrLocked} {
		t.Run(want.Error(), func(t *testing.T) {
			f := serve(t, &fakeLeader{err: fmt.Errorf("update service web: %w", want)}, nil)
			_, err := f.Apply(context.Background(), "leader-raft:1", []byte("x"))
			if !errors.Is(err, want) || err.Error() != "update service web: "+want.Error() {
				t.Errorf("err = %v, want %v with the leader's text", err, want)
			}
		})
	}
	f := serve(t, &fakeLeader{err: &store.NotLeaderError{Addr: "10.0.0.3:4271"}}, nil)
	_, err := f.Apply(context.Background(), "leader-raft:1", []byte("x"))
	var nl *store.NotLeaderError
	if !errors.As(err, &nl) || nl.Addr != "10.0.0.3:4271" || !errors.Is(err, store.ErrNotLeader) {
		t.Errorf("err = %v, want not leader naming 10.0.0.3:4271", err)
	}
}

func TestForwardRefusesUnauthorized(t *testing.T) {
	l := &fakeLeader{idx: 1}
	f := serve(t, l, func(context.Context) error { return errors.New("workers may not write") })
	_, err := f.Apply(context.Background(), "leader-raft:1", []byte("x"))
	if err == nil || errors.Is(err, store.ErrUncertain) || len(l.got) != 0 {
		t.Errorf("err = %v (leader got %d commands), want a refusal that is not uncertain and applies nothing", err, len(l.got))
	}
}

// A leader that cannot be reached: nothing left, so the outcome is certain.
func TestForwardUnreachableIsNotUncertain(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	f := &storerpc.Forwarder{Resolve: func(string) (string, error) { return addr, nil }}
	defer f.Close()
	_, err = f.Apply(context.Background(), "leader-raft:1", []byte("x"))
	if err == nil || errors.Is(err, store.ErrUncertain) {
		t.Errorf("err = %v, want a certain failure", err)
	}
	// The store retries it once Raft names a leader.
	if !errors.Is(err, store.ErrLeaderUnreachable) {
		t.Errorf("err = %v, want it to wrap store.ErrLeaderUnreachable", err)
	}
	if _, err := f.Barrier(context.Background(), "leader-raft:1"); !errors.Is(err, store.ErrLeaderUnreachable) {
		t.Errorf("barrier: err = %v, want it to wrap store.ErrLeaderUnreachable", err)
	}
}
