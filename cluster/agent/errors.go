package agent

import "errors"

// ErrNotFound is returned by an Executor for a task it has no container for.
var ErrNotFound = errors.New("not found")
