// Package e2e holds end-to-end tests of whole clusters on one machine: each
// host a network namespace on a shared bridge running a gitorc node and its
// own containerd, processes started with nsenter --net. The tests build the
// gitorc binary and drive it as a user would. They need root.
package e2e
