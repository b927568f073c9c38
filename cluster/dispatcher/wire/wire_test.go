package wire

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
)

func TestPlaintextRedactedButEncoded(t *testing.T) {
	m := &ManagerMessage{Assignments: &AssignmentSet{Tasks: []*api.Task{},
		Secrets: []SecretFile{{Name: "pw", Data: Plaintext("hunter2")}}}}
	for _, s := range []string{fmt.Sprint(m.Assignments.Secrets), fmt.Sprintf("%+v %#v %s", m.Assignments.Secrets[0],
		m.Assignments.Secrets[0].Data, m.Assignments.Secrets[0].Data)} {
		if strings.Contains(s, "hunter2") {
			t.Errorf("plaintext printed: %s", s)
		}
	}
	var b strings.Builder
	slog.New(slog.NewTextHandler(&b, nil)).Info("x", "secret", m.Assignments.Secrets[0].Data)
	if strings.Contains(b.String(), "hunter2") {
		t.Errorf("plaintext logged: %s", b.String())
	}
	raw, err := Codec{}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	var back ManagerMessage
	if err := (Codec{}).Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if got := string(back.Assignments.Secrets[0].Data); got != "hunter2" {
		t.Errorf("decoded secret %q, want hunter2", got)
	}
}

func TestNotLeaderCarriesAddress(t *testing.T) {
	if addr, ok := LeaderAddr(NotLeader("10.0.0.1:4270")); !ok || addr != "10.0.0.1:4270" {
		t.Errorf("LeaderAddr = %q, %v", addr, ok)
	}
	for _, err := range []error{NotLeader(""), errors.New("not leader; leader is at x"), nil} {
		if addr, ok := LeaderAddr(err); ok {
			t.Errorf("LeaderAddr(%v) = %q, want none", err, addr)
		}
	}
}

func TestWorkerMessageValidate(t *testing.T) {
	if err := (&WorkerMessage{}).Validate(); err == nil {
		t.Error("empty message accepted")
	}
	if err := (&WorkerMessage{Heartbeat: &Heartbeat{}, Status: &StatusBatch{}}).Validate(); err == nil {
		t.Error("message with two fields accepted")
	}
	if err := (&WorkerMessage{Heartbeat: &Heartbeat{}}).Validate(); err != nil {
		t.Error(err)
	}
}
