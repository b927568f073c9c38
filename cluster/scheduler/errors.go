package scheduler

import (
	"errors"
	"strings"
)

// ErrNoSuitableNode is matched (errors.Is) by every explanation of a task
// that could not be placed.
var ErrNoSuitableNode = errors.New("no suitable node")

// NoSuitableNodeError explains why a task could not be placed. Reasons are
// phrases such as "2 nodes lack 512MiB memory", most common first.
type NoSuitableNodeError struct {
	Reasons []string
}

func (e *NoSuitableNodeError) Error() string {
	if len(e.Reasons) == 0 {
		return ErrNoSuitableNode.Error()
	}
	return ErrNoSuitableNode.Error() + ": " + strings.Join(e.Reasons, ", ")
}

// Is makes errors.Is(err, ErrNoSuitableNode) true.
func (e *NoSuitableNodeError) Is(target error) bool { return target == ErrNoSuitableNode }
