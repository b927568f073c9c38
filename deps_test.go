package gitorc_test

import (
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/gitorc/gitorc"

type pkgInfo struct {
	ImportPath string
	Imports    []string
	Name       string
}

// listPackages returns every package of the module with its direct imports
// (tests excluded: test helpers may cross layers).
func listPackages(t *testing.T) []pkgInfo {
	t.Helper()
	cmd := exec.Command("go", "list", "-json", "./...")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pkgs []pkgInfo
	dec := json.NewDecoder(out)
	for {
		var p pkgInfo
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("go list: %v", err)
	}
	return pkgs
}

func rel(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, module), "/") }

func under(p, dir string) bool { return p == dir || strings.HasPrefix(p, dir+"/") }

// managerSide are the cluster packages that run on managers.
var managerSide = []string{"cluster/store", "cluster/orchestrator", "cluster/scheduler",
	"cluster/allocator", "cluster/dispatcher", "cluster/ca", "cluster/controlapi/server", "cluster/logs"}

// agentSide are the packages that run on workers.
var agentSide = []string{"cluster/agent", "netplane"}

func anyUnder(p string, dirs []string) bool {
	for _, d := range dirs {
		if under(p, d) {
			return true
		}
	}
	return false
}

// cliImports are what the CLI may import: the API's types and client,
// the node it starts (bootstrap, join, daemon), the CA's admin
// certificates (its credentials: a CSR, a TLS directory), and the
// libraries its offline commands use (validate, seal, a local diff).
var cliImports = []string{"cluster/api", "cluster/controlapi", "cluster/node", "compose", "reconcile", "secrets"}

// rule says whether package p may import gitorc package imp (both relative).
func allowed(p, imp string) (bool, string) {
	if under(imp, "cmd") {
		return false, "nothing imports cmd/"
	}
	switch {
	case under(p, "cmd/gitorc"):
		if imp == "cluster/ca" || (anyUnder(imp, cliImports) && !under(imp, "cluster/controlapi/server") && !under(imp, "cluster/node/nodetest")) {
			return true, ""
		}
		return false, "cmd/gitorc is the CLI: it imports the control API's types and client, cluster/node (which runs a node), cluster/ca (admin credentials) and the offline libraries (compose, reconcile, secrets), never the manager's or the agent's insides"
	case under(p, "cluster/node"):
		return true, ""
	case p == "cluster/controlapi":
		return imp == "cluster/api", "cluster/controlapi is the API's types: it imports cluster/api only, so that a client links none of the manager's insides"
	case p == "cluster/api":
		return false, "cluster/api imports no other gitorc package"
	case under(p, "compose"):
		return under(imp, "compose") || imp == "cluster/api", "compose imports cluster/api only"
	case under(p, "reconcile/storecluster"):
		return under(imp, "reconcile") || under(imp, "compose") || imp == "cluster/api" || imp == "cluster/store",
			"reconcile/storecluster implements reconcile.Cluster over cluster/store: the one reconcile package that may import the store"
	case under(p, "reconcile"):
		return under(imp, "reconcile") || under(imp, "compose") || imp == "cluster/api",
			"reconcile imports compose, cluster/api and its own subpackages (the store only through an interface it declares)"
	case under(p, "netplane"), under(p, "secrets"):
		top := strings.SplitN(p, "/", 2)[0]
		return under(imp, top) || imp == "cluster/api", top + " is a leaf: cluster/api only"
	case under(p, "cluster/dispatcher/wire"):
		return imp == "cluster/api", "the wire protocol imports cluster/api only: both the dispatcher and the agent depend on it"
	case under(p, "cluster/store"):
		return under(imp, "cluster/store") || imp == "cluster/api", "the store imports cluster/api only: it is the bus, not a client of others"
	case under(p, "cluster/controlapi/client"):
		return imp == "cluster/api" || imp == "cluster/controlapi",
			"the control API's client imports cluster/api and controlapi (its types) only: the CLI, e2e tools and tests use it without the manager's insides"
	case under(p, "cluster/agent"):
		if under(imp, "cluster/dispatcher/wire") {
			return true, "" // the protocol both ends speak, not the dispatcher itself
		}
		for _, m := range managerSide {
			if under(imp, m) {
				return false, "the agent never imports manager-side packages: the store and the dispatcher protocol are the bus"
			}
		}
		return under(imp, "cluster") || under(imp, "netplane") || under(imp, "secrets"), "the agent imports cluster packages, netplane and secrets only"
	case under(p, "cluster"):
		if under(imp, "reconcile") || under(imp, "compose") {
			return false, "cluster/* never imports reconcile or compose"
		}
		if under(imp, "cluster/agent") {
			return false, "manager-side packages never import cluster/agent"
		}
		return true, ""
	}
	return true, ""
}

// TestImportRules enforces the design's import rules on every package.
func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	for _, p := range pkgs {
		for _, imp := range p.Imports {
			if !strings.HasPrefix(imp, module+"/") {
				continue
			}
			if ok, why := allowed(rel(p.ImportPath), rel(imp)); !ok {
				t.Errorf("%s imports %s: %s", rel(p.ImportPath), rel(imp), why)
			}
		}
		r := rel(p.ImportPath)
		if !under(r, "cluster/node") && !under(r, "cmd/gitorc") && !under(r, "e2e") {
			var mgr, agent []string
			for _, imp := range p.Imports {
				if i := rel(imp); strings.HasPrefix(imp, module+"/") && anyUnder(i, managerSide) {
					mgr = append(mgr, i)
				} else if strings.HasPrefix(imp, module+"/") && anyUnder(i, agentSide) {
					agent = append(agent, i)
				}
			}
			if len(mgr) > 0 && len(agent) > 0 && !anyUnder(r, agentSide) && !anyUnder(r, managerSide) {
				t.Errorf("%s imports manager-side %v and agent-side %v: only cluster/node (and cmd/gitorc through it) wires both", r, mgr, agent)
			}
		}
		if p.Name == "main" && !under(rel(p.ImportPath), "cmd") && !under(rel(p.ImportPath), "e2e") {
			t.Errorf("%s is a main package outside cmd/ (and e2e/ for test tools)", rel(p.ImportPath))
		}
	}
}

// The rule table itself must catch violations.
func TestImportRulesCatchViolations(t *testing.T) {
	bad := [][2]string{
		{"cluster/api", "compose"},
		{"compose", "reconcile"},
		{"compose", "cluster/store"},
		{"cluster/store", "reconcile"},
		{"cluster/orchestrator", "compose"},
		{"cluster/scheduler", "cluster/agent"},
		{"cluster/agent", "cluster/store"},
		{"cluster/agent/containerd", "cluster/dispatcher"},
		{"netplane", "cluster/store"},
		{"secrets", "compose"},
		{"reconcile", "cluster/store"},
		{"reconcile", "cmd/gitorc"},
		{"cluster/store", "cluster/scheduler"},
		{"reconcile/gitsource", "cluster/store"},
		{"cluster/dispatcher/wire", "cluster/store"},
		{"reconcile/storecluster", "cluster/scheduler"},
		{"cluster/controlapi/client", "cluster/store"},
		{"cluster/controlapi/client", "cluster/ca"},
		{"cmd/gitorc", "cluster/store"},
		{"cmd/gitorc", "cluster/agent/containerd"},
		{"cmd/gitorc", "cluster/controlapi/server"},
		{"cmd/gitorc", "netplane"},
		{"cmd/gitorc", "cluster/dispatcher"},
		{"cluster/controlapi", "cluster/store"},
	}
	for _, b := range bad {
		if ok, _ := allowed(b[0], b[1]); ok {
			t.Errorf("%s importing %s is allowed", b[0], b[1])
		}
	}
	good := [][2]string{{"compose", "cluster/api"}, {"reconcile", "compose"}, {"cluster/store", "cluster/api"}, {"cluster/store/storetest", "cluster/store"},
		{"cluster/agent/containerd", "cluster/agent"}, {"cmd/gitorc", "cluster/node"}, {"cmd/gitorc", "cluster/controlapi/client"}, {"netplane", "cluster/api"},
		{"cluster/node", "cluster/store"}, {"cluster/node", "cluster/agent/containerd"},
		{"reconcile/storecluster", "cluster/store"}, {"reconcile/storecluster", "reconcile"},
		{"cluster/agent/session", "cluster/dispatcher/wire"}, {"cluster/controlapi/client", "cluster/controlapi"}}
	for _, g := range good {
		if ok, why := allowed(g[0], g[1]); !ok {
			t.Errorf("%s importing %s is refused: %s", g[0], g[1], why)
		}
	}
}

// TestPackageDocs checks that every package has a doc.go saying what it owns.
func TestPackageDocs(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", "{{.ImportPath}} {{.Doc}}", "./...").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		path, doc, _ := strings.Cut(line, " ")
		if strings.TrimSpace(doc) == "" {
			t.Errorf("%s has no package documentation (doc.go)", rel(path))
		}
	}
}
