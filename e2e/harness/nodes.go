package harness

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// ClearNodeDirs removes what nodes killed with containers running can leave
// under their data dirs: container shims (their containers first), the
// node's own containerd (a killed node's outlives it until the node
// starts again) and mounts.
func ClearNodeDirs(dirs []string) {
	for _, d := range dirs {
		out, _ := exec.Command("pgrep", "-f", "--", "-address "+d+"/").Output()
		for _, pid := range strings.Fields(string(out)) {
			_ = exec.Command("pkill", "-9", "-P", pid).Run()
			_ = exec.Command("kill", "-9", pid).Run()
		}
		out, _ = exec.Command("pgrep", "-f", "--", "--config "+d+"/").Output()
		for _, pid := range strings.Fields(string(out)) {
			_ = exec.Command("kill", "-9", pid).Run()
		}
		mounts, _ := os.ReadFile("/proc/mounts")
		for _, l := range strings.Split(string(mounts), "\n") {
			if f := strings.Fields(l); len(f) > 1 && strings.HasPrefix(f[1], d+"/") {
				_ = syscall.Unmount(f[1], syscall.MNT_DETACH)
			}
		}
	}
}

// DumpLogs logs the last lines (at most max) of every *.log file in dir.
func DumpLogs(tb testing.TB, dir string, max int) {
	files, _ := filepath.Glob(filepath.Join(dir, "*.log"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if len(lines) > max {
			lines = lines[len(lines)-max:]
		}
		tb.Logf("== %s (last lines)\n%s", filepath.Base(f), strings.Join(lines, "\n"))
	}
}
