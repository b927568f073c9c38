package gitsource

import (
	"errors"
	"fmt"
)

// Sentinel errors; callers test them with errors.Is.
var (
	// ErrInvalidConfig wraps every Config.Validate failure.
	ErrInvalidConfig = errors.New("invalid git source")
	// ErrRefNotFound means the remote has no branch or tag of that name
	// (for example a deleted branch).
	ErrRefNotFound = errors.New("ref not found")
	// ErrCommitNotFound means a commit is neither in the local clone nor
	// reachable from the remote's branches and tags.
	ErrCommitNotFound = errors.New("commit not found")
	// ErrPathNotFound means a path does not exist in a commit's tree.
	ErrPathNotFound = errors.New("path not found")
	// ErrAuth means the server refused the credentials (or wanted some).
	ErrAuth = errors.New("authentication failed")
	// ErrUnsafeSymlink means a symlink in the tree points outside it.
	ErrUnsafeSymlink = errors.New("unsafe symlink")
	// ErrTooLarge means a file or a tree of a commit is over its limit
	// (Config.MaxFileBytes, MaxTreeBytes, MaxTreeEntries).
	ErrTooLarge = errors.New("too large")
	// ErrNotEmpty means Materialize was given a directory holding files.
	ErrNotEmpty = errors.New("directory not empty")
)

// sentinelError reads as its message alone but matches its sentinel with
// errors.Is, so messages do not repeat "ref not found: ref main not found".
type sentinelError struct {
	msg      string
	sentinel error
}

func (e *sentinelError) Error() string { return e.msg }
func (e *sentinelError) Unwrap() error { return e.sentinel }

func errorf(sentinel error, format string, a ...any) error {
	return &sentinelError{msg: fmt.Sprintf(format, a...), sentinel: sentinel}
}
