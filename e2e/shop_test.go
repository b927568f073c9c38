package e2e

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
)

// examples/shop as a user deploys it, on two nodes: its secret sealed for
// this cluster, its configs' content in the tasks, its tiers talking by
// name and alias over the overlay, its published port serving the
// frontend's page, and its internal backend network without a way out.
func TestShopTiersTalk_Root(t *testing.T) {
	c, _ := netCluster(t, 2)
	dir := filepath.Join(t.TempDir(), "shop")
	if err := os.CopyFS(dir, os.DirFS("../examples/shop")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, ".env"), []byte("REGISTRY="+c.registryAddr()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The example's secret is sealed for another cluster: seal a password
	// of the test's for this one, as the README tells a user to.
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	password := "pw-" + hex.EncodeToString(b)
	recipient, err := os.ReadFile(filepath.Join(c.dirs[0], "recipient.txt"))
	if err != nil {
		t.Fatal(err)
	}
	seal := exec.Command(c.bin, "seal", "--recipient", strings.TrimSpace(string(recipient)), "-o", filepath.Join(dir, "db_password.age"))
	seal.Stdin = strings.NewReader(password)
	if out, err := seal.CombinedOutput(); err != nil {
		t.Fatalf("seal: %v\n%s", err, out)
	}
	if out, err := c.gitorc("stack", "deploy", "-c", filepath.Join(dir, "compose.yaml"), "--env-file", filepath.Join(dir, ".env"), "shop"); err != nil {
		t.Fatalf("deploy: %v\n%s", err, out)
	}
	// Running and healthy: in their services' load-balancing sets.
	serving := func(svc string, n int) bool {
		ts := c.liveTasks(svc)
		return len(ts) == n && !slices.ContainsFunc(ts, func(t api.Task) bool { return !t.InLoadBalancer() })
	}
	c.waitFor("every tier serving", 3*time.Minute, func() bool {
		return serving("shop_frontend", 2) && serving("shop_api", 2) && serving("shop_db", 1)
	})
	status, err := os.ReadFile("../examples/shop/status.json")
	if err != nil {
		t.Fatal(err)
	}
	page, err := os.ReadFile("../examples/shop/frontend.html")
	if err != nil {
		t.Fatal(err)
	}
	// Every frontend task reaches the api by its name and its alias on
	// the backend network, wherever the api's tasks run.
	for _, front := range c.liveTasks("shop_frontend") {
		for _, name := range []string{"api", "shop-api", "shop_api"} {
			out, err := c.exec(front, 20*time.Second, "sh", "-c", "timeout 5 wget -q -O - http://"+name+":9000/status.json")
			if err != nil || out != string(status) {
				t.Errorf("frontend on h%d -> http://%s:9000/status.json: %v %q, want the api's config %q", c.host(front.NodeID), name, err, out, status)
			}
		}
	}
	// Every api task reaches the db, and the db holds the password sealed
	// above (decrypted on the managers, a file in the task's tmpfs).
	for _, a := range c.liveTasks("shop_api") {
		if out, err := c.exec(a, 20*time.Second, "sh", "-c", "timeout 5 wget -q -O - http://db:5432/ping"); err != nil || out != "db-ok\n" {
			t.Errorf("api on h%d -> http://db:5432/ping: %v %q", c.host(a.NodeID), err, out)
		}
	}
	db := c.liveTasks("shop_db")[0]
	if out, err := c.exec(db, 20*time.Second, "cat", "/run/secrets/db_password"); err != nil || out != password {
		t.Errorf("the db's secret: %v, %d bytes (not the sealed password)", err, len(out))
	}
	// The frontend's page on the published port of every node.
	for i := 1; i <= 2; i++ {
		h := c.nw.Host(i)
		for _, url := range []string{"http://127.0.0.1:8081/", "http://" + h.Addr.String() + ":8081/"} {
			var out []byte
			c.waitFor("the page on "+h.Name+" "+url, time.Minute, func() bool {
				out, err = exec.Command("nsenter", "--net=/run/netns/"+h.NS, "curl", "-fsS", "-m", "3", url).Output()
				return err == nil
			})
			if string(out) != string(page) {
				t.Errorf("h%d %s: %q, want the frontend's page", i, url, out)
			}
		}
	}
	// The backend network is internal: an api task (on it only) has no
	// route out of the cluster; a frontend task (also on public) has.
	outURL := outsideServer(t, c)
	if out, err := c.exec(c.liveTasks("shop_frontend")[0], 20*time.Second, "sh", "-c", "timeout 5 wget -q -O - "+outURL); err != nil || !strings.HasPrefix(out, "from-outside ") {
		t.Errorf("a frontend task (network public) cannot reach outside the cluster: %v %q", err, out)
	}
	if out, err := c.exec(c.liveTasks("shop_api")[0], 20*time.Second, "sh", "-c", "timeout 3 wget -q -O - "+outURL); err == nil {
		t.Errorf("an api task (internal network backend only) reached outside the cluster: %q", out)
	}
}
