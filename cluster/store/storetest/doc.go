// Package storetest runs N store managers in one process for tests and
// benchmarks: real Raft over real TCP on 127.0.0.1 ephemeral ports, real
// bolt logs and file snapshots in temporary directories, with fault
// injection — Kill, Restart, Partition, Heal — and an in-process
// Forwarder that respects partitions.
//
// Why TCP and not raft.InmemTransport: the managers then run the code
// they run in production (msgpack over sockets, pooled connections, dial
// and I/O timeouts), benchmarks measure loopback TCP, and a partition is a
// real cut — Net closes every connection that crosses it and refuses new
// dials — rather than a flag inside a fake transport.
//
// It imports cluster/store and cluster/api only among gitorc packages, and
// is imported only by tests.
package storetest
