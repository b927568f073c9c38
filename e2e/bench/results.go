package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// results holds every round's figures by system and row.
type results struct {
	times map[string]map[string][]time.Duration // system → row → one per round
	mem   map[string][]memory
	cpu   map[string]map[string][]time.Duration // system → step → daemon and containerd CPU time
}

func newResults() *results {
	return &results{times: map[string]map[string][]time.Duration{}, mem: map[string][]memory{},
		cpu: map[string]map[string][]time.Duration{}}
}

func (r *results) addCPU(sys, step string, d time.Duration) {
	if r.cpu[sys] == nil {
		r.cpu[sys] = map[string][]time.Duration{}
	}
	r.cpu[sys][step] = append(r.cpu[sys][step], d)
}

func (r *results) add(sys, row string, d time.Duration) {
	if r.times[sys] == nil {
		r.times[sys] = map[string][]time.Duration{}
	}
	r.times[sys][row] = append(r.times[sys][row], d)
}

func (r *results) addMemory(sys string, m memory) { r.mem[sys] = append(r.mem[sys], m) }

// spread is the median, min and max of some figures.
type spread struct {
	median, min, max float64
	n                int
}

func spreadOf(v []float64) spread {
	if len(v) == 0 {
		return spread{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return spread{median: m, min: s[0], max: s[len(s)-1], n: len(s)}
}

func (s spread) format(unit string, digits int) string {
	switch s.n {
	case 0:
		return "–"
	case 1:
		return strconv.FormatFloat(s.median, 'f', digits, 64) + unit
	}
	f := func(x float64) string { return strconv.FormatFloat(x, 'f', digits, 64) }
	return fmt.Sprintf("%s%s [%s..%s]", f(s.median), unit, f(s.min), f(s.max))
}

// ratio is a/b of the medians, "–" when either is missing.
func ratio(a, b spread) string {
	if a.n == 0 || b.n == 0 || b.median == 0 {
		return "–"
	}
	return strconv.FormatFloat(a.median/b.median, 'f', 2, 64)
}

// table prints the markdown table: one column per system, median
// [min..max], and gitorc/swarm when both ran.
func (r *results) table(w io.Writer, systems []string) {
	both := slices.Contains(systems, "gitorc") && slices.Contains(systems, "swarm")
	head := "| step |"
	sep := "| --- |"
	for _, s := range systems {
		head += " " + s + " |"
		sep += " --- |"
	}
	if both {
		head += " gitorc / swarm |"
		sep += " --- |"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, row := range rows {
		line := "| " + row + " |"
		by := map[string]spread{}
		for _, s := range systems {
			var sp spread
			if row == rowMemory || row == rowMemoryPSS {
				var v []float64
				for _, m := range r.mem[s] {
					rss, pss := m.totalMiB()
					if row == rowMemory {
						v = append(v, rss)
					} else {
						v = append(v, pss)
					}
				}
				sp = spreadOf(v)
				line += " " + sp.format(" MiB", 0) + " |"
			} else {
				var v []float64
				for _, d := range r.times[s][row] {
					v = append(v, d.Seconds())
				}
				sp = spreadOf(v)
				line += " " + sp.format(" s", 2) + " |"
			}
			by[s] = sp
		}
		if both {
			line += " " + ratio(by["gitorc"], by["swarm"]) + " |"
		}
		fmt.Fprintln(w, line)
	}
	// Where the CPU went: the daemons' own time, step by step.
	fmt.Fprintln(w)
	head = "| CPU seconds of the daemon and its containerd, from the command until the step's last condition |"
	sep = "| --- |"
	for _, s := range systems {
		head += " " + s + " |"
		sep += " --- |"
	}
	fmt.Fprintln(w, head)
	fmt.Fprintln(w, sep)
	for _, row := range rows {
		line, any := "| "+row+" |", false
		for _, s := range systems {
			any = any || len(r.cpu[s][row]) > 0
		}
		if !any {
			continue
		}
		for _, s := range systems {
			var v []float64
			for _, d := range r.cpu[s][row] {
				v = append(v, d.Seconds())
			}
			line += " " + spreadOf(v).format(" s", 2) + " |"
		}
		fmt.Fprintln(w, line)
	}
	// What the memory row adds up, per process group.
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| resident memory at 50 tasks, by process | processes | RSS (PSS), MiB, median of the rounds |")
	fmt.Fprintln(w, "| --- | --- | --- |")
	for _, s := range systems {
		ms := r.mem[s]
		if len(ms) == 0 {
			continue
		}
		for i, g := range ms[0].groups {
			var rss, pss []float64
			for _, m := range ms {
				if i < len(m.groups) {
					rss = append(rss, kib(m.groups[i].rss))
					pss = append(pss, kib(m.groups[i].pss))
				}
			}
			fmt.Fprintf(w, "| %s: %s | %d | %s (%s) |\n", s, g.name, g.procs, spreadOf(rss).format("", 1), spreadOf(pss).format("", 1))
		}
	}
}

func kib(k int64) float64 { return float64(k) / 1024 }

// memory is the resident memory of a system's processes, by group
// (daemon, containerd, shims, …).
type memory struct {
	groups []memGroup
}

type memGroup struct {
	name     string
	procs    int
	rss, pss int64 // KiB
}

// totalMiB sums RSS, which counts pages shared by processes in each of
// them, and PSS, which shares them out.
func (m memory) totalMiB() (rss, pss float64) {
	var r, p int64
	for _, g := range m.groups {
		r += g.rss
		p += g.pss
	}
	return kib(r), kib(p)
}

func (m memory) String() string {
	var parts []string
	for _, g := range m.groups {
		parts = append(parts, fmt.Sprintf("%s (%d) %.1f MiB", g.name, g.procs, kib(g.rss)))
	}
	rss, pss := m.totalMiB()
	return fmt.Sprintf("%.0f MiB RSS (PSS %.0f): %s", rss, pss, strings.Join(parts, ", "))
}

// measureGroup sums VmRSS and Pss over pids.
func measureGroup(name string, pids []int) memGroup {
	g := memGroup{name: name}
	for _, pid := range pids {
		rss, pss, ok := residentOf(pid)
		if ok {
			g.procs++
			g.rss += rss
			g.pss += pss
		}
	}
	return g
}

// residentOf reads a process's VmRSS and Pss in KiB.
func residentOf(pid int) (rss, pss int64, ok bool) {
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, false
	}
	rss, ok = field(string(status), "VmRSS:")
	if roll, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid)); err == nil {
		pss, _ = field(string(roll), "Pss:")
	}
	return rss, pss, ok
}

// field finds "KEY  123 kB" in /proc text.
func field(text, key string) (int64, bool) {
	for _, l := range strings.Split(text, "\n") {
		if rest, ok := strings.CutPrefix(l, key); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				n, err := strconv.ParseInt(f[0], 10, 64)
				return n, err == nil
			}
		}
	}
	return 0, false
}

// processes lists the PIDs whose command line (arguments joined by
// spaces) satisfies match.
func processes(match func(cmdline string) bool) []int {
	ents, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if match(strings.ReplaceAll(strings.TrimRight(string(b), "\x00"), "\x00", " ")) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// cpuTime is the CPU time (user and system) the processes have used
// so far; processes gone count nothing.
func cpuTime(pids []int) time.Duration {
	var ticks int64
	for _, pid := range pids {
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
			t, _ := statTicks(string(b))
			ticks += t
		}
	}
	return time.Duration(ticks) * 10 * time.Millisecond // USER_HZ is 100 on Linux
}

// statTicks reads utime + stime (fields 14 and 15) of /proc/PID/stat. The
// command name, in parentheses, may hold spaces and parentheses: fields
// count from after the last ") ".
func statTicks(stat string) (int64, bool) {
	i := strings.LastIndex(stat, ") ")
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(stat[i+2:]) // f[0] is field 3, the state
	if len(f) < 13 {
		return 0, false
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	return u + s, err1 == nil && err2 == nil
}

// killInit SIGKILLs a task's main process.
func killInit(pid int) error {
	if pid <= 1 {
		return fmt.Errorf("no process to kill (pid %d)", pid)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %d: %w", pid, err)
	}
	return nil
}
