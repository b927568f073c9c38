// Command testenv serves what the demo and the end-to-end tests need and
// this closed network cannot fetch: a loopback OCI registry (Debian's
// docker-registry) holding gitorc/busybox:1, an image built from Debian's
// busybox-static. It writes the registry's address to -addr-file and runs
// until interrupted.
package main
