// Command gitorc-logger is the log driver containerd's runc shim runs for
// each task gitorc starts ("gitorc-logger log-driver FILE"): see
// cluster/agent/containerd/logdriver. It is a program of its own, beside
// gitorc, so that each task's driver costs a small program's memory.
package main
