// Package wire is the dispatcher protocol: the messages a worker and the
// leader exchange on their one mutual-TLS gRPC stream, the JSON codec that
// carries them, the hand-written grpc.ServiceDesc of the Dispatcher
// service (there is no protoc on the build machines), and the not-leader
// error a follower answers with.
//
// It is the only piece of cluster/dispatcher the agent side
// (cluster/agent/session) may import: the store and this protocol are the
// bus between managers and workers. Messages are small Go structs that
// carry cluster/api types; they are converted at the edges and nowhere
// else.
//
// Secret plaintext travels only on this stream, in Plaintext fields,
// which print and log as "[redacted]" but encode on the wire.
//
// Imports: among gitorc packages, cluster/api only; otherwise grpc.
package wire
