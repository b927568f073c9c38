package node

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

// A config is checked before anything is written, and says which field
// is wrong.
func TestConfigValidate(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		name string
		cfg  Config
		err  string
	}{
		{"no data dir", Config{Bootstrap: &Bootstrap{Settings: Settings{Listen: "127.0.0.1:4270"}}}, "no data dir"},
		{"both", Config{DataDir: dir, Bootstrap: &Bootstrap{}, Join: &Join{}}, "not both"},
		{"no listen", Config{DataDir: dir, Bootstrap: &Bootstrap{}}, "--listen"},
		{"credentials in the URL", Config{DataDir: dir, Bootstrap: &Bootstrap{Settings: Settings{Listen: "127.0.0.1:4270"},
			Source: &api.SourceSpec{URL: "https://u:secret-pw@git.example/r.git"}}}, "credentials in the URL"},
		{"a password for ssh", Config{DataDir: dir, Bootstrap: &Bootstrap{Settings: Settings{Listen: "127.0.0.1:4270"},
			Source: &api.SourceSpec{URL: "ssh://git@git.example/r.git"}, GitPassword: api.SecretBytes("pw")}}, "only for an https --repo"},
		{"a bad raft timeout", Config{DataDir: dir, Join: &Join{Token: "t", Manager: "m:1", Settings: Settings{Timing: Timing{RaftTimeout: api.Duration(1)}}}}, "--raft-timeout"},
		{"join without a token", Config{DataDir: dir, Join: &Join{Manager: "m:1"}}, "token"},
		{"nothing to open", Config{DataDir: dir}, "holds no node"},
	} {
		err := tc.cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.err)
		}
		if err != nil && strings.Contains(err.Error(), "secret-pw") {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
	}
	if _, err := New(context.Background(), Config{DataDir: filepath.Join(dir, "x"), Bootstrap: &Bootstrap{}}); err == nil {
		t.Error("New took a config Validate refuses")
	}
}

// Bootstrap with autolock makes the unlock key once: the caller shows
// it, or the node's report carries it (bootstrap -o json).
func TestBootstrapUnlockKey(t *testing.T) {
	for _, inReport := range []bool{false, true} {
		dir := filepath.Join(t.TempDir(), "m")
		n, err := New(context.Background(), Config{DataDir: dir, Bootstrap: &Bootstrap{
			Settings: Settings{Listen: "127.0.0.1:4270", NoWorker: true}, Network: api.DefaultNetworkConfig(),
			Autolock: true, UnlockKeyInReport: inReport}})
		if err != nil {
			t.Fatal(err)
		}
		key := n.UnlockKey()
		if !strings.HasPrefix(key, "GTRC-UNLOCK-1-") {
			t.Fatalf("unlock key %q", key)
		}
		rep := n.Report()
		if got := rep.UnlockKey != ""; got != inReport || (inReport && rep.UnlockKey != key) {
			t.Errorf("UnlockKeyInReport %v: the report's key is %q", inReport, rep.UnlockKey)
		}
		if rep.Role != api.RoleManager || rep.Worker || rep.Listen != "127.0.0.1:4270" || rep.RaftListen != "127.0.0.1:4271" {
			t.Errorf("report %+v", rep)
		}
		// The state file is written last: a second bootstrap is refused.
		if _, err := New(context.Background(), Config{DataDir: dir, Bootstrap: &Bootstrap{Settings: Settings{Listen: "127.0.0.1:4270"}}}); err == nil ||
			!strings.Contains(err.Error(), "already holds a node") {
			t.Errorf("a second bootstrap in %s: %v", dir, err)
		}
	}
}
