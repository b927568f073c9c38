package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/controlapitest"
	"github.com/gitorc/gitorc/cluster/controlapi/server"
	"github.com/gitorc/gitorc/cluster/orchestrator"
	"github.com/gitorc/gitorc/cluster/store"
)

type client struct {
	t  *testing.T
	hc *http.Client
}

func newClient(t *testing.T) (*client, *controlapitest.Fixture) {
	f := controlapitest.New(t)
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", f.Socket)
	}}}
	return &client{t: t, hc: hc}, f
}

// call sends a request and decodes a 2xx answer into out; it returns the
// status code and, for errors, the error message.
func (c *client) call(method, path, body string, out any) (int, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, "http://gitorc"+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		c.t.Errorf("%s %s: content type %q", method, path, ct)
	}
	if resp.StatusCode/100 != 2 {
		var e controlapi.Error
		if err := json.Unmarshal(buf.Bytes(), &e); err != nil || e.Error == "" {
			c.t.Fatalf("%s %s: %d with body %q", method, path, resp.StatusCode, buf.String())
		}
		return resp.StatusCode, e.Error
	}
	if out != nil {
		// Decode into a zero value: json merges into maps and keeps
		// fields the body omits.
		reflect.ValueOf(out).Elem().SetZero()
		if err := json.Unmarshal(buf.Bytes(), out); err != nil {
			c.t.Fatalf("%s %s: decode %q: %v", method, path, buf.String(), err)
		}
	}
	return resp.StatusCode, ""
}

func (c *client) mustOK(method, path, body string, out any) {
	c.t.Helper()
	if code, msg := c.call(method, path, body, out); code != http.StatusOK {
		c.t.Fatalf("%s %s: %d %s", method, path, code, msg)
	}
}

func (c *client) wantErr(method, path, body string, code int, substr string) {
	c.t.Helper()
	got, msg := c.call(method, path, body, nil)
	if got != code || !strings.Contains(msg, substr) {
		c.t.Errorf("%s %s: got %d %q, want %d containing %q", method, path, got, msg, code, substr)
	}
}

func TestSocketIsOwnerOnly(t *testing.T) {
	_, f := newClient(t)
	fi, err := os.Stat(f.Socket)
	if err != nil {
		t.Fatal(err)
	}
	if m := fi.Mode().Perm(); m != 0o600 {
		t.Errorf("socket mode %o, want 600", m)
	}
	if _, err := server.ListenUnix(f.Socket); err == nil || !strings.Contains(err.Error(), "another gitorc") {
		t.Errorf("second listener on a live socket: %v", err)
	}
}

func TestNodes(t *testing.T) {
	c, _ := newClient(t)
	var nodes []controlapi.Node
	c.mustOK("GET", "/v1/nodes", "", &nodes)
	var got []string
	for _, n := range nodes {
		got = append(got, n.Name+":"+n.Status.State.String()+":"+string(rune('0'+n.Tasks)))
	}
	if want := "alpha:ready:2 beta:down:0 boss:ready:2"; strings.Join(got, " ") != want {
		t.Errorf("nodes %v, want %s", got, want)
	}

	for _, ref := range []string{"alpha", "n1"} {
		var n controlapi.Node
		c.mustOK("GET", "/v1/nodes/"+ref, "", &n)
		if n.ID != "n1" {
			t.Errorf("node %s is %s", ref, n.ID)
		}
	}
	c.wantErr("GET", "/v1/nodes/zeta", "", 404, `node "zeta" not found`)

	var n controlapi.Node
	c.mustOK("POST", "/v1/nodes/alpha", `{"availability":"drain","label_add":{"zone":"a","disk":"ssd"}}`, &n)
	if n.Spec.Availability != api.AvailabilityDrain || n.Spec.Labels["zone"] != "a" || n.Spec.Labels["disk"] != "ssd" {
		t.Errorf("after update: %+v", n.Spec)
	}
	var read controlapi.Node
	c.mustOK("GET", "/v1/nodes/alpha?consistent=1", "", &read)
	if read.Spec.Labels["zone"] != "a" || read.Version != n.Version {
		t.Errorf("consistent read after update: version %d, labels %v; want version %d with zone=a", read.Version, read.Spec.Labels, n.Version)
	}
	c.mustOK("POST", "/v1/nodes/alpha", `{"label_rm":["zone"]}`, &n)
	if _, ok := n.Spec.Labels["zone"]; ok || n.Spec.Labels["disk"] != "ssd" || n.Spec.Availability != api.AvailabilityDrain {
		t.Errorf("after label-rm: %+v", n.Spec)
	}
	c.wantErr("POST", "/v1/nodes/alpha", `{"availability":"sleepy"}`, 400, `invalid availability "sleepy"`)
	c.wantErr("POST", "/v1/nodes/alpha", `{"label_rm":["nope"]}`, 400, `no label "nope"`)
	c.wantErr("POST", "/v1/nodes/alpha", `{"labels":{}}`, 400, "invalid request body")
	c.wantErr("POST", "/v1/nodes/alpha?version=1", `{"availability":"active"}`, 409, "changed since version 1")
	c.mustOK("POST", "/v1/nodes/alpha?version="+itoa(n.Version), `{"availability":"active"}`, &n)

	c.wantErr("DELETE", "/v1/nodes/alpha", "", 409, "node alpha is ready")
	c.wantErr("DELETE", "/v1/nodes/boss?force=1", "", 409, "is a manager")
	c.mustOK("DELETE", "/v1/nodes/beta", "", nil)
	c.mustOK("DELETE", "/v1/nodes/alpha?force=1", "", nil)
	c.wantErr("GET", "/v1/nodes/beta", "", 404, `node "beta" not found`)
	c.mustOK("GET", "/v1/nodes", "", &nodes)
	if len(nodes) != 1 || nodes[0].Name != "boss" || !nodes[0].Manager.Leader {
		t.Errorf("nodes left: %+v", nodes)
	}
}

func itoa(v uint64) string { b, _ := json.Marshal(v); return string(b) }

func TestServices(t *testing.T) {
	c, _ := newClient(t)
	var svcs []controlapi.Service
	c.mustOK("GET", "/v1/services", "", &svcs)
	type row struct {
		name             string
		running, desired uint64
		progress         string
	}
	var got []row
	for _, s := range svcs {
		got = append(got, row{s.Spec.Name, s.Running, s.Desired, s.Progress()})
	}
	want := []row{{"shop_mon", 2, 2, ""}, {"shop_web", 2, 3, "updating 2/3, 1 failed"}, {"solo", 0, 1, ""}}
	if len(got) != len(want) {
		t.Fatalf("services %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("service %d: %+v, want %+v", i, got[i], want[i])
		}
	}
	var web controlapi.Service
	c.mustOK("GET", "/v1/services/svcweb", "", &web)
	if web.Spec.Name != "shop_web" || web.Update.Message != "updating 2/3" {
		t.Errorf("by id: %+v", web.Service)
	}
	c.wantErr("GET", "/v1/services/nope", "", 404, `service "nope" not found`)
}

func TestScale(t *testing.T) {
	c, _ := newClient(t)
	var web controlapi.Service
	c.mustOK("POST", "/v1/services/shop_web/scale", `{"replicas":5}`, &web)
	if web.Spec.Replicas != 5 || web.Desired != 5 || web.Spec.Labels[controlapi.LabelChangedBy] != "scale 5" {
		t.Errorf("scaled: replicas %d desired %d labels %v", web.Spec.Replicas, web.Desired, web.Spec.Labels)
	}
	if web.PreviousSpec.Task.Container.Image != controlapitest.WebOld || web.PreviousSpec.Labels[controlapi.LabelChangedBy] != "" {
		t.Errorf("scale touched the previous spec: %+v", web.PreviousSpec)
	}
	c.mustOK("POST", "/v1/services/shop_web/scale", `{"replicas":0}`, &web)
	if web.Spec.Replicas != 0 {
		t.Errorf("scale to 0: %d", web.Spec.Replicas)
	}
	c.wantErr("POST", "/v1/services/shop_mon/scale", `{"replicas":2}`, 400, "shop_mon is global: only replicated services scale")
	c.wantErr("POST", "/v1/services/shop_web/scale", `{}`, 400, "replicas is required")
	c.wantErr("POST", "/v1/services/shop_web/scale", `{"replicas":-1}`, 400, "invalid request body")
	c.wantErr("POST", "/v1/services/nope/scale", `{"replicas":1}`, 404, `service "nope" not found`)
	c.wantErr("POST", "/v1/services/shop_web/scale?version=1", `{"replicas":1}`, 409, "service shop_web changed since version 1")
}

func TestRollbackAndForce(t *testing.T) {
	c, f := newClient(t)
	var web controlapi.Service
	c.mustOK("POST", "/v1/services/shop_web/rollback", "", &web)
	if web.Spec.Task.Container.Image != controlapitest.WebOld || web.PreviousSpec.Task.Container.Image != controlapitest.WebNew {
		t.Errorf("rollback did not swap specs: spec %s previous %s", web.Spec.Task.Container.Image, web.PreviousSpec.Task.Container.Image)
	}
	want := api.UpdateStatus{State: api.UpdateRollbackStarted, StartedAt: f.Now, Target: orchestrator.SpecTarget(web.Spec.Task),
		Message: "rollback requested by operator"}
	if web.Update == nil || *web.Update != want {
		t.Errorf("update status %+v, want %+v", web.Update, want)
	}
	if web.Progress() != "rolling back 0/3" {
		t.Errorf("progress %q", web.Progress())
	}
	c.wantErr("POST", "/v1/services/shop_web/rollback", "", 409, "already rolling back")
	c.wantErr("POST", "/v1/services/solo/rollback", "", 409, "solo has no previous spec")

	var solo controlapi.Service
	c.mustOK("POST", "/v1/services/solo/force", "", &solo)
	if solo.Spec.Task.ForceUpdate != 1 || solo.PreviousSpec == nil || solo.PreviousSpec.Task.ForceUpdate != 0 || solo.Update != nil {
		t.Errorf("force: %+v", solo.Service)
	}
	c.mustOK("POST", "/v1/services/solo/force", "", &solo)
	if solo.Spec.Task.ForceUpdate != 2 || solo.Spec.Labels[controlapi.LabelChangedBy] != "force update" {
		t.Errorf("second force: %+v", solo.Spec)
	}
	c.wantErr("POST", "/v1/services/solo/force", `{"x":1}`, 400, "invalid request body")
}

func TestTasks(t *testing.T) {
	c, _ := newClient(t)
	var tasks []controlapi.Task
	c.mustOK("GET", "/v1/tasks?service=shop_web", "", &tasks)
	var got []string
	for _, t := range tasks {
		got = append(got, t.ID+"@"+t.NodeName+":"+t.DesiredState.String()+"/"+t.Status.State.String())
	}
	want := "t-web-1@alpha:running/running t-web-2@boss:running/running t-web-2-old@alpha:shutdown/failed t-web-3@:running/pending"
	if strings.Join(got, " ") != want {
		t.Errorf("tasks\n got %v\nwant %s", got, want)
	}
	if tasks[3].Status.Err != controlapitest.PendingErr {
		t.Errorf("pending task error %q", tasks[3].Status.Err)
	}
	c.mustOK("GET", "/v1/tasks?stack=shop", "", &tasks)
	if len(tasks) != 6 || tasks[0].ServiceName != "shop_mon" {
		t.Errorf("stack tasks: %d, first %s", len(tasks), tasks[0].ServiceName)
	}
	c.mustOK("GET", "/v1/tasks?node=boss", "", &tasks)
	if len(tasks) != 2 || tasks[0].ID != "t-mon-b" || tasks[1].ID != "t-web-2" {
		t.Errorf("tasks on boss: %+v", tasks)
	}
	c.mustOK("GET", "/v1/tasks", "", &tasks)
	if len(tasks) != 6 {
		t.Errorf("all tasks: %d", len(tasks))
	}
	c.wantErr("GET", "/v1/tasks?stack=nope", "", 404, `stack "nope" not found`)
	c.wantErr("GET", "/v1/tasks?service=nope", "", 404, `service "nope" not found`)
	c.wantErr("GET", "/v1/tasks?service=a&stack=b", "", 400, "not both")
	c.wantErr("GET", "/v1/tasks?node=zeta", "", 404, `node "zeta" not found`)
	c.wantErr("GET", "/v1/nothing", "", 404, "no endpoint GET /v1/nothing")
}

// Secrets and configs list each version with the services and live tasks
// that use it, never their content nor the cluster's own secrets.
func TestSecretsAndConfigs(t *testing.T) {
	c, f := newClient(t)
	pinned := func(name, version string) []api.FileRef {
		return []api.FileRef{{Name: name, Version: version, Target: "/run/secrets/pw"}}
	}
	objs := []api.Object{
		&api.Secret{Meta: api.Meta{ID: "s-cur"}, Spec: api.SecretSpec{Name: "app_pw", Stack: "app", DataHash: "h2", Data: api.SecretBytes("plain-new")}},
		&api.Secret{Meta: api.Meta{ID: "s-old"}, Spec: api.SecretSpec{Name: api.VersionName("app_pw", "h1"), DataHash: "h1",
			Labels: map[string]string{api.LabelVersionOf: "app_pw"}, Data: api.SecretBytes("plain-old")}},
		&api.Secret{Meta: api.Meta{ID: "s-int"}, Spec: api.SecretSpec{Name: "ca-key", Labels: map[string]string{api.LabelInternal: "ca"}, Data: api.SecretBytes("k")}},
		&api.Config{Meta: api.Meta{ID: "c-motd"}, Spec: api.ConfigSpec{Name: "app_motd", DataHash: "m1", Data: []byte("hello")}},
		&api.Service{Meta: api.Meta{ID: "svc-app"}, Spec: api.ServiceSpec{Name: "app_api", Task: api.TaskSpec{Container: api.ContainerSpec{
			Image: "x", Secrets: pinned("app_pw", "h2"), Configs: []api.FileRef{{Name: "app_motd", Target: "/motd"}}}}}},
		&api.Task{Meta: api.Meta{ID: "t-app-old"}, ServiceID: "svc-app", DesiredState: api.TaskRunning, Status: api.TaskStatus{State: api.TaskRunning},
			Spec: api.TaskSpec{Container: api.ContainerSpec{Image: "x", Secrets: pinned("app_pw", "h1")}}},
	}
	if _, err := f.Store.Update(context.Background(), func(tx store.Tx) error {
		for _, o := range objs {
			if err := tx.Create(o); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var secrets []controlapi.FileObject
	c.mustOK("GET", "/v1/secrets", "", &secrets)
	var got []string
	for _, s := range secrets {
		got = append(got, fmt.Sprintf("%s %s of=%q services=%v tasks=%d", s.Name, s.DataHash, s.VersionOf, s.Services, s.Tasks))
	}
	want := []string{`app_pw h2 of="" services=[app_api] tasks=0`, `app_pw h1 of="app_pw@h1" services=[] tasks=1`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("secrets\n got %q\nwant %q", got, want)
	}
	var configs []controlapi.FileObject
	c.mustOK("GET", "/v1/configs", "", &configs)
	if len(configs) != 1 || configs[0].Name != "app_motd" || !slices.Equal(configs[0].Services, []string{"app_api"}) {
		t.Errorf("configs %+v", configs)
	}
	var raw json.RawMessage
	c.mustOK("GET", "/v1/secrets", "", &raw)
	if strings.Contains(string(raw), "plain-") {
		t.Errorf("a secret's content in the answer: %s", raw)
	}
}

// Registry logins: set, listed without their password, replaced,
// removed; a bad host or a missing field is refused.
func TestRegistries(t *testing.T) {
	c, _ := newClient(t)
	var reg controlapi.Registry
	c.mustOK("PUT", "/v1/registries/registry.example.com:5000", `{"username":"ci","password":"pw-one"}`, &reg)
	c.mustOK("PUT", "/v1/registries/registry.example.com:5000", `{"username":"deploy","password":"pw-two"}`, &reg)
	var raw json.RawMessage
	c.mustOK("GET", "/v1/registries", "", &raw)
	var list []controlapi.Registry
	if err := json.Unmarshal(raw, &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Host != "registry.example.com:5000" || list[0].Username != "deploy" {
		t.Errorf("registries %+v, want one login, deploy@registry.example.com:5000", list)
	}
	if strings.Contains(string(raw), "pw-") {
		t.Errorf("a password in the answer: %s", raw)
	}
	var secrets []controlapi.FileObject
	c.mustOK("GET", "/v1/secrets", "", &secrets)
	for _, s := range secrets {
		if strings.Contains(s.Name, "registry") {
			t.Errorf("a registry login listed as a secret tasks use: %+v", s)
		}
	}
	c.wantErr("PUT", "/v1/registries/registry.example.com:5000", `{"username":"x"}`, 400, "username and password are required")
	c.wantErr("PUT", "/v1/registries/https:%2F%2Fexample.com", `{"username":"x","password":"y"}`, 400, "without a scheme")
	c.mustOK("DELETE", "/v1/registries/registry.example.com:5000", "", &reg)
	c.mustOK("GET", "/v1/registries", "", &list)
	if len(list) != 0 {
		t.Errorf("after logout: %+v", list)
	}
	c.wantErr("DELETE", "/v1/registries/registry.example.com:5000", "", 404, "no login for registry registry.example.com:5000")
}

// External objects: a subnet inside the cluster's pools and an object a
// stack owns are refused.
func TestExternalObjectsRefused(t *testing.T) {
	c, f := newClient(t)
	owned := map[string]string{api.LabelManagedBy: "gitorc", api.LabelStack: "app"}
	if _, err := f.Store.Update(context.Background(), func(tx store.Tx) error {
		if err := tx.Create(&api.Cluster{Meta: api.Meta{ID: api.ClusterID}, Spec: api.ClusterSpec{Network: api.DefaultNetworkConfig()}}); err != nil {
			return err
		}
		return tx.Create(&api.Secret{Spec: api.SecretSpec{Name: "app_pw", Labels: owned, Data: api.SecretBytes("x")}})
	}); err != nil {
		t.Fatal(err)
	}
	c.wantErr("POST", "/v1/networks", `{"name":"clash","subnet":"10.64.9.0/24"}`, 400, "subnet 10.64.9.0/24 overlaps the cluster's")
	c.wantErr("DELETE", "/v1/secrets/app_pw", "", 409, "secret app_pw belongs to a stack (or to the cluster): change it in Git")
	c.wantErr("POST", "/v1/secrets", `{"name":"app_pw","data":"eA=="}`, 409, "secret app_pw exists")
}

// The event stream: --since replays what changed since, then each
// committed change arrives as a typed line, filtered by type.
func TestEvents(t *testing.T) {
	c, f := newClient(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://gitorc/v1/events?type=task,sync&since=87600h", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("events: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	dec := json.NewDecoder(resp.Body)
	next := func() controlapi.Event {
		t.Helper()
		var e controlapi.Event
		if err := dec.Decode(&e); err != nil {
			t.Fatal(err)
		}
		return e
	}
	// The stream is up (its watch made before the replay): change the
	// store, then read the replay and the live changes.
	if _, err := f.Store.Update(context.Background(), func(tx store.Tx) error {
		tk, err := store.Get[api.Task](tx, "t-web-1")
		if err != nil {
			return err
		}
		tk.Status = api.TaskStatus{State: api.TaskFailed, Err: "task: non-zero exit (1)", Timestamp: f.Now.Add(time.Minute)}
		if err := tx.Update(tk); err != nil {
			return err
		}
		if err := tx.Update(mustNode(t, tx)); err != nil { // a node change: filtered out
			return err
		}
		return tx.Create(&api.SyncRecord{Meta: api.Meta{ID: "rec-1"}, Revision: "abc123", StartedAt: f.Now})
	}); err != nil {
		t.Fatal(err)
	}
	replayed := 0
	var e controlapi.Event
	for e = next(); e.Replayed; e = next() {
		if e.Type != controlapi.EventTask && e.Type != controlapi.EventSync {
			t.Errorf("replayed a %s event with type=task,sync: %+v", e.Type, e)
		}
		replayed++
	}
	if replayed < 6 {
		t.Errorf("%d events replayed, want the seed's 6 tasks at least", replayed)
	}
	got := []controlapi.Event{e, next()}
	if got[0].Type != controlapi.EventTask || got[0].Name != "shop_web.1" || got[0].State != "failed" || got[0].Message != "task: non-zero exit (1)" {
		t.Errorf("task event %+v", got[0])
	}
	if got[1].Type != controlapi.EventSync || got[1].Action != "started" || got[1].Revision != "abc123" {
		t.Errorf("sync event %+v", got[1])
	}
	c.wantErr("GET", "/v1/events?type=pods", "", 400, `event type "pods"`)
}

func mustNode(t *testing.T, tx store.Tx) *api.Node {
	ns, err := store.Find[api.Node](tx, store.All())
	if err != nil || len(ns) == 0 {
		t.Fatalf("nodes: %v", err)
	}
	ns[0].Spec.Labels = map[string]string{"touched": "yes"}
	return ns[0]
}
