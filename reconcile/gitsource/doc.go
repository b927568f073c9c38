// Package gitsource owns gitorc's copy of the Git repository a cluster
// follows: a bare clone in a data directory given by the caller, kept up
// to date with go-git, and read from commit trees without a worktree.
//
// A Source resolves its ref (a branch, a tag or an exact commit) with a
// cheap ls-remote first and fetches only when the commit is not already
// present; Materialize and ReadFile read a commit's files under the
// optional sub-path, within size limits (Config.MaxFileBytes,
// MaxTreeBytes, MaxTreeEntries) checked from the object headers before
// anything is read or written, and never following a symlink out of the
// tree. Every error names the operation and the redacted URL, path or
// commit it concerns; credentials never reach an error, a log or the
// Status.
//
// Imports: the standard library, go-git and its ssh helpers, and
// cluster/api at most. Never cluster/store, cluster/agent or compose: the
// caller (package reconcile) hands the files to the stack loader.
package gitsource
