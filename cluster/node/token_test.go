//go:build porting

package node

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gitorc/gitorc/cluster/controlapi"
	"github.com/gitorc/gitorc/cluster/store/storetest"
)

// gitorc token --ttl: a token with a TTL stops admitting nodes when it
// expires, with a message that says so and how to get a new one; a
// rotation or --ttl 0 clears the TTL; without one a token never expires.
func TestTokenTTL(t *testing.T) {
	ctx := context.Background()
	tmp := t.TempDir()
	m1, _, _ := firstManager(t, managerFlags(t, filepath.Join(tmp, "m1")))
	socket := socketFile(m1.dir)
	token := func(args ...string) controlapi.TokenReport {
		t.Helper()
		out, errOut, code := run(t, append([]string{"token", "--socket", socket, "-o", "json"}, args...)...)
		var rep controlapi.TokenReport
		if code != 0 || json.Unmarshal([]byte(out), &rep) != nil {
			t.Fatalf("token %v: exit %d %s%s", args, code, out, errOut)
		}
		return rep
	}
	if rep := token("worker"); rep.Expires != nil {
		t.Errorf("a new token expires (%v): want never, as Swarm's", rep.Expires)
	}
	hour := token("worker", "--ttl", "1h")
	if hour.Expires == nil || hour.Expires.Before(time.Now().Add(59*time.Minute)) || hour.Expires.After(time.Now().Add(61*time.Minute)) {
		t.Errorf("--ttl 1h: expires %v", hour.Expires)
	}
	if rep := token("worker"); rep.Expires == nil || !rep.Expires.Equal(*hour.Expires) || rep.Token != hour.Token {
		t.Errorf("the TTL is not kept: %+v", rep)
	}
	if rep := token("worker", "--ttl", "0"); rep.Expires != nil || rep.Token != hour.Token {
		t.Errorf("--ttl 0 keeps an expiry or changes the token: %+v", rep)
	}
	if _, errOut, code := run(t, "token", "worker", "--socket", socket, "--ttl", "-1s"); code == 0 || !strings.Contains(errOut, "must not be negative") {
		t.Errorf("a negative TTL: exit %d %s", code, errOut)
	}

	// A token past its TTL is refused at join.
	short := token("manager", "--ttl", "1s")
	if short.Expires == nil {
		t.Fatal("--ttl 1s: no expiry")
	}
	if err := storetest.WaitFor(func() bool { return !time.Now().Before(*short.Expires) }, 10*time.Second); err != nil {
		t.Fatal("the clock never passed the expiry")
	}
	_, err := join(ctx, managerFlags(t, filepath.Join(tmp, "late")), short.Token, m1.state.Advertise)
	if err == nil || !strings.Contains(err.Error(), "the manager token expired at") || !strings.Contains(err.Error(), "gitorc token manager --rotate") {
		t.Errorf("join with an expired token: %v", err)
	}
	// A rotation gives a token without TTL, which admits.
	if rep := token("manager", "--rotate"); rep.Expires != nil || rep.Token == short.Token {
		t.Errorf("rotate: %+v", rep)
	}
}
