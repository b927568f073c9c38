package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/e2e/gitserver"
)

// canaryForms are the ways a secret's bytes could be written: as they
// are, in hex, and in base64 at each alignment (the stable middle of its
// encoding, as JSON encodes []byte).
func canaryForms(c string) [][]byte {
	forms := [][]byte{[]byte(c), []byte(hex.EncodeToString([]byte(c)))}
	for pad := range 3 {
		enc := base64.StdEncoding.EncodeToString(append(make([]byte, pad), c...))
		// Drop what the padding bytes and the end's partial group touch.
		forms = append(forms, []byte(enc[4:len(enc)-4]))
	}
	return forms
}

// mountsUnder are the mount points strictly under the roots: a task's
// secret tmpfs is memory, and a container's rootfs shows files scanned
// where they lie.
func mountsUnder(t *testing.T, roots []string) map[string]bool {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		mp := strings.ReplaceAll(fields[4], `\040`, " ")
		for _, r := range roots {
			if strings.HasPrefix(mp, r+"/") {
				out[mp] = true
			}
		}
	}
	return out
}

// scanForCanary reads every regular file under the roots (not below a
// mount point inside them) and returns those that hold a form of c.
func scanForCanary(t *testing.T, roots []string, c string) (found []string, files int) {
	t.Helper()
	forms := canaryForms(c)
	skip := mountsUnder(t, roots)
	for _, root := range roots {
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				return nil // gone meanwhile (a task's files), or unreadable: not on disk
			}
			if d.IsDir() && skip[path] {
				return filepath.SkipDir
			}
			if !d.Type().IsRegular() {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return nil
			}
			files++
			for _, f := range forms {
				if bytes.Contains(b, f) {
					found = append(found, path)
					break
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	return found, files
}

// A sealed secret's content is on no disk of the cluster: after a deploy,
// a rotation (a rollout), a leader change and a restart of a manager and
// a worker, no file under any node's data dir (store, Raft log and
// snapshots, containerd's root and state, task logs, the Git clone) nor
// the nodes' own logs holds it, while the tasks read it from their tmpfs.
func TestNoPlaintextOnDisk_Root(t *testing.T) {
	requireE2E(t)
	c, _ := newHACluster(t)
	ctx := context.Background()
	repo, err := gitserver.NewRepo(filepath.Join(t.TempDir(), "git"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := repo.Commit("main", "empty", map[string]string{"README": "stacks\n"}); err != nil {
		t.Fatal(err)
	}
	srv, err := gitserver.Serve(repo, net.JoinHostPort(c.nw.Gateway.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	recipient, err := os.ReadFile(filepath.Join(c.dirs[0], "recipient.txt"))
	if err != nil {
		t.Fatal(err)
	}
	newCanary := func() string {
		b := make([]byte, 16)
		_, _ = rand.Read(b)
		return "canary-" + hex.EncodeToString(b)
	}
	seal := func(plain string) string {
		t.Helper()
		out := filepath.Join(t.TempDir(), "pw.age")
		cmd := exec.Command(c.bin, "seal", "--recipient", strings.TrimSpace(string(recipient)), "-o", out)
		cmd.Stdin = strings.NewReader(plain)
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("seal: %v\n%s", err, b)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	stack := fmt.Sprintf(`services:
  web:
    image: %s/gitorc/busybox:1
    command: ["sleep", "3600"]
    stop_grace_period: 1s
    secrets: [pw]
    deploy:
      replicas: 2
      update_config:
        parallelism: 1
        order: start-first
secrets:
  pw:
    file: ./pw.age
`, c.registryAddr())
	// reads is what each running task of app_web reads from its secret.
	reads := func() map[string]string {
		out := map[string]string{}
		for id, tk := range runningOf(c.haTasks("app"), "app_web") {
			dir := ""
			for _, d := range c.dirs {
				b, err := os.ReadFile(filepath.Join(d, "node.json"))
				var st struct {
					ID string `json:"id"`
				}
				if err == nil && json.Unmarshal(b, &st) == nil && st.ID == tk.NodeID {
					dir = d
				}
			}
			sock := filepath.Join(dir, "executor", "containerd", "containerd.sock")
			b, _ := exec.CommandContext(ctx, "ctr", "--address", sock, "--namespace", "gitorc", "task", "exec",
				"--exec-id", fmt.Sprintf("e2e-%d", time.Now().UnixNano()), id, "cat", "/run/secrets/pw").Output()
			out[id] = string(b)
		}
		return out
	}
	allRead := func(want string) bool {
		r := reads()
		for _, got := range r {
			if got != want {
				return false
			}
		}
		return len(r) == 2
	}
	push := func(msg, plain string) {
		t.Helper()
		if _, err := repo.Commit("main", msg, map[string]string{"app/compose.yaml": stack, "app/pw.age": seal(plain)}); err != nil {
			t.Fatal(err)
		}
		if out, err := c.gitorc("sync", "--wait", "--timeout", "120s"); err != nil {
			t.Fatalf("sync: %v\n%s", err, out)
		}
	}

	if out, err := c.gitorc("source", "set", "--repo", srv.URL, "--branch", "main", "--interval", "1h"); err != nil {
		t.Fatalf("source set: %v\n%s", err, out)
	}
	first := newCanary()
	push("secret one", first)
	c.waitFor("2 tasks reading the first secret", 120*time.Second, func() bool { return allRead(first) })

	// A rotation rolls the tasks.
	second := newCanary()
	push("secret two", second)
	c.waitFor("2 tasks reading the second secret", 120*time.Second, func() bool { return allRead(second) })

	// A leader change: the leader is killed, and started again.
	li := -1
	for _, m := range c.managers(true) {
		if m.Manager.Leader {
			for i, h := range c.nw.Hosts[:3] {
				if strings.HasPrefix(m.Manager.Addr, h.Addr.String()+":") {
					li = i
				}
			}
		}
	}
	if li < 0 {
		t.Fatal("no leader among the managers' hosts")
	}
	c.procs[li].Kill()
	<-c.procs[li].Done()
	c.socket = filepath.Join(c.dirs[(li+1)%3], "gitorc.sock")
	c.waitFor("a new leader", 60*time.Second, func() bool {
		for _, m := range c.managers(false) {
			if m.Manager.Leader {
				return true
			}
		}
		return false
	})
	restart := func(i int) {
		t.Helper()
		p, err := c.nw.Host(i+1).Start(c.logs, c.bin, "daemon", "--data-dir", c.dirs[i])
		if err != nil {
			t.Fatal(err)
		}
		c.procs[i] = p
	}
	restart(li)
	// A worker restarts too (its tasks are adopted, their tmpfs kept).
	if err := c.procs[3].Stop(10 * time.Second); err != nil {
		t.Logf("stop h4: %v", err)
	}
	restart(3)
	c.waitFor("3 managers caught up and 2 ready workers", 120*time.Second, func() bool {
		return len(c.managers(true)) == 3 &&
			len(c.nodes(func(n nodeView) bool { return n.Spec.Role == "worker" && n.Status.State == "ready" })) == 2
	})
	c.waitFor("2 tasks reading the second secret after the restarts", 120*time.Second, func() bool { return allRead(second) })

	roots := append(append([]string(nil), c.dirs...), c.logs)
	for _, canary := range []string{first, second} {
		found, files := scanForCanary(t, roots, canary)
		if len(found) > 0 {
			t.Errorf("a secret's content is on disk in %d files:\n%s", len(found), strings.Join(found, "\n"))
		}
		if files < 100 {
			t.Errorf("only %d files scanned: the data dirs are not where the test looks", files)
		}
	}
	// The scan finds what is there: the canary written to a file of a
	// data dir is found.
	probe := filepath.Join(c.dirs[4], "probe")
	if err := os.WriteFile(probe, []byte(`{"data":"`+base64.StdEncoding.EncodeToString([]byte(" "+second))+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if found, _ := scanForCanary(t, roots, second); len(found) != 1 || found[0] != probe {
		t.Errorf("the scan missed the canary written in base64 to %s: found %v", probe, found)
	}
}
