package api

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestEnumsRoundTrip(t *testing.T) {
	type enum interface {
		fmt.Stringer
		MarshalText() ([]byte, error)
	}
	check := func(t *testing.T, names []string, parse func(string) (enum, error)) {
		t.Helper()
		for i, n := range names {
			v, err := parse(n)
			if err != nil {
				t.Fatalf("parse %q: %v", n, err)
			}
			if v.String() != n {
				t.Errorf("value %d prints %q, want %q", i, v, n)
			}
		}
		if _, err := parse("no-such-value"); err == nil || !strings.Contains(err.Error(), `"no-such-value"`) {
			t.Errorf("bad value: err %v, want one naming the value", err)
		}
	}
	wrap := func(f func(string) (enum, error)) func(string) (enum, error) { return f }
	check(t, serviceModeNames, wrap(func(s string) (enum, error) { return ParseServiceMode(s) }))
	check(t, restartConditionNames, wrap(func(s string) (enum, error) { return ParseRestartCondition(s) }))
	check(t, failureActionNames, wrap(func(s string) (enum, error) { return ParseFailureAction(s) }))
	check(t, updateOrderNames, wrap(func(s string) (enum, error) { return ParseUpdateOrder(s) }))
	check(t, publishModeNames, wrap(func(s string) (enum, error) { return ParsePublishMode(s) }))
	check(t, protocolNames, wrap(func(s string) (enum, error) { return ParseProtocol(s) }))
	check(t, taskStateNames, wrap(func(s string) (enum, error) { return ParseTaskState(s) }))
	check(t, syncPhaseNames, wrap(func(s string) (enum, error) { return ParseSyncPhase(s) }))
	check(t, nodeRoleNames, wrap(func(s string) (enum, error) { return ParseNodeRole(s) }))
	check(t, availabilityNames, wrap(func(s string) (enum, error) { return ParseNodeAvailability(s) }))
	if got := ServiceMode(200).String(); got != "unknown(200)" {
		t.Errorf("out of range prints %q", got)
	}
}

func TestTaskStatesOnlyMoveForward(t *testing.T) {
	order := []TaskState{TaskNew, TaskPending, TaskAssigned, TaskPreparing, TaskStarting, TaskRunning, TaskComplete}
	for i := 1; i < len(order); i++ {
		if order[i] <= order[i-1] {
			t.Errorf("%s is not after %s", order[i], order[i-1])
		}
	}
	for _, s := range []TaskState{TaskComplete, TaskShutdown, TaskFailed, TaskRejected, TaskOrphaned, TaskRemove} {
		if !s.Terminal() {
			t.Errorf("%s is not terminal", s)
		}
	}
	if TaskRunning.Terminal() {
		t.Error("running is terminal")
	}
}

func TestParseConstraint(t *testing.T) {
	cases := []struct {
		in      string
		want    Constraint
		wantErr string
	}{
		{in: "node.role==worker", want: Constraint{Key: "node.role", Op: OpEq, Value: "worker"}},
		{in: "node.role == manager", want: Constraint{Key: "node.role", Op: OpEq, Value: "manager"}},
		{in: "node.labels.zone!=eu-1", want: Constraint{Key: "node.labels.zone", Op: OpNe, Value: "eu-1"}},
		{in: "node.hostname==a==b", wantErr: "one operator only"},
		{in: "node.platform.arch==amd64", want: Constraint{Key: "node.platform.arch", Value: "amd64"}},
		{in: "node.role=worker", wantErr: "want key==value"},
		{in: "node.role==boss", wantErr: `invalid node role "boss"`},
		{in: "node.labels.==x", wantErr: "unknown attribute"},
		{in: "engine.labels.a==b", wantErr: "use node.labels"},
		{in: "==x", wantErr: "must not be empty"},
	}
	for _, tc := range cases {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseConstraint(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			again, err := ParseConstraint(got.String())
			if err != nil || again != got {
				t.Errorf("round trip of %q: %+v, %v", got, again, err)
			}
		})
	}
}

func TestUnitsMarshal(t *testing.T) {
	type units struct {
		D Duration `json:"d"`
		B Bytes    `json:"b"`
		C NanoCPUs `json:"c"`
		M FileMode `json:"m"`
	}
	in := units{D: Duration(90 * time.Second), B: 256 << 20, C: 500_000_000, M: 0o440}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"d":"1m30s","b":"256MiB","c":0.5,"m":"0440"}`; string(b) != want {
		t.Errorf("marshal: %s, want %s", b, want)
	}
	var out units
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if out != in {
		t.Errorf("round trip: %+v, want %+v", out, in)
	}
	var raw Bytes
	if err := json.Unmarshal([]byte(`1000`), &raw); err != nil || raw != 1000 || raw.String() != "1000B" {
		t.Errorf("a bare number is bytes: %d %v (%s)", int64(raw), err, raw)
	}
	for _, tc := range []struct {
		b    Bytes
		want string
	}{{0, "0B"}, {1 << 30, "1GiB"}, {1536 << 10, "1536KiB"}, {100, "100B"}} {
		if tc.b.String() != tc.want {
			t.Errorf("%d prints %s, want %s", int64(tc.b), tc.b, tc.want)
		}
	}
}

func TestSecretBytesNeverPrint(t *testing.T) {
	s := SecretSpec{Name: "db", Data: SecretBytes("hunter2"), File: "db.age"}
	var logged strings.Builder
	slog.New(slog.NewTextHandler(&logged, nil)).Info("secret", "data", s.Data, "spec", s)
	b, _ := json.Marshal(s)
	for _, out := range []string{fmt.Sprint(s.Data), fmt.Sprintf("%v %+v %#v %s %q", s, s, s, s.Data, s.Data), string(b), logged.String()} {
		if strings.Contains(out, "hunter2") {
			t.Errorf("plaintext leaked: %s", out)
		}
	}
	if string(s.Data.Reveal()) != "hunter2" {
		t.Error("Reveal lost the data")
	}
}

func validService() ServiceSpec {
	return ServiceSpec{
		Name: "s_web", Mode: ModeReplicated, Replicas: 1,
		Task:     TaskSpec{Container: ContainerSpec{Image: "web:1"}, Restart: DefaultRestartPolicy()},
		Update:   DefaultUpdateConfig(),
		Rollback: DefaultRollbackConfig(),
	}
}

func TestServiceValidate(t *testing.T) {
	if err := (&ServiceSpec{}).Validate(); err == nil {
		t.Fatal("empty spec is valid")
	}
	s := validService()
	if err := s.Validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	cases := []struct {
		name   string
		mutate func(*ServiceSpec)
		want   []string
	}{
		{"global with replicas", func(s *ServiceSpec) { s.Mode = ModeGlobal; s.Replicas = 2 },
			[]string{"replicas: replicas is not allowed with global mode"}},
		{"bad name and no image", func(s *ServiceSpec) { s.Name = "-x"; s.Task.Container.Image = "" }, []string{
			`name: name "-x" must start with a letter or digit and hold only letters, digits, '_', '.' and '-'`,
			"task.container.image: image is required: gitorc deploys images, it does not build them"}},
		{"ratio", func(s *ServiceSpec) { s.Update.MaxFailureRatio = 1.5 },
			[]string{"update_config.max_failure_ratio: 1.5 is not between 0 and 1"}},
		{"ports", func(s *ServiceSpec) {
			s.Endpoint.Ports = []PortConfig{{Target: 80, Published: 8080}, {Target: 81, Published: 8080}, {Target: 0}}
		}, []string{
			"endpoint.ports[1]: published port 8080/tcp is also published by ports[0]",
			"endpoint.ports[2]: target port 0 is not between 1 and 65535"}},
		{"mount and secret on one target", func(s *ServiceSpec) {
			s.Task.Container.Mounts = []Mount{{Type: MountTmpfs, Target: "/run/secrets/x"}}
			s.Task.Container.Secrets = []FileRef{{Name: "x", Target: "/run/secrets/x", Mode: 0o400}}
		}, []string{"task.container.secrets[0]: target /run/secrets/x is already used by task.container.mounts[0]"}},
		{"reservation above limit", func(s *ServiceSpec) {
			s.Task.Resources = ResourceRequirements{Limits: Resources{Memory: 64 << 20}, Reservations: Resources{Memory: 128 << 20}}
		}, []string{"task.resources.reservations.memory: reservation 128MiB exceeds limit 64MiB"}},
		{"bad healthcheck", func(s *ServiceSpec) { s.Task.Container.Healthcheck = &Healthcheck{Test: []string{"CMD"}} },
			[]string{"task.container.healthcheck.test: CMD needs a command"}},
		{"spread not over a label", func(s *ServiceSpec) { s.Task.Placement.Preferences = []SpreadOver{{Spread: "node.id"}} },
			[]string{`task.placement.preferences[0]: spread over "node.id": want node.labels.<name>`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := validService()
			tc.mutate(&s)
			err := s.Validate()
			fes, ok := err.(FieldErrors)
			if !ok {
				t.Fatalf("err %v (%T), want FieldErrors", err, err)
			}
			var got []string
			for _, fe := range fes {
				got = append(got, fe.Error())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestObjectValidate(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"bridge network", (&NetworkSpec{Name: "n", Driver: "bridge"}).Validate(), `driver: driver "bridge" is not supported: gitorc networks are "overlay"`},
		{"bad subnet", (&NetworkSpec{Name: "n", Driver: "overlay", Subnet: "10.0.0/24"}).Validate(), `subnet: "10.0.0/24" is not a CIDR subnet`},
		{"nfs volume", (&VolumeSpec{Name: "v", Driver: "nfs"}).Validate(), `driver: driver "nfs" is not supported: gitorc volumes are "local"`},
		{"secret from nowhere", (&SecretSpec{Name: "s"}).Validate(), "exactly one of file, environment or external must be set"},
		{"secret from two places", (&SecretSpec{Name: "s", File: "a", External: true}).Validate(), "exactly one of file, environment or external must be set"},
		{"config from nowhere", (&ConfigSpec{Name: "c"}).Validate(), "one of file, environment, content or external must be set"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.err == nil || tc.err.Error() != tc.want {
				t.Errorf("err %v, want %s", tc.err, tc.want)
			}
		})
	}
	for _, ok := range []interface{ Validate() error }{
		&NetworkSpec{Name: "n", Driver: "overlay", Subnet: "10.1.0.0/24"},
		&VolumeSpec{Name: "v", Driver: "local"},
		&SecretSpec{Name: "s", File: "s.age"},
		&ConfigSpec{Name: "c", Data: []byte("x")},
	} {
		if err := ok.Validate(); err != nil {
			t.Errorf("%+v: %v", ok, err)
		}
	}
}

func TestCertRenewalOverdue(t *testing.T) {
	from := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	st := NodeStatus{CertNotBefore: from, CertNotAfter: from.Add(90 * 24 * time.Hour)} // renewal due at day 60
	for _, c := range []struct {
		at   time.Time
		want bool
	}{
		{from.Add(24 * time.Hour), false},
		{from.Add(60 * 24 * time.Hour), false},
		{from.Add(60*24*time.Hour + CertRenewalGrace), false},
		{from.Add(60*24*time.Hour + CertRenewalGrace + time.Second), true},
		{from.Add(100 * 24 * time.Hour), true},
	} {
		if got := st.CertRenewalOverdue(c.at); got != c.want {
			t.Errorf("at %s: overdue %v, want %v", c.at, got, c.want)
		}
	}
	if (NodeStatus{}).CertRenewalOverdue(from) {
		t.Error("a node that never showed a certificate is overdue")
	}
}
