package api

import "time"

// Log streams of a task's output.
const (
	LogStdout = "stdout"
	LogStderr = "stderr"
)

// LogRecord is one line of a task's output, without its newline.
type LogRecord struct {
	// Time is when the node's log driver read the line; zero for a line
	// of a log written without timestamps.
	Time   time.Time `json:"time"`
	Stream string    `json:"stream"`
	Line   string    `json:"line"`
}

// LogOptions select what of a task's log to read.
type LogOptions struct {
	// Tail is the number of last lines to read; negative reads all.
	Tail int `json:"tail"`
	// Since, when set, keeps only lines written after it.
	Since time.Time `json:"since,omitzero"`
	// Follow keeps reading what the task writes next.
	Follow bool `json:"follow,omitempty"`
}
