package wire

import "github.com/gitorc/gitorc/cluster/api"

// Task logs travel on the session stream. A manager sends a LogsRequest
// with an ID of its choosing (unique within the session); the worker
// answers with LogsChunks carrying that ID, then one LogsEnd. Flow
// control is by credit: the worker has at most LogsWindow chunks of a
// request unacknowledged and waits for a LogsAck before sending more, so
// that a slow reader holds up only its own request, never the session,
// and a manager buffers at most LogsWindow chunks per request. A
// LogsCancel ends a request early (its reader went away); the worker
// answers it with a LogsEnd too, which the manager may ignore.
const (
	// LogsWindow is the number of chunks of one request in flight.
	LogsWindow = 8
	// MaxLogsChunk bounds the bytes of lines in one chunk (a chunk holds
	// at least one line); MaxLogLine bounds one line, longer ones are
	// cut.
	MaxLogsChunk = 64 << 10
	MaxLogLine   = 16 << 10
)

// LogsRequest asks a worker for one task's log.
type LogsRequest struct {
	ID      uint64         `json:"id"`
	TaskID  string         `json:"task_id"`
	Options api.LogOptions `json:"options"`
}

// LogsCancel ends a request.
type LogsCancel struct {
	ID uint64 `json:"id"`
}

// LogsAck gives a request N more chunks of credit.
type LogsAck struct {
	ID uint64 `json:"id"`
	N  int    `json:"n"`
}

// LogsChunk is some lines of a request's log, in the order written.
type LogsChunk struct {
	ID      uint64          `json:"id"`
	Records []api.LogRecord `json:"records,omitempty"`
	// Live is set from the chunk on that ends the backlog of a followed
	// log: what comes after is output written since (a chunk may carry
	// no records, only this news).
	Live bool `json:"live,omitempty"`
}

// LogsEnd ends a request: the log was read to its end (or followed until
// cancelled), or Error says why it could not be.
type LogsEnd struct {
	ID    uint64 `json:"id"`
	Error string `json:"error,omitempty"`
}
