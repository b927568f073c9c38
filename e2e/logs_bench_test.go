package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// vmKB reads a field (VmRSS, VmHWM) of /proc/PID/status, in kB.
func vmKB(b *testing.B, pid int, field string) int {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), field+":"); ok {
			n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			return n
		}
	}
	b.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// BenchmarkLogs100MB_Root: gitorc logs of a service whose 6 tasks on 3
// nodes wrote 100 MB (1,000,000 lines of 100 bytes), read from the
// manager to /dev/null: the time of the read, and the manager's resident
// memory before and at its peak (VmHWM: the daemon is otherwise idle).
//
//	go test ./e2e -run '^$' -bench BenchmarkLogs100MB_Root -benchtime 1x
func BenchmarkLogs100MB_Root(b *testing.B) {
	c, reg := newCluster(b, 3)
	// 166,667 lines a task of 99 characters and a newline: under the
	// executor's 3 × 10 MB of kept log per task.
	c.deployApp(`services:
  big:
    image: ` + reg + `/gitorc/busybox:1
    command: ["sh", "-c", "yes ` + strings.Repeat("x", 99) + ` | head -n 166667; echo done; exec sleep 3600"]
    deploy:
      replicas: 6
      placement:
        max_replicas_per_node: 2
`)
	var last string
	defer func() {
		if b.Failed() {
			b.Logf("last logs --tail 1:\n%s", last)
		}
	}()
	c.waitFor("6 tasks done writing", 3*time.Minute, func() bool {
		if len(c.liveTasks("app_big")) != 6 {
			return false
		}
		out, err := c.gitorc("logs", "--tail", "1", "app_big")
		last = out
		return err == nil && strings.Count(out, "| done") == 6
	})
	pid := c.procs[0].Cmd.Process.Pid
	// nsenter runs the daemon as its child: the daemon is the one gitorc
	// process whose parent is pid.
	if out, err := exec.Command("pgrep", "-P", strconv.Itoa(pid)).Output(); err == nil {
		if p, err := strconv.Atoi(strings.Fields(string(out))[0]); err == nil {
			pid = p
		}
	}
	before := vmKB(b, pid, "VmRSS")
	b.ResetTimer()
	var lines int
	for range b.N {
		cmd := exec.Command(c.bin, "--socket", c.socket, "logs", "app_big")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.StdoutPipe()
		if err != nil {
			b.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		lines = 0
		for sc.Scan() {
			lines++
		}
		if err := cmd.Wait(); err != nil || stderr.Len() > 0 {
			b.Fatalf("gitorc logs: %v\n%.2000s", err, stderr.String())
		}
	}
	b.StopTimer()
	if lines < 1_000_000 {
		b.Fatalf("%d lines read, want the 1,000,006 written", lines)
	}
	b.ReportMetric(float64(lines), "lines")
	b.ReportMetric(float64(before)/1024, "manager-rss-before-MB")
	b.ReportMetric(float64(vmKB(b, pid, "VmHWM"))/1024, "manager-peak-MB")
}
