package containerd_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

// BenchmarkMemory50_Root measures the memory of a node running 50
// replicas of one service: the RSS and PSS (smaps_rollup) of the
// executor's process (this test binary, which also holds the package's
// shared executor, so read it as an upper bound; "exec_idle" is the same
// process before the tasks start), of containerd, of its shims and of any
// other process the shims run beside the tasks (log drivers, which
// versions before the executor read the FIFOs itself ran), per
// Config.TasksPerShim. Run with
// `go test ./cluster/agent/containerd -run '^$' -bench Memory50 -benchtime 1x`.
func BenchmarkMemory50_Root(b *testing.B) {
	requireRoot(b)
	const n = 50
	for _, perShim := range []int{10, 25, 50} {
		b.Run(fmt.Sprintf("perShim%d", perShim), func(b *testing.B) {
			e := benchExecutor(b, perShim, "")
			var last procMemory
			for i := 0; i < b.N; i++ {
				tasks := make([]*api.Task, n)
				for j := range tasks {
					tasks[j] = newTask(b, env.image, trapTERM, func(t *api.Task) {
						t.ServiceID = fmt.Sprintf("svc-mem-%d-%d", perShim, i)
						t.Slot = uint64(j + 1)
					})
				}
				idle := readMemory(os.Getpid())
				errs := make(chan error, n)
				for _, task := range tasks {
					go func() {
						err := e.Prepare(context.Background(), task, agent.Files{})
						if err == nil {
							err = e.Start(context.Background(), task.ID)
						}
						errs <- err
					}()
				}
				for range tasks {
					if err := <-errs; err != nil {
						b.Error(err)
					}
				}
				b.StopTimer()
				last = nodeMemory(env.exec.Address())
				last.execIdle = idle
				for _, task := range tasks {
					go func() {
						_, err := e.Remove(context.Background(), task.ID)
						errs <- err
					}()
				}
				for range tasks {
					if err := <-errs; err != nil {
						b.Error(err)
					}
				}
				b.StartTimer()
				if b.Failed() {
					return
				}
			}
			mib := func(kb int64) float64 { return float64(kb) / 1024 }
			for _, m := range []struct {
				name string
				v    mem
			}{{"exec_idle", last.execIdle}, {"exec", last.exec}, {"containerd", last.containerd}, {"shims", last.shims}, {"others", last.others}} {
				b.ReportMetric(mib(m.v.rss), m.name+"_RSS_MiB")
				b.ReportMetric(mib(m.v.pss), m.name+"_PSS_MiB")
			}
			b.ReportMetric(float64(last.nShims), "shims")
			b.ReportMetric(float64(last.nOthers), "others")
		})
	}
}

type mem struct{ rss, pss int64 } // kB

func (m *mem) add(o mem) { m.rss += o.rss; m.pss += o.pss }

type procMemory struct {
	execIdle, exec, containerd, shims, others mem
	nShims, nOthers                           int
}

// nodeMemory sums the memory of this process, the containerd serving
// address, its shims and the shims' children other than the tasks' init
// processes (which run in their own PID namespaces).
func nodeMemory(address string) procMemory {
	pm := procMemory{exec: readMemory(os.Getpid())}
	ents, _ := os.ReadDir("/proc")
	shims := map[int]bool{}
	type proc struct {
		pid, ppid int
		args      []string
	}
	var all []proc
	for _, d := range ents {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
		all = append(all, proc{pid: pid, ppid: parentPID(pid), args: args})
	}
	cfg := filepath.Join(filepath.Dir(address), "config.toml")
	for _, p := range all {
		switch {
		case filepath.Base(p.args[0]) == "containerd" && strings.Contains(strings.Join(p.args, " "), cfg):
			pm.containerd.add(readMemory(p.pid))
		case filepath.Base(p.args[0]) == "containerd-shim-runc-v2" && strings.Contains(strings.Join(p.args, " "), "-address "+address):
			pm.shims.add(readMemory(p.pid))
			pm.nShims++
			shims[p.pid] = true
		}
	}
	for _, p := range all {
		if !shims[p.ppid] || inOwnPIDNamespace(p.pid) {
			continue
		}
		pm.others.add(readMemory(p.pid))
		pm.nOthers++
	}
	return pm
}

func parentPID(pid int) int {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	// pid (comm) state ppid …; comm may hold spaces.
	if i := bytes.LastIndexByte(b, ')'); i >= 0 {
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 1 {
			ppid, _ := strconv.Atoi(f[1])
			return ppid
		}
	}
	return 0
}

func inOwnPIDNamespace(pid int) bool {
	self, _ := os.Readlink("/proc/self/ns/pid")
	other, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/pid", pid))
	return err == nil && other != self
}

// readMemory reads Rss and Pss of a process from smaps_rollup.
func readMemory(pid int) mem {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return mem{}
	}
	defer f.Close()
	var m mem
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "Rss:":
			m.rss = v
		case "Pss:":
			m.pss = v
		}
	}
	return m
}
