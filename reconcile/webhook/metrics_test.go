package webhook

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

type queueAll struct{}

func (queueAll) Trigger(context.Context, Event) error { return nil }

// Every answer is counted by provider and outcome; a path that names no
// provider counts as unknown, so senders cannot grow the label set.
func TestHandlerCountsDeliveries(t *testing.T) {
	m := NewMetrics()
	h, err := NewHandler(Config{Secret: []byte("s3cret"), Ref: "main", Metrics: m}, queueAll{})
	if err != nil {
		t.Fatal(err)
	}
	post := func(path string, hdr http.Header, body []byte) int {
		r := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
		for k, v := range hdr {
			r.Header[k] = v
		}
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		return w.Code
	}
	body := sample(t, "github_push.json")
	signed := hdr(HeaderGitHubEvent, "push")
	signed.Set(HeaderHubSignature256, Sign([]byte("s3cret"), body))
	if c := post("/hooks/github", signed, body); c != http.StatusAccepted {
		t.Fatalf("signed push: %d", c)
	}
	if c := post("/hooks/GitHub", signed, body); c != http.StatusAccepted {
		t.Fatalf("signed push, provider in capitals: %d", c)
	}
	if c := post("/hooks/github", hdr(HeaderGitHubEvent, "push", HeaderHubSignature256, "sha256=00"), body); c != http.StatusUnauthorized {
		t.Fatalf("bad signature: %d", c)
	}
	for _, p := range []string{"/hooks/bitbucket", "/hooks/x1", "/hooks/x2"} {
		if c := post(p, nil, body); c != http.StatusNotFound {
			t.Fatalf("%s: %d", p, c)
		}
	}
	for _, tc := range []struct {
		provider, outcome string
		want              float64
	}{
		{"github", ActionQueued, 2},
		{"github", ActionRefused, 1},
		{ProviderUnknown, ActionRefused, 3},
		{"gitlab", ActionQueued, 0},
	} {
		if got := testutil.ToFloat64(m.deliveries.WithLabelValues(tc.provider, tc.outcome)); got != tc.want {
			t.Errorf("deliveries{provider=%s,outcome=%s} = %v, want %v", tc.provider, tc.outcome, got, tc.want)
		}
	}
	if n := testutil.CollectAndCount(m.deliveries); n != 4 { // the three above that were seen, and the gitlab one just created
		t.Errorf("%d series, want 4", n)
	}
}

func TestNilMetricsCountNothing(t *testing.T) {
	var m *Metrics
	m.Observe("github", ActionQueued) // must not panic
}
