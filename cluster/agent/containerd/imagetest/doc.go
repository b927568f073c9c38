// Package imagetest builds small OCI images from local binaries (Debian's
// static busybox) for tests, pushes them to a real loopback registry
// (Debian's docker-registry, started by the test) and writes them as OCI
// archives. It needs no network beyond 127.0.0.1.
//
// It is test support: only tests import it. It imports no gitorc package.
package imagetest
