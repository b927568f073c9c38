package storetest

import (
	"fmt"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// The linearizability checks' history and model: clients put and get
// registers (by key) while faults happen, and porcupine checks what they
// saw against a sequential register. The store's own test drives stores in
// process; the chaos e2e drives real managers through their control API.

// RegisterInput is a put of Value to Key, or a get of Key.
type RegisterInput struct {
	Put        bool
	Key, Value string
}

// RegisterOutput is what a get returned; Unknown marks a put whose outcome
// is unknown (it may apply at any later time: its Return is "never").
type RegisterOutput struct {
	Value   string
	Unknown bool
}

// RegisterModel is a set of independent registers, each starting at "".
var RegisterModel = porcupine.Model{
	Partition: func(h []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range h {
			k := op.Input.(RegisterInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return "" },
	Step: func(state, input, output any) (bool, any) {
		in, out := input.(RegisterInput), output.(RegisterOutput)
		if in.Put {
			return true, in.Value
		}
		return out.Value == state.(string), state
	},
	DescribeOperation: func(input, output any) string {
		in, out := input.(RegisterInput), output.(RegisterOutput)
		if in.Put {
			return fmt.Sprintf("put(%s, %s) unknown=%v", in.Key, in.Value, out.Unknown)
		}
		return fmt.Sprintf("get(%s) -> %q", in.Key, out.Value)
	},
}

// History collects operations from concurrent clients.
type History struct {
	start time.Time
	mu    sync.Mutex
	ops   []porcupine.Operation
}

// NewHistory starts a history; its times count from now.
func NewHistory() *History { return &History{start: time.Now()} }

// Now is the time to record as an operation's Call or Return.
func (h *History) Now() int64 { return time.Since(h.start).Nanoseconds() }

// Add records an operation.
func (h *History) Add(op porcupine.Operation) {
	h.mu.Lock()
	h.ops = append(h.ops, op)
	h.mu.Unlock()
}

// Ops returns a copy of the operations recorded so far.
func (h *History) Ops() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]porcupine.Operation(nil), h.ops...)
}
