// Package store is the cluster's replicated truth: every object the
// managers decide on (nodes, stacks, services, tasks, networks, volumes,
// secrets, configs, sync state and history, all cluster/api types) lives
// here, replicated with hashicorp/raft, so that a manager can lose its
// process, its disk or its leadership and the cluster carries on.
//
// What it owns:
//   - the Raft node: raft-boltdb/v2 log and stable store (raft.db), a
//     FileSnapshotStore (snapshots/), the data key file (datakey.json), all
//     under Config.DataDir; every log entry and snapshot is sealed by the
//     data key on its way to disk (atrest.go), so no object is in clear
//     there, secret or not;
//   - the FSM: a go-memdb database of records, one table per Kind, indexed
//     by id, name, stack, service, node and desired state (fsm.go); each
//     Raft batch is applied in one database transaction whose checks read
//     the state before the batch plus the batch's own writes (batchTxn);
//   - typed transactions (tx.go): creates, updates and deletes with
//     optimistic version checks. A transaction is encoded once by the
//     proposer with its IDs, timestamps, index keys and sealed secret
//     payloads inside (command.go, a compact binary layout around each
//     object's JSON, s2-compressed when that helps), so applying it is
//     deterministic on every manager and never decodes objects. An
//     object's Version is the Raft index of the entry that last wrote it.
//     A store-made ID holds a sequence number within its transaction, 64
//     random bits shared by the transaction and the creation time in
//     milliseconds; the id index keys it time, random bits, sequence
//     (idKey), so a transaction's creates append to one small subtree of
//     every index instead of copying a root-to-leaf path per object;
//   - group commit (commit.go): the leader commits the transactions that
//     concurrent proposers (its own Update calls and the followers'
//     forwarded ones) submit while earlier entries are in flight as one
//     Raft entry, each member checked and applied on its own so that one
//     that fails (a stale version) fails alone with its own error; alone,
//     a transaction is an entry of its own. A transaction larger than
//     Config.MaxEntryBytes is split into bounded chunk entries that the FSM
//     stages and applies atomically when the last chunk commits (a chunked
//     transaction abandoned by a leader change is discarded when the first
//     entry of a later term is applied);
//   - reads: View gives a consistent snapshot of the local state and the Raft
//     index it reflects; ConsistentView first makes sure the local state
//     holds everything committed before the call (a Raft barrier). A
//     record's JSON is decoded once, by its first read, and the object is
//     cached on the (immutable) record, without a secret's payload; every
//     read (Get, Find, Event.Object) returns a deep copy of it that the
//     caller owns and may change (copy.go: a reflection copier that works
//     out once per type what must be copied beyond an assignment);
//   - watches (watch.go): committed changes with their Raft index. A watcher
//     has a bounded buffer and never blocks Apply: when it overflows, its
//     channel is closed and Err reports ErrWatchOverflow; the consumer
//     resynchronises with ViewAndWatch, which returns the state and a watch
//     that starts exactly after it. A snapshot restore ends every watcher
//     with ErrResync the same way;
//   - leadership observation, membership (voters and learners), forwarding
//     of writes from followers to the leader through a narrow Forwarder (or
//     a NotLeaderError "not leader: <addr>" when none is configured); a
//     forward that reached no leader (ErrLeaderUnreachable) or that a former
//     leader refused is sent again once Raft names another leader, within
//     ApplyTimeout, so a write rides out an election. A forward in flight
//     is cancelled when Raft names another leader (the one it went to is
//     cut off), and a write whose outcome is then unknown is settled, not
//     guessed (settle.go): a barrier through the current leader, then the
//     FSM says whether it applied the command's exact bytes; if not, it
//     cannot any more and is sent again. Raft's timing
//     (RaftTuning, default DefaultRaftTimeout) is validated with the config;
//   - encryption at rest (crypto.go): secret payloads are sealed with NaCl
//     secretbox under the cluster data key before they are proposed, so the
//     Raft log, the snapshots, the bolt file and the in-memory state hold
//     ciphertext only; they are opened when read through a ReadTx. With
//     autolock the data key file is itself sealed by an UnlockKey, and a
//     manager started without it stays locked (every call returns
//     ErrLocked, which says how to unlock) until Unlock is called.
//
// Transport: the store speaks Raft over any raft.StreamLayer. By default it
// listens on plain TCP (Config.BindAddr); the mTLS layer of a later issue is
// passed as Config.StreamLayer. The test harness in storetest uses real TCP
// on 127.0.0.1 ephemeral ports through a fault-injecting stream layer rather
// than raft's InmemTransport: the code under test is then the code that
// runs in production (msgpack over sockets, connection pools, timeouts),
// benchmarks measure real loopback TCP, and a partition is a real cut:
// connections across it are closed and new dials refused.
//
// Metrics (metrics.go): whether this manager leads, commit and apply
// times, measured by the store itself and exported through
// prometheus/client_golang collectors that the composition root registers.
//
// Imports: among gitorc packages, cluster/api only. It must never import
// reconcile, compose, cluster/agent or any other cluster/* package; they
// import it (through narrow interfaces of their own).
package store
