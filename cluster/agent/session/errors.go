package session

import "errors"

// ErrAssignmentOrder: an incremental assignment set did not follow the
// set it was made against; the session ends and the next one starts with
// a complete set.
var ErrAssignmentOrder = errors.New("assignment set out of order")
