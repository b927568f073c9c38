package containerd

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

// The records the executor writes parse back to what was written, both streams, a
// long line in pieces; a raw line is stdout without a time.
func TestLogRecordsParse(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 123456789, time.UTC)
	var b bytes.Buffer
	w := &recordWriter{w: &b, now: func() time.Time { return at }}
	long := strings.Repeat("x", maxLogLine+10)
	if _, err := w.copy(strings.NewReader("one\n\ntwo"), api.LogStdout, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := w.copy(strings.NewReader("err 1\n"+long+"\n"), api.LogStderr, nil); err != nil {
		t.Fatal(err)
	}
	var got []api.LogRecord
	for _, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		got = append(got, parseRecord([]byte(l)))
	}
	want := []api.LogRecord{{Time: at, Stream: "stdout", Line: "one"}, {Time: at, Stream: "stdout", Line: ""}, {Time: at, Stream: "stdout", Line: "two"},
		{Time: at, Stream: "stderr", Line: "err 1"}, {Time: at, Stream: "stderr", Line: long[:maxLogLine]}, {Time: at, Stream: "stderr", Line: long[maxLogLine:]}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(api.LogRecord{Stream: "stdout", Line: "plain 2030 text"}, parseRecord([]byte("plain 2030 text"))); diff != "" {
		t.Error(diff)
	}
}

// ReadLogs reads the rotated files, oldest first, then the live one, and
// honours tail and since across them.
func TestReadLogsRotatedTailSince(t *testing.T) {
	dir := t.TempDir()
	e := &Executor{cfg: Config{DataDir: dir, LogMaxFiles: 3, Clock: agent.RealClock{}}}
	if err := os.MkdirAll(filepath.Join(dir, "logs"), 0o700); err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	p := e.logPath("t1")
	line := 0
	write := func(name string, n int) {
		var b bytes.Buffer
		for range n {
			line++
			fmt.Fprintf(&b, "%s stdout F line %d\n", t0.Add(time.Duration(line)*time.Second).Format(time.RFC3339Nano), line)
		}
		if err := os.WriteFile(name, b.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(p+".2", 300) // lines 1..300, oldest
	write(p+".1", 300) // 301..600
	write(p, 5)        // 601..605, live
	read := func(opts api.LogOptions) []string {
		var out []string
		if err := e.ReadLogs(context.Background(), "t1", opts, func(recs []api.LogRecord, live bool) error {
			if live {
				t.Error("live batch without follow")
			}
			if len(recs) > logBatch {
				t.Errorf("batch of %d records", len(recs))
			}
			for _, r := range recs {
				out = append(out, r.Line)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return out
	}
	all := read(api.LogOptions{Tail: -1})
	if len(all) != 605 || all[0] != "line 1" || all[604] != "line 605" {
		t.Errorf("all: %d lines, %q … %q", len(all), all[0], all[len(all)-1])
	}
	if got := read(api.LogOptions{Tail: 7}); !cmp.Equal(got, []string{"line 599", "line 600", "line 601", "line 602", "line 603", "line 604", "line 605"}) {
		t.Errorf("tail 7 = %q", got)
	}
	if got := read(api.LogOptions{Tail: 0}); len(got) != 0 {
		t.Errorf("tail 0 = %q", got)
	}
	if got := read(api.LogOptions{Tail: -1, Since: t0.Add(602 * time.Second)}); !cmp.Equal(got, []string{"line 603", "line 604", "line 605"}) {
		t.Errorf("since = %q", got)
	}
	if got := read(api.LogOptions{Tail: 2, Since: t0.Add(604 * time.Second)}); !cmp.Equal(got, []string{"line 605"}) {
		t.Errorf("tail and since = %q", got)
	}
	if got := read(api.LogOptions{Tail: -1}); len(got) != 605 {
		t.Errorf("missing log: %q", got)
	}
}

// A read that rotation overtakes (copy to .1, then truncate) loses
// nothing: what was written after the point read is taken from .1, then
// the file is read again from its start.
func TestLogReadAcrossRotation(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "t.log")
	write := func(path string, from, to int, flag int) {
		t.Helper()
		f, err := os.OpenFile(path, flag|os.O_WRONLY|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		w := &recordWriter{w: f, now: time.Now}
		var b strings.Builder
		for i := from; i < to; i++ {
			fmt.Fprintf(&b, "line %d\n", i)
		}
		if _, err := w.copy(strings.NewReader(b.String()), api.LogStdout, nil); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	write(p, 0, 100, os.O_APPEND)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []string
	collect := func(r api.LogRecord) error { got = append(got, r.Line); return nil }
	l := &lineReader{f: f, rotated: p + ".1"}
	if err := l.each(collect, false); err != nil {
		t.Fatal(err)
	}
	// The task writes on; rotation copies and truncates; it writes more.
	write(p, 100, 150, os.O_APPEND)
	if err := rotate(p, 0, 3); err != nil {
		t.Fatal(err)
	}
	write(p, 150, 160, os.O_APPEND)
	if err := l.rewindIfTruncated(collect); err != nil {
		t.Fatal(err)
	}
	if err := l.each(collect, true); err != nil {
		t.Fatal(err)
	}
	if len(got) != 160 {
		t.Fatalf("%d lines read across the rotation, want 160", len(got))
	}
	for i, line := range got {
		if line != fmt.Sprintf("line %d", i) {
			t.Fatalf("line %d = %q", i, line)
		}
	}
}
