package containerd_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/agent"
	"github.com/gitorc/gitorc/cluster/api"
)

func TestSecretFiles_Root(t *testing.T) {
	requireRoot(t)
	plain := make([]byte, 24)
	_, _ = rand.Read(plain)
	token := []byte("s3cret-" + hex.EncodeToString(plain))
	sum := sha256.Sum256(token)

	// The container proves it reads the secret by its hash: the plaintext
	// must not reach the log, which is on disk.
	script := `stat -c '%a %u %g' /run/secrets/db_password; sha256sum /run/secrets/db_password | cut -c1-64 2>/dev/null || sha256sum /run/secrets/db_password
cat /etc/app.conf
if echo x > /run/secrets/db_password 2>/dev/null; then echo writable; fi
echo ready; sleep 3600`
	task := newTask(t, env.image, withCommand("sh", "-c", script), func(t *api.Task) {
		t.Spec.Container.Secrets = []api.FileRef{{Name: "db_password", Target: "/run/secrets/db_password", UID: "0", GID: "0", Mode: 0o400}}
		t.Spec.Container.Configs = []api.FileRef{{Name: "app_conf", Target: "/etc/app.conf", Mode: 0o444}}
	})
	files := agent.Files{
		Secrets: map[string]api.SecretBytes{"db_password": token},
		Configs: map[string][]byte{"app_conf": []byte("level=debug\n")},
	}
	runTask(t, task, files)
	waitFor(t, 30*time.Second, func() (bool, string) {
		l := logs(t, env.exec, task.ID)
		return strings.Contains(l, "ready"), "log: " + l
	})
	log := logs(t, env.exec, task.ID)
	if !strings.Contains(log, "400 0 0\n") {
		t.Errorf("secret file mode/owner: log %q, want 400 0 0", log)
	}
	if !strings.Contains(log, hex.EncodeToString(sum[:])) {
		t.Errorf("secret content hash missing from log %q", log)
	}
	if !strings.Contains(log, "level=debug") {
		t.Errorf("config content missing from log %q", log)
	}
	if strings.Contains(log, "writable") {
		t.Errorf("secret file is writable in the container")
	}
	// On the host: a tmpfs of the task's own, nodev,nosuid,noexec.
	mp := filepath.Join(nodeDir(), "tasks", task.ID, "files")
	opts := mountOptions(mp)
	for _, o := range []string{"nodev", "nosuid", "noexec"} {
		if !strings.Contains(opts, o) {
			t.Errorf("secret tmpfs %s options %q lack %s", mp, opts, o)
		}
	}
	if _, err := env.exec.Remove(context.Background(), task.ID); err != nil {
		t.Fatalf("remove: %v", err)
	}
	assertGone(t, env.exec, nodeDir(), task.ID)
	// The plaintext is nowhere on disk: not in the data dir (containerd's
	// root and state, logs, task files), nor where shims keep state.
	for _, root := range []string{env.dir, "/run/containerd"} {
		if p := findBytes(t, root, token); p != "" {
			t.Errorf("secret plaintext found in %s", p)
		}
	}
}

// findBytes returns the first regular file under root containing b.
func findBytes(t *testing.T, root string, b []byte) string {
	t.Helper()
	found := ""
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || found != "" {
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		data, err := os.ReadFile(p)
		if err == nil && bytes.Contains(data, b) {
			found = p
		}
		return nil
	})
	return found
}
