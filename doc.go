// Package gitorc is the root of the gitorc module: a GitOps orchestrator in
// which a git push of Compose/Swarm stack files is a deployment.
//
// The architecture and the import rules are in the design document; this
// package holds only deps_test.go, which enforces those rules on every
// package of the module.
package gitorc
