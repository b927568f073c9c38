// Package api is gitorc's domain model: the plain Go types that every other
// package speaks — nodes, stacks, services and their specs, tasks, networks,
// secrets, configs, volumes and the GitOps sync state — with their enums,
// their defaults (one place: defaults.go) and their validation.
//
// It imports no other gitorc package and no wire format library. Protobuf,
// gRPC or storage encodings convert to and from these types at the edges.
//
// Secret payloads are held in SecretBytes, which never prints, logs or
// marshals its content; code that must persist it (the store) reads it with
// Reveal explicitly.
package api
