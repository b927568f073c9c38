package api

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestNeeds(t *testing.T) {
	c := ContainerSpec{
		Privileged: true,
		Mounts: []Mount{
			{Type: MountVolume, Source: "data", Target: "/data"},
			{Type: MountBind, Source: "/var/run/docker.sock", Target: "/var/run/docker.sock"},
			{Type: MountTmpfs, Target: "/tmp"},
			{Type: MountVolume, Source: "host", Target: "/h", VolumeOptions: map[string]string{"type": "none", "o": "bind", "device": "/etc"}},
			{Type: MountVolume, Source: "nfs", Target: "/n", VolumeOptions: map[string]string{"type": "nfs", "device": ":/export"}},
		},
		CapAdd:            []string{"NET_BIND_SERVICE", "cap_sys_admin", "SYS_MODULE"},
		Sysctls:           map[string]string{"net.core.somaxconn": "1024", "kernel.shmmax": "1", "vm.swappiness": "1", "kernel.panic": "1"},
		SeccompUnconfined: true,
	}
	want := []Need{
		{Kind: NeedPrivileged, Field: "privileged"},
		{Kind: NeedBind, Value: "/var/run/docker.sock", Field: "mounts[1]"},
		{Kind: NeedBind, Value: "/etc", Field: "mounts[3]", Volume: "host"},
		{Kind: NeedCap, Value: "SYS_ADMIN", Field: "cap_add[1]"},
		{Kind: NeedCap, Value: "SYS_MODULE", Field: "cap_add[2]"},
		{Kind: NeedSysctl, Value: "kernel.panic", Field: "sysctls[kernel.panic]"},
		{Kind: NeedSysctl, Value: "vm.swappiness", Field: "sysctls[vm.swappiness]"},
		{Kind: NeedUnconfined, Field: "seccomp"},
	}
	if diff := cmp.Diff(want, Needs(&c)); diff != "" {
		t.Errorf("Needs (-want +got):\n%s", diff)
	}
	var def *NodePolicy
	if got := def.Refused(&c); len(got) != len(want) {
		t.Errorf("the default policy grants %d of %d needs", len(want)-len(got), len(want))
	}
	all := &NodePolicy{AllowBinds: []string{"/var/run", "/etc"}, AllowCaps: []string{"ALL"},
		AllowSysctls: []string{"kernel.panic", "vm.*"}, AllowPrivileged: true, AllowUnconfined: true}
	if got := all.Refused(&c); len(got) != 0 {
		t.Errorf("a policy allowing everything refuses %v", got)
	}
}

func TestAllowsPath(t *testing.T) {
	for _, tc := range []struct {
		allowed []string
		path    string
		want    bool
	}{
		{nil, "/srv", false},
		{[]string{"/srv"}, "/srv", true},
		{[]string{"/srv"}, "/srv/data/x", true},
		{[]string{"/srv"}, "/srvx", false},
		{[]string{"/srv"}, "/srv/../etc", false},
		{[]string{"/srv/"}, "/srv/a", true},
		{[]string{"/srv"}, "srv/a", false},
		{[]string{"/srv"}, "/", false},
		{[]string{"/"}, "/anything", true},
	} {
		if got := AllowsPath(tc.allowed, tc.path); got != tc.want {
			t.Errorf("AllowsPath(%q, %q) = %v, want %v", tc.allowed, tc.path, got, tc.want)
		}
	}
}

func TestNodePolicyNormalize(t *testing.T) {
	p, err := NodePolicy{AllowBinds: []string{"/srv/", "/srv"}, AllowCaps: []string{"cap_net_admin", "SYS_ADMIN"},
		AllowSysctls: []string{"vm.*"}}.Normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := NodePolicy{AllowBinds: []string{"/srv"}, AllowCaps: []string{"NET_ADMIN", "SYS_ADMIN"}, AllowSysctls: []string{"vm.*"}}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("Normalize (-want +got):\n%s", diff)
	}
	for _, bad := range []NodePolicy{
		{AllowBinds: []string{"relative"}},
		{AllowCaps: []string{"SYS ADMIN"}},
		{AllowSysctls: []string{"vm.*.x*"}},
	} {
		if _, err := bad.Normalize(); err == nil {
			t.Errorf("Normalize(%+v) accepted", bad)
		}
	}
}
