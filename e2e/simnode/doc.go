// Package simnode runs simulated worker nodes by the thousand in one
// process, for scale tests of the managers. A simulated node is a worker
// in everything the managers can see: it joins with a real join token and
// gets a certificate of its own (a P-256 key and CSR per node, signed by
// the cluster's CA through the Join RPC, as gitorc join does), keeps a
// real session to the leader (cluster/agent/session, mutual TLS with its
// own certificate, one gRPC connection per node), heartbeats at the
// period the leader asks for, and reports task status through the real
// agent state machine (cluster/agent). Only the executor is simulated: it
// holds tasks in memory, so assigned tasks go assigned → preparing →
// starting → running without containers, and a removed task is gone.
//
// What the nodes share, and why: one gRPC connection for the Join calls
// (the certificate is still one per node; a connection per join would
// only add 5,000 throw-away TLS handshakes before the measured part), and
// nothing else. There is no network plane: the nodes send no WireGuard
// key, so the managers give them no peers, and the views the leader sends
// them are received whole but not parsed (codec.go).
//
// simnode lives under e2e because it joins as cluster/node does, with
// cluster/ca, which the import rules keep out of cluster/agent.
package simnode
