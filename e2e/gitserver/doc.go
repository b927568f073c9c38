// Package gitserver is the Git side of end-to-end tests and benchmarks: a
// bare repository served over HTTP by the real git http-backend (through
// net/http/cgi), a working clone that commits and pushes to it, and
// signed webhook deliveries of those pushes. It needs the git CLI.
//
// It imports no gitorc package but reconcile/webhook (to sign deliveries
// as GitHub does); tests and e2e/bench use it.
package gitserver
