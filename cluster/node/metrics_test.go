package node

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store/storetest"
	"github.com/gitorc/gitorc/e2e/gitserver"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// scrape fetches GET /metrics and parses it with Prometheus's text parser.
func scrape(t *testing.T, addr string) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Accept", "text/plain") // the text format, not protobuf
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// series are a family's samples as "label=value,…" → value (counters,
// gauges; a histogram's sample count).
func series(mfs map[string]*dto.MetricFamily, name string) map[string]float64 {
	out := map[string]float64{}
	mf := mfs[name]
	if mf == nil {
		return out
	}
	for _, m := range mf.GetMetric() {
		var ls []string
		for _, l := range m.GetLabel() {
			ls = append(ls, l.GetName()+"="+l.GetValue())
		}
		sort.Strings(ls)
		var v float64
		switch {
		case m.GetCounter() != nil:
			v = m.GetCounter().GetValue()
		case m.GetGauge() != nil:
			v = m.GetGauge().GetValue()
		case m.GetHistogram() != nil:
			v = float64(m.GetHistogram().GetSampleCount())
		}
		out[strings.Join(ls, ",")] = v
	}
	return out
}

// sumWhere adds the samples of name whose labels include every one of want.
func sumWhere(mfs map[string]*dto.MetricFamily, name string, want ...string) float64 {
	var sum float64
	for ls, v := range series(mfs, name) {
		have := strings.Split(ls, ",")
		ok := true
		for _, w := range want {
			found := false
			for _, h := range have {
				found = found || h == w
			}
			ok = ok && found
		}
		if ok {
			sum += v
		}
	}
	return sum
}

// /metrics on a real manager following a repository served by git
// http-backend: after the first sync, a synced run is counted and the
// revision gauge names the commit; a broken commit pushed by webhook is a
// failed run, and the delivery is counted; the next good commit replaces
// the revision gauge's series rather than adding one.
func TestMetricsOnDaemon(t *testing.T) {
	if why := gitserver.Requirements(); why != "" {
		t.Skip(why)
	}
	ctx := context.Background()
	const secret = "metrics-hook-key"
	tmp := t.TempDir()
	repo, srv, first := servedRepo(t, tmp)
	hookAddr, metricsAddr, dir := freeAddr(t), freeAddr(t), filepath.Join(tmp, "m")
	d, err := testBootstrap(testFlags{dataDir: dir, listen: freeAddr(t), raftListen: freeAddr(t), noWorker: true,
		repo: srv.URL, branch: "main", interval: time.Hour, webhookListen: hookAddr, webhookSecret: secret,
		metricsListen: metricsAddr})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := loadState(dir); err != nil || st.MetricsListen != metricsAddr {
		t.Fatalf("the metrics address is not kept for restarts: %+v %v", st, err)
	}
	startLoggedNode(t, d)
	socket := socketFile(dir)
	waitState := func(what string, cond func(api.SyncState) bool) {
		t.Helper()
		waitSync(t, socket, what, func(r controlapi.SyncReport) bool { return cond(r.State) })
	}
	waitState("synced the first commit", func(s api.SyncState) bool { return s.Revision == first && s.Phase == api.SyncSynced })

	mfs := scrape(t, metricsAddr)
	if got := sumWhere(mfs, "gitorc_sync_runs_total", "result=synced"); got < 1 {
		t.Errorf("gitorc_sync_runs_total{result=synced} = %v after the first sync; series %v", got, series(mfs, "gitorc_sync_runs_total"))
	}
	if got := series(mfs, "gitorc_sync_revision_info"); len(got) != 1 || got["revision="+first] != 1 {
		t.Errorf("gitorc_sync_revision_info = %v, want only revision=%s", got, first)
	}
	if got := series(mfs, "gitorc_sync_last_good_revision_info"); len(got) != 1 || got["revision="+first] != 1 {
		t.Errorf("gitorc_sync_last_good_revision_info = %v, want only revision=%s", got, first)
	}
	if got := series(mfs, "gitorc_sync_phase"); got["phase=synced"] != 1 || got["phase=failed"] != 0 || len(got) != 6 {
		t.Errorf("gitorc_sync_phase = %v", got)
	}
	if got := series(mfs, "gitorc_raft_leader"); got[""] != 1 {
		t.Errorf("gitorc_raft_leader = %v, want 1 on the only manager", got)
	}
	if got := sumWhere(mfs, "gitorc_raft_commit_seconds"); got < 1 {
		t.Errorf("no Raft commit timed: %v", got)
	}
	if got := series(mfs, "gitorc_tasks"); len(got) != 1 || got["service=app_web,state=running"] != 0 {
		t.Errorf("gitorc_tasks = %v, want app_web running 0 (no replicas)", got)
	}
	if got := sumWhere(mfs, "gitorc_rollouts"); got != 1 {
		t.Errorf("gitorc_rollouts sums to %v, want the one service: %v", got, series(mfs, "gitorc_rollouts"))
	}
	for _, name := range []string{"go_goroutines", "process_resident_memory_bytes", "gitorc_sync_duration_seconds", "gitorc_task_start_latency_seconds"} {
		if mfs[name] == nil {
			t.Errorf("no %s", name)
		}
	}
	synced := sumWhere(mfs, "gitorc_sync_runs_total", "result=synced")

	deliver := func(key, commit string) int {
		t.Helper()
		code, _, err := gitserver.Deliver(ctx, "http://"+hookAddr, []byte(key), "main", commit)
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	// A broken commit: a failed run, counted by trigger.
	broken, err := repo.Commit("main", "broken", map[string]string{"app/compose.yaml": "services:\n  web:\n    image: [\n"})
	if err != nil {
		t.Fatal(err)
	}
	if code := deliver("wrong", broken); code != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", code)
	}
	if code := deliver(secret, broken); code != http.StatusAccepted {
		t.Fatalf("push: %d", code)
	}
	waitState("failed the broken commit", func(s api.SyncState) bool { return s.Phase == api.SyncFailed })
	mfs = scrape(t, metricsAddr)
	if got := series(mfs, "gitorc_sync_runs_total")["result=failed,trigger=webhook"]; got != 1 {
		t.Errorf("gitorc_sync_runs_total{trigger=webhook,result=failed} = %v, want 1: %v", got, series(mfs, "gitorc_sync_runs_total"))
	}
	if got := series(mfs, "gitorc_sync_phase"); got["phase=failed"] != 1 || got["phase=synced"] != 0 {
		t.Errorf("gitorc_sync_phase = %v, want failed", got)
	}
	if got := series(mfs, "gitorc_sync_failed_revisions"); got[""] != 1 {
		t.Errorf("gitorc_sync_failed_revisions = %v, want 1", got)
	}
	hooks := series(mfs, "gitorc_webhook_deliveries_total")
	if hooks["outcome=sync_queued,provider=github"] != 1 || hooks["outcome=refused,provider=github"] != 1 {
		t.Errorf("gitorc_webhook_deliveries_total = %v, want one queued and one refused github delivery", hooks)
	}

	// A good commit: synced again, and the revision gauge names it alone.
	second, err := repo.Commit("main", "second", zeroReplicaStack("busybox:2"))
	if err != nil {
		t.Fatal(err)
	}
	if code := deliver(secret, second); code != http.StatusAccepted {
		t.Fatalf("push: %d", code)
	}
	waitState("synced the second commit", func(s api.SyncState) bool { return s.Revision == second && s.Phase == api.SyncSynced })
	// The state is read at scrape; the run is counted when Sync returns,
	// just after the state is written.
	if err := storetest.WaitFor(func() bool {
		mfs = scrape(t, metricsAddr)
		return sumWhere(mfs, "gitorc_sync_runs_total", "result=synced") > synced
	}, 30*time.Second); err != nil {
		t.Errorf("gitorc_sync_runs_total{result=synced} stayed %v: %v", synced, series(mfs, "gitorc_sync_runs_total"))
	}
	if got := series(mfs, "gitorc_sync_revision_info"); len(got) != 1 || got["revision="+second] != 1 {
		t.Errorf("gitorc_sync_revision_info = %v, want only revision=%s", got, second)
	}
	if got := series(mfs, "gitorc_sync_last_good_revision_info"); len(got) != 1 || got["revision="+second] != 1 {
		t.Errorf("gitorc_sync_last_good_revision_info = %v, want only revision=%s", got, second)
	}
	if s := fmt.Sprint(series(mfs, "gitorc_sync_runs_total")); strings.Contains(s, first) {
		t.Errorf("a revision is a label of gitorc_sync_runs_total: %s", s)
	}
}
