package compose

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/gitorc/gitorc/cluster/api"
	"github.com/google/go-cmp/cmp"
)

// hostStack asks for everything a node's policy must allow.
const hostStack = `services:
  agent:
    image: x
    privileged: true
    volumes:
      - data:/data
      - /var/run/docker.sock:/var/run/docker.sock
      - type: tmpfs
        target: /tmp
    cap_add: [NET_BIND_SERVICE, SYS_ADMIN]
    sysctls:
      net.core.somaxconn: 1024
      kernel.panic: 1
    security_opt:
      - seccomp=unconfined
      - no-new-privileges
  web:
    image: x
    volumes: [host:/h]
volumes:
  data: {}
  host:
    driver_opts: {type: none, o: bind, device: /etc}
`

func TestLoadRefusesWhatNoNodeAllows(t *testing.T) {
	dir := writeStack(t, map[string]string{"compose.yaml": hostStack})
	src := Source{Name: "s", Files: []string{filepath.Join(dir, "compose.yaml")}, Root: dir, CheckPolicies: true,
		Policies: []api.NodePolicy{{}, {AllowBinds: []string{"/srv"}, AllowCaps: []string{"NET_ADMIN"}}}}
	_, err := Load(context.Background(), src)
	want := []string{
		`compose.yaml:4: services.agent.privileged: privileged: no node allows it (gitorc join --allow-privileged)`,
		`compose.yaml:7: services.agent.volumes.1: bind of /var/run/docker.sock: no node allows it (gitorc join --allow-bind)`,
		`compose.yaml:10: services.agent.cap_add.1: capability SYS_ADMIN: no node allows it (gitorc join --allow-cap)`,
		`compose.yaml:13: services.agent.sysctls.kernel.panic: sysctl kernel.panic: no node allows it (gitorc join --allow-sysctl)`,
		`compose.yaml:15: services.agent.security_opt.0: seccomp=unconfined: no node allows it (gitorc join --allow-unconfined)`,
		`compose.yaml:19: services.web.volumes.0: volume s_host on host path /etc: no node allows it (gitorc join --allow-bind)`,
	}
	if diff := cmp.Diff(want, diagStrings(t, err)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}

	// One node that allows each is enough: the scheduler places the
	// task there.
	src.Policies = append(src.Policies, api.NodePolicy{AllowBinds: []string{"/var/run/docker.sock", "/etc"},
		AllowCaps: []string{"sys_admin"}, AllowSysctls: []string{"kernel.*"}, AllowPrivileged: true, AllowUnconfined: true})
	st, err := Load(context.Background(), src)
	if err != nil {
		t.Fatalf("load with a node that allows everything: %v", err)
	}
	var agent api.ContainerSpec
	for _, s := range st.Bundle.Services {
		if s.Name == "s_agent" {
			agent = s.Task.Container
		}
	}
	if !agent.Privileged || !agent.SeccompUnconfined || !agent.NoNewPrivileges || agent.AppArmorUnconfined {
		t.Errorf("privileged/seccomp/no-new-privileges/apparmor = %v/%v/%v/%v, want true/true/true/false",
			agent.Privileged, agent.SeccompUnconfined, agent.NoNewPrivileges, agent.AppArmorUnconfined)
	}

	// A load that knows no cluster checks nothing (the planner does).
	src.CheckPolicies, src.Policies = false, nil
	if _, err := Load(context.Background(), src); err != nil {
		t.Errorf("load without policies: %v", err)
	}
}

func TestSecurityOptUnknownRefused(t *testing.T) {
	dir := writeStack(t, map[string]string{"compose.yaml": `services:
  web:
    image: x
    security_opt: ["label=disable"]
`})
	_, err := Load(context.Background(), Source{Files: []string{filepath.Join(dir, "compose.yaml")}, Root: dir})
	want := []string{`compose.yaml:4: services.web.security_opt.0: security_opt "label=disable" is not supported: gitorc applies its own seccomp and AppArmor profiles; it understands seccomp=unconfined, apparmor=unconfined (on nodes started with --allow-unconfined) and no-new-privileges`}
	if diff := cmp.Diff(want, diagStrings(t, err)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
}

// The seed fixtures and the project's examples need nothing beyond the
// default policy: they load with it, and no service has a need the
// planner or the scheduler would check.
func TestFixturesLoadUnderDefaultPolicy(t *testing.T) {
	for name, src := range goldenCases(t) {
		src.CheckPolicies = true
		st, err := Load(context.Background(), src)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		for _, s := range st.Bundle.Services {
			if needs := api.Needs(&s.Task.Container); len(needs) > 0 {
				t.Errorf("%s: service %s needs %v", name, s.Name, needs)
			}
		}
	}
}
