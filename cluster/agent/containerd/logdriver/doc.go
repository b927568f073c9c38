// Package logdriver is a task's log driver, as containerd's runc shim
// runs a logging binary: it appends each line of the task's stdout and
// stderr to the task's log file as a record "TIME STREAM F|P LINE" (the
// time RFC 3339 with nanoseconds, UTC; P marks a piece of a line longer
// than MaxLine), which gitorc logs merges by time.
//
// It runs once per task, for the task's life, so it is kept small: the
// standard library only, run by cmd/gitorc-logger (about a tenth of the
// memory of the gitorc binary, whose packages' initialisation a driver
// does not need).
package logdriver
