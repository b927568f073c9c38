package wire

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/gitorc/gitorc/cluster/api"
)

// Every logs message survives the codec whole, and each is a valid
// message of its side on its own.
func TestLogsMessagesRoundTrip(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	managers := []*ManagerMessage{
		{LogsRequest: &LogsRequest{ID: 7, TaskID: "t1", Options: api.LogOptions{Tail: 10, Since: at, Follow: true}}},
		{LogsRequest: &LogsRequest{ID: 8, TaskID: "t2", Options: api.LogOptions{Tail: -1}}},
		{LogsAck: &LogsAck{ID: 7, N: 3}},
		{LogsCancel: &LogsCancel{ID: 7}},
	}
	for _, m := range managers {
		var back ManagerMessage
		roundTrip(t, m, &back)
		if err := back.Validate(); err != nil {
			t.Error(err)
		}
		if diff := cmp.Diff(m, &back, cmpopts.IgnoreUnexported(ManagerMessage{})); diff != "" {
			t.Errorf("manager message after the codec (-want +got):\n%s", diff)
		}
	}
	workers := []*WorkerMessage{
		{LogsChunk: &LogsChunk{ID: 7, Records: []api.LogRecord{{Time: at, Stream: api.LogStdout, Line: "hello"},
			{Time: at.Add(time.Nanosecond), Stream: api.LogStderr, Line: " \tünïcode\x00 "}}}},
		{LogsChunk: &LogsChunk{ID: 7, Live: true}},
		{LogsEnd: &LogsEnd{ID: 7}},
		{LogsEnd: &LogsEnd{ID: 8, Error: "logs: no such file"}},
	}
	for _, m := range workers {
		var back WorkerMessage
		roundTrip(t, m, &back)
		if err := back.Validate(); err != nil {
			t.Error(err)
		}
		if diff := cmp.Diff(m, &back); diff != "" {
			t.Errorf("worker message after the codec (-want +got):\n%s", diff)
		}
	}
	if err := (&ManagerMessage{LogsAck: &LogsAck{}, LogsCancel: &LogsCancel{}}).Validate(); err == nil {
		t.Error("manager message with two logs fields accepted")
	}
	if err := (&WorkerMessage{LogsChunk: &LogsChunk{}, LogsEnd: &LogsEnd{}}).Validate(); err == nil {
		t.Error("worker message with two logs fields accepted")
	}
}

func roundTrip(t *testing.T, in, out any) {
	t.Helper()
	raw, err := Codec{}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if err := (Codec{}).Unmarshal(raw, out); err != nil {
		t.Fatal(err)
	}
}
