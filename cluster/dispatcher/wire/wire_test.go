package wire

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

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

func TestManagerMessageValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    ManagerMessage
		ok   bool
	}{
		{"empty", ManagerMessage{}, false},
		{"session", ManagerMessage{Session: &Session{}}, true},
		{"assignments", ManagerMessage{Assignments: &AssignmentSet{}}, true},
		{"network", ManagerMessage{Network: &api.NetView{NodeID: "n1"}}, true},
		{"network and assignments", ManagerMessage{Network: &api.NetView{}, Assignments: &AssignmentSet{}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.m.Validate(); (err == nil) != tc.ok {
				t.Errorf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

// A network view survives the codec whole.
func TestNetworkViewRoundTrip(t *testing.T) {
	v := &api.NetView{NodeID: "n1", Subnet: "10.64.1.0/24", TaskPool: api.DefaultTaskPool, VIPPool: api.DefaultVIPPool,
		Peers:    []api.NetPeer{{NodeID: "n2", PublicKey: "k2", Endpoint: "192.0.2.2:51820", Subnet: "10.64.2.0/24"}},
		Networks: []api.NetNetwork{{ID: "nw", Name: "shop_backend", Internal: true, Members: []string{"10.64.1.2"}}},
		Services: []api.NetService{{ID: "s", Name: "shop_api", ShortName: "api", Mode: api.EndpointVIP, VIP: "10.96.0.2",
			Networks: []api.NetAttachment{{NetworkID: "nw", Aliases: []string{"shop-api"}}},
			Ports:    []api.PortConfig{{Protocol: api.ProtocolUDP, Target: 53, Published: 5353, Mode: api.PublishHost}},
			Backends: []api.NetBackend{{TaskID: "t", NodeID: "n1", Addr: "10.64.1.2"}}}},
		Tasks: []api.NetTask{{ID: "t", ServiceID: "s", Addr: "10.64.1.2", Networks: []string{"nw"}}},
	}
	raw, err := Codec{}.Marshal(&ManagerMessage{Network: v})
	if err != nil {
		t.Fatal(err)
	}
	var back ManagerMessage
	if err := (Codec{}).Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if err := back.Validate(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(v, back.Network); diff != "" {
		t.Errorf("view after the codec (-want +got):\n%s", diff)
	}
	// Made with its view's encoding, the message's encoding is the
	// codec's own.
	m, err := NetworkMessage(v, func(dst []byte) ([]byte, error) {
		b, err := json.Marshal(v)
		return append(dst, b...), err
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Validate(); err != nil {
		t.Fatal(err)
	}
	pre, err := Codec{}.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pre, raw) {
		t.Errorf("a message with its view's encoding is\n%s\nwant the codec's own\n%s", pre, raw)
	}
}
