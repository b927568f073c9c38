package node

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/controlapi/client"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// A token with a TTL (gitorc token --ttl) stops admitting nodes when it
// expires, with a message that says so and how to get a new one; a
// rotation or a TTL of 0 clears the TTL; without one a token never
// expires. (gitorc token's own refusal of a negative --ttl, before it
// calls the node: cmd/gitorc's TestTokenRefusesANegativeTTL.)
func TestTokenTTL(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	m1, _, _ := firstManager(t, managerFlags(t, filepath.Join(tmp, "m1")))
	c := managerClient(m1)
	// answer is a token call's report, as gitorc token -o json prints it.
	answer := func(what string) func(controlapi.TokenReport, error) controlapi.TokenReport {
		return func(rep controlapi.TokenReport, err error) controlapi.TokenReport {
			t.Helper()
			if err != nil {
				t.Fatalf("token %s: %v", what, err)
			}
			return rep
		}
	}
	if rep := answer("worker")(c.Token(ctx, "worker")); rep.Expires != nil {
		t.Errorf("a new token expires (%v): want never, as Swarm's", rep.Expires)
	}
	hour := answer("worker --ttl 1h")(c.SetTokenTTL(ctx, "worker", time.Hour))
	if hour.Expires == nil || hour.Expires.Before(time.Now().Add(59*time.Minute)) || hour.Expires.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("--ttl 1h: expires %v", hour.Expires)
	}
	if rep := answer("worker")(c.Token(ctx, "worker")); rep.Expires == nil || !rep.Expires.Equal(*hour.Expires) || rep.Token != hour.Token {
		t.Errorf("the TTL is not kept: %+v", rep)
	}
	if rep := answer("worker --ttl 0")(c.SetTokenTTL(ctx, "worker", 0)); rep.Expires != nil || rep.Token != hour.Token {
		t.Errorf("--ttl 0 keeps an expiry or changes the token: %+v", rep)
	}
	// The node refuses a negative TTL too (the CLI does not send one).
	if rep, err := c.SetTokenTTL(ctx, "worker", -time.Second); err == nil || client.StatusOf(err) != http.StatusBadRequest {
		t.Errorf("a negative TTL: %+v, %v; want a bad request", rep, err)
	}
	if rep := answer("worker")(c.Token(ctx, "worker")); rep.Expires != nil || rep.Token != hour.Token {
		t.Errorf("a refused negative TTL changed the token: %+v", rep)
	}

	// A token past its TTL is refused at join.
	short := answer("manager --ttl 1s")(c.SetTokenTTL(ctx, "manager", time.Second))
	if short.Expires == nil {
		t.Fatal("--ttl 1s: no expiry")
	}
	if err := storetest.WaitFor(func() bool { return !time.Now().Before(*short.Expires) }, 10*time.Second); err != nil {
		t.Fatal("the clock never passed the expiry")
	}
	_, err := testJoin(ctx, managerFlags(t, filepath.Join(tmp, "late")), short.Token, m1.state.Advertise)
	if err == nil || !strings.Contains(err.Error(), "the manager token expired at") || !strings.Contains(err.Error(), "gitorc token manager --rotate") {
		t.Errorf("join with an expired token: %v", err)
	}
	// A rotation gives a token without TTL, which admits.
	if rep := answer("manager --rotate")(c.RotateToken(ctx, "manager", nil)); rep.Expires != nil || rep.Token == short.Token {
		t.Errorf("rotate: %+v", rep)
	}
}
