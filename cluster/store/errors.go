package store

import (
	"errors"
	"fmt"
)

// Sentinel errors. Callers test them with errors.Is.
var (
	// ErrNotFound: no object of that kind has that ID.
	ErrNotFound = errors.New("not found")
	// ErrExists: a create named an ID that is already taken.
	ErrExists = errors.New("already exists")
	// ErrNameConflict: another object of the same kind has that name.
	ErrNameConflict = errors.New("name already in use")
	// ErrVersionConflict: an update or delete named a stale version; read
	// the object again and retry.
	ErrVersionConflict = errors.New("version conflict")
	// ErrInvalid: the transaction or command is malformed.
	ErrInvalid = errors.New("invalid transaction")
	// ErrNotLeader: this manager is not the leader; see NotLeaderError.
	ErrNotLeader = errors.New("not leader")
	// ErrNoLeader: the cluster has no leader right now (election, or no quorum).
	ErrNoLeader = errors.New("no leader")
	// ErrLeaderUnreachable: a Forwarder could not reach the leader, and
	// nothing was sent (the store retries such a forward, see Forwarder).
	ErrLeaderUnreachable = errors.New("leader unreachable")
	// ErrUncertain: the write was proposed but its outcome is unknown
	// (leadership lost or context ended before commit); it may still apply.
	ErrUncertain = errors.New("outcome unknown")
	// ErrLocked: the manager's data key is sealed by its autolock unlock key.
	ErrLocked = errors.New("manager is locked: its data key is sealed by the autolock unlock key; " +
		"restart it with the unlock key or run 'gitorc unlock' and paste the key printed when autolock was enabled")
	// ErrBadUnlockKey: the unlock key does not open the data key.
	ErrBadUnlockKey = errors.New("wrong unlock key")
	// ErrNoDataKey: a manager joining an existing cluster was given no data key.
	ErrNoDataKey = errors.New("no data key: a joining manager needs the cluster's data key")
	// ErrClosed: the store was closed.
	ErrClosed = errors.New("store closed")
	// ErrWatchOverflow: a watcher fell behind and was dropped; resync with ViewAndWatch.
	ErrWatchOverflow = errors.New("watch overflow: watcher fell behind, resync")
	// ErrResync: the state was replaced by a snapshot restore; resync with ViewAndWatch.
	ErrResync = errors.New("state restored from snapshot, resync")
	// ErrDecrypt: a sealed payload could not be opened (wrong data key or corruption).
	ErrDecrypt = errors.New("cannot decrypt sealed payload")
)

// NotLeaderError is returned by writes on a follower that has no Forwarder,
// and by membership changes on a follower. Addr is the leader's Raft
// address as this manager knows it, empty when it knows none.
type NotLeaderError struct {
	Addr string
}

func (e *NotLeaderError) Error() string {
	if e.Addr == "" {
		return "not leader: leader unknown"
	}
	return fmt.Sprintf("not leader: %s", e.Addr)
}

// Is makes errors.Is(err, ErrNotLeader) true.
func (e *NotLeaderError) Is(target error) bool { return target == ErrNotLeader }
