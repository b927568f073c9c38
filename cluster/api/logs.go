package api

import (
	"fmt"
	"time"
)

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

// LogLine is one line of a task's output, or (Error set) why a task's log
// cannot be read.
type LogLine struct {
	Time    time.Time `json:"time"`
	Task    string    `json:"task"`
	Service string    `json:"service"`
	// Slot is the task's slot; 0 for a global service's task.
	Slot   uint64 `json:"slot,omitempty"`
	Node   string `json:"node"`
	Stream string `json:"stream,omitempty"`
	Line   string `json:"line"`
	Error  string `json:"error,omitempty"`
}

// Prefix is docker's "name.slot@node" (a global task: "name.node@node").
func (l *LogLine) Prefix() string {
	if l.Slot == 0 {
		return fmt.Sprintf("%s.%s@%s", l.Service, l.Node, l.Node)
	}
	return fmt.Sprintf("%s.%d@%s", l.Service, l.Slot, l.Node)
}
