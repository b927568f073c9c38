package containerd

import "errors"

// Sentinel errors; callers match them with errors.Is.
var (
	// ErrImageNotFound: the registry or the archive has no such image.
	ErrImageNotFound = errors.New("not found")
	// ErrInvalidSpec: the task cannot run on this node as specified.
	ErrInvalidSpec = errors.New("invalid task spec")
	// ErrMissingFile: a secret or config the task needs was not delivered.
	ErrMissingFile = errors.New("missing secret or config")
)
