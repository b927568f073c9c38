package main

// What the security commands (unlock, unlock-key, cluster update, ca)
// print, and what they send, against a fake control API (fakeapi_test.go): the node's
// tests (cluster/node's autolock_test.go, carotate_test.go) check the
// answers themselves through the typed client.

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/reconcile"
)

const testUnlockKey = "GTRC-UNLOCK-1-AAAABBBBCCCCDDDD"

// gitorc unlock reads the key from --key-file (its line, trimmed), sends
// it, and prints the answer (-o json: the report); a key refused is the
// daemon's message and a failure.
func TestUnlockPrints(t *testing.T) {
	fake, socket := serveFake(t, map[string]func([]byte) (int, any){
		"POST /v1/unlock": answer(http.StatusOK, controlapi.UnlockReport{Unlocked: true, Node: "m2id"}),
	})
	file := t.TempDir() + "/key"
	if err := os.WriteFile(file, []byte(testUnlockKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustRun(t, "unlock", "--socket", socket, "--key-file", file)
	if out != "manager unlocked: node m2id starts\n" {
		t.Errorf("unlock printed %q", out)
	}
	out = mustRun(t, "unlock", "--socket", socket, "--key-file", file, "-o", "json")
	var rep controlapi.UnlockReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Unlocked || rep.Node != "m2id" || !strings.Contains(out, `"unlocked": true`) {
		t.Errorf("unlock -o json printed %s (%v)", out, err)
	}
	for _, b := range fake.bodies("POST /v1/unlock") {
		var req controlapi.UnlockRequest
		if err := json.Unmarshal([]byte(b), &req); err != nil || req.Key != testUnlockKey {
			t.Errorf("unlock sent %s, want the key alone", b)
		}
	}
	if n := len(fake.bodies("POST /v1/unlock")); n != 2 {
		t.Errorf("unlock called the API %d times, want 2", n)
	}

	const wrong = "the unlock key is wrong: this manager stays locked"
	_, socket = serveFake(t, map[string]func([]byte) (int, any){
		"POST /v1/unlock": answer(http.StatusBadRequest, controlapi.Error{Error: wrong}),
	})
	mustFail(t, wrong, "unlock", "--socket", socket, "--key-file", file)
	if _, errOut, code := runIn(t, "\n", "unlock", "--socket", socket); code == 0 || !strings.Contains(errOut, "no key given") {
		t.Errorf("unlock with no key: exit %d %s", code, errOut)
	}
}

// A locked manager answers every call but unlock with why: gitorc status
// shows that message and fails.
func TestStatusOnLockedManager(t *testing.T) {
	const locked = "this manager is locked (autolock): give it its unlock key with gitorc unlock"
	_, socket := serveFake(t, map[string]func([]byte) (int, any){
		"GET /v1/sync": answer(http.StatusServiceUnavailable, controlapi.Error{Error: locked}),
	})
	mustFail(t, locked, "status", "--socket", socket)
}

// gitorc unlock-key prints the key (-q alone, -o json the report), with
// --rotate the new key; with autolock off it fails and says how to turn it
// on (but -o json still prints the report).
func TestUnlockKeyPrints(t *testing.T) {
	const rotated = "GTRC-UNLOCK-1-EEEEFFFFGGGGHHHH"
	fake, socket := serveFake(t, map[string]func([]byte) (int, any){
		"GET /v1/unlock-key":         answer(http.StatusOK, controlapi.UnlockKeyReport{Autolock: true, Key: testUnlockKey}),
		"POST /v1/unlock-key/rotate": answer(http.StatusOK, controlapi.UnlockKeyReport{Autolock: true, Key: rotated}),
	})
	if out := mustRun(t, "unlock-key", "-q", "--socket", socket); out != testUnlockKey+"\n" {
		t.Errorf("unlock-key -q printed %q", out)
	}
	if out := mustRun(t, "unlock-key", "--rotate", "-q", "--socket", socket); out != rotated+"\n" {
		t.Errorf("unlock-key --rotate -q printed %q", out)
	}
	if n := len(fake.bodies("POST /v1/unlock-key/rotate")); n != 1 {
		t.Errorf("--rotate called rotate %d times, want 1", n)
	}
	if out := mustRun(t, "unlock-key", "--socket", socket); !strings.Contains(out, "Autolock is on") || !strings.Contains(out, "    "+testUnlockKey+"\n") {
		t.Errorf("unlock-key printed:\n%s", out)
	}
	out := mustRun(t, "unlock-key", "-o", "json", "--socket", socket)
	var rep controlapi.UnlockKeyReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || !rep.Autolock || rep.Key != testUnlockKey {
		t.Errorf("unlock-key -o json printed %s (%v)", out, err)
	}

	_, socket = serveFake(t, map[string]func([]byte) (int, any){
		"GET /v1/unlock-key": answer(http.StatusOK, controlapi.UnlockKeyReport{}),
	})
	mustFail(t, "autolock is off: turn it on with gitorc cluster update --autolock=true", "unlock-key", "-q", "--socket", socket)
	out = mustRun(t, "unlock-key", "-o", "json", "--socket", socket)
	rep = controlapi.UnlockKeyReport{Autolock: true} // the answer must say false
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Autolock || rep.Key != "" {
		t.Errorf("unlock-key -o json with autolock off printed %s (%v)", out, err)
	}
}

// gitorc cluster update --autolock=false sends autolock off and says it
// is off (-o json: the report); --autolock=true prints the new key; no
// flag is refused before any call.
func TestClusterUpdateAutolockPrints(t *testing.T) {
	fake, socket := serveFake(t, map[string]func([]byte) (int, any){
		"POST /v1/autolock": answer(http.StatusOK, controlapi.UnlockKeyReport{}),
	})
	if out := mustRun(t, "cluster", "update", "--autolock=false", "--socket", socket); !strings.Contains(out, "autolock is off") {
		t.Errorf("cluster update --autolock=false printed %q", out)
	}
	out := mustRun(t, "cluster", "update", "--autolock=false", "-o", "json", "--socket", socket)
	rep := controlapi.UnlockKeyReport{Autolock: true} // the answer must say false
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Autolock || rep.Key != "" {
		t.Errorf("cluster update -o json printed %s (%v)", out, err)
	}
	for _, b := range fake.bodies("POST /v1/autolock") {
		var req controlapi.AutolockRequest
		if err := json.Unmarshal([]byte(b), &req); err != nil || req.Autolock {
			t.Errorf("--autolock=false sent %s", b)
		}
	}
	mustFail(t, "nothing to change", "cluster", "update", "--socket", socket)
	if n := len(fake.bodies("POST /v1/autolock")); n != 2 {
		t.Errorf("cluster update called the API %d times, want 2", n)
	}

	_, socket = serveFake(t, map[string]func([]byte) (int, any){
		"POST /v1/autolock": answer(http.StatusOK, controlapi.UnlockKeyReport{Autolock: true, Key: testUnlockKey}),
	})
	if out := mustRun(t, "cluster", "update", "--autolock=true", "--socket", socket); !strings.Contains(out, "    "+testUnlockKey+"\n") {
		t.Errorf("cluster update --autolock=true printed:\n%s", out)
	}
}

// gitorc ca shows a rotation's progress, nodes on the new root out of
// all, naming those it waits for.
func TestPrintCARotation(t *testing.T) {
	var b bytes.Buffer
	printCA(&b, controlapi.CAReport{Root: "sha256:old", RootNotAfter: time.Date(2036, 1, 2, 0, 0, 0, 0, time.UTC),
		Rotation: &controlapi.RotationReport{NewRoot: "sha256:new", Started: time.Now().Add(-time.Minute), Nodes: 4, Done: 3,
			Pending: []controlapi.PendingNode{{ID: "m3id", Hostname: "host3", Role: "manager", State: api.NodeDown.String()}}}})
	out := b.String()
	for _, want := range []string{"root CA:   sha256:old (expires 2036-01-02)", "rotation:  to sha256:new",
		"nodes on the new root: 3/4; waiting for m3id (host3) [down]"} {
		if !strings.Contains(out, want) {
			t.Errorf("printCA: no %q in\n%s", want, out)
		}
	}
	b.Reset()
	printCA(&b, controlapi.CAReport{Root: "sha256:new", RotatedAt: time.Now()})
	if !strings.Contains(b.String(), "rotation:  none") || !strings.Contains(b.String(), "rotated:") {
		t.Errorf("printCA after a rotation:\n%s", b.String())
	}
}

// gitorc ca rotate --detach says the rotation started (or that one runs
// already) and returns without waiting.
func TestCARotateDetachPrints(t *testing.T) {
	started, notStarted := true, false
	rotation := &controlapi.RotationReport{NewRoot: "sha256:new", Nodes: 4, Done: 0}
	fake, socket := serveFake(t, map[string]func([]byte) (int, any){
		"POST /v1/ca/rotate": answer(http.StatusOK, controlapi.CAReport{Root: "sha256:old", Rotation: rotation, Started: &started}),
	})
	if out := mustRun(t, "ca", "rotate", "--detach", "--socket", socket); out != "rotation started: new root sha256:new\n" {
		t.Errorf("ca rotate --detach printed %q", out)
	}
	if n := len(fake.bodies("GET /v1/ca")); n != 0 {
		t.Errorf("ca rotate --detach polled the CA %d times", n)
	}
	_, socket = serveFake(t, map[string]func([]byte) (int, any){
		"POST /v1/ca/rotate": answer(http.StatusOK, controlapi.CAReport{Root: "sha256:old", Rotation: rotation, Started: &notStarted}),
	})
	if out := mustRun(t, "ca", "rotate", "-d", "--socket", socket); !strings.Contains(out, "a rotation is in progress already: to root sha256:new") {
		t.Errorf("ca rotate -d during a rotation printed %q", out)
	}
}

// gitorc stack deploy prints the plan the manager applied: a service
// created is "+ service NAME (create)".
func TestStackPlanPrints(t *testing.T) {
	plan, err := json.Marshal(reconcile.Changeset{Steps: []reconcile.Step{
		{Kind: reconcile.KindService, Name: "demo_web", Stack: "demo", Action: reconcile.Create},
		{Kind: reconcile.KindSecret, Name: "demo_pw", Stack: "demo", Action: reconcile.Create}}})
	if err != nil {
		t.Fatal(err)
	}
	cs, err := stackPlan(plan, nil)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := reconcile.Format(&b, cs, false, false); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "+ service demo_web (create)") {
		t.Errorf("the plan printed:\n%s", b.String())
	}
}
