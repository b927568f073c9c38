package dispatcher

import "errors"

// Sentinel errors.
var (
	// ErrNotRunning: a session arrived while Run is not running.
	ErrNotRunning = errors.New("dispatcher not running")
	// ErrReplaced: a newer session of the same node took over.
	ErrReplaced = errors.New("session replaced by a newer one of the same node")
	// ErrStatusesDropped: the node's status queue was full and some of
	// its reports were dropped; its session ends so that it reports all
	// its tasks again on the next one, instead of the store keeping what
	// it dropped.
	ErrStatusesDropped = errors.New("task statuses dropped, the node's queue being full: reconnect and report every task again")
	// ErrNoHello: the first message of a session was not a hello.
	ErrNoHello = errors.New("session must start with a hello")
	// ErrNodeRemoved: the node was removed from the cluster; it must join
	// again with a token.
	ErrNodeRemoved = errors.New("this node was removed from the cluster: join again with a token")
	// ErrNoSession: the node holds no session with this manager (it is
	// down, or its session is with another manager).
	ErrNoSession = errors.New("node has no session with this manager")
	// ErrSessionEnded: the node's session ended during a log request.
	ErrSessionEnded = errors.New("node's session ended")
)
