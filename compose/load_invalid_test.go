package compose

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// invalidStacks are stack files that must not load, each with the exact
// diagnostics (file:line: path: message) a user gets.
var invalidStacks = []struct {
	name string
	yaml string
	want []string
}{
	// A secret or config from a variable the stack's environment does
	// not set would deploy empty; a secret from one that is set would
	// come from an env file in Git, in plaintext.
	{
		name: `env_sourced_unset`,
		yaml: `services:
  web:
    image: x
    secrets: [token]
    configs: [motd]
secrets:
  token:
    environment: TOKEN
configs:
  motd:
    environment: MOTD
`,
		want: []string{
			`compose.yaml:8: secrets.token.environment: variable TOKEN is not set: the secret would be empty`,
			`compose.yaml:11: configs.motd.environment: variable MOTD is not set: the config would be empty`,
		},
	},
	{
		name: `depends_on_completed_not_a_job`,
		yaml: `services:
  web:
    image: x
    depends_on:
      migrate:
        condition: service_completed_successfully
  migrate:
    image: x
`,
		want: []string{
			`compose.yaml:6: services.web.depends_on.migrate.condition: service_completed_successfully waits for a job, and migrate is not one (deploy.mode: replicated-job or global-job)`,
		},
	},
	{
		name: `volume_driver_opts`,
		yaml: `services:
  web:
    image: x
    volumes: [data:/data]
volumes:
  data:
    driver_opts:
      type: nfs
      o: addr=127.0.0.1
`,
		want: []string{
			`compose.yaml:8: volumes.data.driver_opts: device is required (what to mount, e.g. :/export/path for nfs, a host path for a bind)`,
		},
	},
	{
		name: `bad_constraint`,
		yaml: `services:
  web:
    image: x
    deploy:
      placement:
        constraints: ["node.role=worker"]
`,
		want: []string{
			`compose.yaml:6: services.web.deploy.placement.constraints.0: invalid constraint "node.role=worker": want key==value or key!=value`,
		},
	},
	{
		name: `bad_constraint_key`,
		yaml: `services:
  web:
    image: x
    deploy:
      placement:
        constraints: ["node.colour==red"]
`,
		want: []string{
			`compose.yaml:6: services.web.deploy.placement.constraints.0: invalid constraint "node.colour==red": unknown attribute "node.colour", want one of node.id, node.hostname, node.role, node.platform.os, node.platform.arch, node.labels.<name>`,
		},
	},
	{
		name: `bad_duration`,
		yaml: `services:
  web:
    image: x
    deploy:
      update_config:
        delay: 10x
`,
		want: []string{
			`compose.yaml:6: services.web.deploy.update_config.delay: "10x" is not a duration: write it such as 10s or 1m30s`,
		},
	},
	{
		name: `bad_interp`,
		yaml: `services:
  web:
    image: ${IMG
`,
		want: []string{
			`compose.yaml:3: services.web.image: invalid interpolation format for services.web.image. You may need to escape any $ with another $. ${IMG`,
		},
	},
	{
		name: `bad_mem`,
		yaml: `services:
  web:
    image: x
    deploy:
      resources:
        limits:
          memory: lots
`,
		want: []string{
			`compose.yaml:7: services.web.deploy.resources.limits.memory: "lots" is not a size: write it such as 256M or 1G`,
		},
	},
	{
		name: `bad_mode`,
		yaml: `services:
  web:
    image: x
    deploy:
      mode: replicatd
`,
		want: []string{
			`compose.yaml:5: services.web.deploy.mode: invalid deploy mode "replicatd": must be one of "replicated", "global", "replicated-job", "global-job"`,
		},
	},
	{
		name: `bad_mode_octal`,
		yaml: `services:
  web:
    image: x
    secrets:
      - source: s
        mode: 0999
secrets:
  s:
    external: true
`,
		want: []string{
			`compose.yaml:6: services.web.secrets.0.mode: unexpected value type float64 for mode`,
		},
	},
	{
		name: `bad_port`,
		yaml: `services:
  web:
    image: x
    ports: ["abc"]
`,
		want: []string{
			`compose.yaml:4: services.web.ports.0: invalid port "abc": invalid containerPort: abc`,
		},
	},
	{
		name: `bad_yaml`,
		yaml: `services:
  web:
    image: x
   ports: [80]
`,
		want: []string{
			`compose.yaml:3: invalid YAML: did not find expected key`,
		},
	},
	{
		name: `bridge`,
		yaml: `networks:
  n:
    driver: bridge
services:
  web:
    image: x
    networks: [n]
`,
		want: []string{
			`compose.yaml:3: networks.n.driver: driver "bridge" is not supported: gitorc networks are "overlay"`,
		},
	},
	{
		name: `depends`,
		yaml: `services:
  web:
    image: x
    depends_on: [ghost]
`,
		want: []string{
			`compose.yaml:4: services.web.depends_on.ghost: undefined service "ghost"`,
		},
	},
	{
		name: `dup_port`,
		yaml: `services:
  web:
    image: x
    ports: ["80:80", "80:81"]
`,
		want: []string{
			`compose.yaml:4: services.web.ports.1: published port 80/tcp is also published by ports[0]`,
		},
	},
	{
		name: `empty`,
		yaml: ``,
		want: []string{
			`compose.yaml: empty stack file`,
		},
	},
	{
		name: `endpoint_mode`,
		yaml: `services:
  web:
    image: x
    deploy:
      endpoint_mode: round
`,
		want: []string{
			`compose.yaml:5: services.web.deploy.endpoint_mode: invalid endpoint mode "round": must be one of "vip", "dnsrr"`,
		},
	},
	{
		name: `fa_order`,
		yaml: `services:
  web:
    image: x
    deploy:
      update_config:
        failure_action: explode
        order: middle-first
`,
		want: []string{
			`compose.yaml:6: services.web.deploy.update_config.failure_action: invalid failure action "explode": must be one of "pause", "continue", "rollback"`,
			`compose.yaml:7: services.web.deploy.update_config.order: invalid update order "middle-first": must be one of "stop-first", "start-first"`,
		},
	},
	{
		name: `global_maxrep`,
		yaml: `services:
  web:
    image: x
    deploy:
      mode: global
      placement:
        max_replicas_per_node: 2
`,
		want: []string{
			`compose.yaml:7: services.web.deploy.placement.max_replicas_per_node: max_replicas_per_node is not allowed with global mode`,
		},
	},
	{
		name: `global_replicas`,
		yaml: `services:
  web:
    image: x
    deploy:
      mode: global
      replicas: 2
`,
		want: []string{
			`compose.yaml:6: services.web.deploy.replicas: replicas cannot be set in global mode: a global service runs one task per node`,
		},
	},
	{
		name: `grace`,
		yaml: `services:
  web:
    image: x
    stop_grace_period: soon
`,
		want: []string{
			`compose.yaml:4: services.web.stop_grace_period: "soon" is not a duration: write it such as 10s or 1m30s`,
		},
	},
	{
		name: `hc_test`,
		yaml: `services:
  web:
    image: x
    healthcheck:
      test: ["BAD", "x"]
`,
		want: []string{
			`compose.yaml:5: services.web.healthcheck.test: test must start with CMD, CMD-SHELL or NONE, not "BAD"`,
		},
	},
	{
		name: `missing_secret_file`,
		yaml: `secrets:
  s:
    file: ./missing.age
services:
  web:
    image: x
    secrets: [s]
`,
		want: []string{
			`compose.yaml:3: secrets.s.file: ./missing.age: no such file`,
		},
	},
	{
		name: `multi`,
		yaml: `services:
  web:
    imagee: x
    deploy:
      replcas: 3
  db:
    image: y
    ports: ["70000:80"]
`,
		want: []string{
			`compose.yaml:3: services.web: unknown key "imagee"`,
			`compose.yaml:5: services.web.deploy: unknown key "replcas"`,
			`compose.yaml:8: services.db.ports.0: invalid port "70000:80": invalid hostPort: 70000`,
		},
	},
	{
		name: `negative`,
		yaml: `services:
  web:
    image: x
    deploy:
      replicas: -1
`,
		want: []string{
			`compose.yaml:5: services.web.deploy.replicas: -1 must not be negative`,
		},
	},
	{
		name: `netmode`,
		yaml: `services:
  web:
    image: x
    network_mode: host
`,
		want: []string{
			`compose.yaml:4: services.web: "network_mode" is not supported: tasks join the networks listed under networks`,
		},
	},
	{
		name: `no_image`,
		yaml: `services:
  web:
    deploy:
      replicas: 1
`,
		want: []string{
			`compose.yaml:2: services.web.image: image is required: gitorc deploys images, it does not build them`,
		},
	},
	{
		name: `port_mode`,
		yaml: `services:
  web:
    image: x
    ports:
      - target: 80
        published: 8080
        mode: hots
`,
		want: []string{
			`compose.yaml:7: services.web.ports.0.mode: invalid port mode "hots": must be one of "ingress", "host"`,
		},
	},
	{
		name: `pid_host`,
		yaml: `services:
  web:
    image: x
    build: .
    pid: host
`,
		want: []string{
			`compose.yaml:5: services.web: "pid" is not supported: it breaks the isolation between tasks and the node; gitorc does not run privileged or host-namespace containers`,
		},
	},
	{
		name: `ratio`,
		yaml: `services:
  web:
    image: x
    deploy:
      update_config:
        max_failure_ratio: 2
`,
		want: []string{
			`compose.yaml:6: services.web.deploy.update_config.max_failure_ratio: 2 is not between 0 and 1`,
		},
	},
	{
		name: `reservation`,
		yaml: `services:
  web:
    image: x
    environment:
      - A=1
    deploy:
      resources:
        limits:
          memory: 64M
        reservations:
          memory: 128M
`,
		want: []string{
			`compose.yaml:11: services.web.deploy.resources.reservations.memory: reservation 128MiB exceeds limit 64MiB`,
		},
	},
	{
		name: `restart_cond`,
		yaml: `services:
  web:
    image: x
    deploy:
      restart_policy:
        condition: sometimes
`,
		want: []string{
			`compose.yaml:6: services.web.deploy.restart_policy.condition: invalid restart condition "sometimes": must be one of "any", "on-failure", "none"`,
		},
	},
	{
		name: `services_list`,
		yaml: `services: []
`,
		want: []string{
			`compose.yaml:1: services: must be a mapping, not list`,
		},
	},
	{
		name: `top_unknown`,
		yaml: `foo: 1
services:
  web:
    image: x
`,
		want: []string{
			`compose.yaml:1: unknown top-level key "foo"`,
		},
	},
	{
		name: `undefined_volume`,
		yaml: `services:
  web:
    image: x
    volumes: ["data:/d"]
`,
		want: []string{
			`compose.yaml:4: services.web.volumes.0: undefined volume "data": declare it under the top-level volumes`,
		},
	},
	{
		name: `unknown_key`,
		yaml: `services:
  web:
    image: x
    deploy:
      replcas: 3
`,
		want: []string{
			`compose.yaml:5: services.web.deploy: unknown key "replcas"`,
		},
	},
	{
		name: `unknown_network`,
		yaml: `services:
  web:
    image: x
    networks: [nope]
`,
		want: []string{
			`compose.yaml:4: services.web.networks.nope: undefined network "nope": declare it under the top-level networks`,
		},
	},
	{
		name: `unknown_secret`,
		yaml: `services:
  web:
    image: x
    secrets: [nope]
`,
		want: []string{
			`compose.yaml:4: services.web.secrets.0: undefined secret "nope": declare it under the top-level secrets`,
		},
	},
	{
		name: `wrong_type`,
		yaml: `services:
  web:
    image: x
    deploy:
      replicas: three
`,
		want: []string{
			`compose.yaml:5: services.web.deploy.replicas: "three" is not a whole number`,
		},
	},
	{
		name: "bad_cpus",
		yaml: "services:\n  web:\n    image: x\n    deploy:\n      resources:\n        limits:\n          cpus: many\n",
		want: []string{`compose.yaml:7: services.web.deploy.resources.limits.cpus: "many" is not a number of CPUs such as 0.5`},
	},
	{
		name: "duplicate_key",
		yaml: "services:\n  web:\n    image: x\n    image: y\n",
		want: []string{`compose.yaml:4: invalid YAML: mapping key "image" already defined at line 3`},
	},
	{
		name: "tab_indent",
		yaml: "services:\n\tweb:\n    image: x\n",
		want: []string{`compose.yaml:2: invalid YAML: found character that cannot start any token`},
	},
	{
		name: "not_a_mapping",
		yaml: "- web\n- db\n",
		want: []string{`compose.yaml:1: a stack file must be a mapping of top-level keys (services, networks, …)`},
	},
	{
		name: "several_problems_in_several_services",
		yaml: `services:
  web:
    image: x
    deploy:
      mode: global
      replicas: 2
      update_config:
        monitor: 5
  api:
    image: y
    pid: host
    deploy:
      restart_policy:
        max_attempts: -3
`,
		want: []string{
			`compose.yaml:6: services.web.deploy.replicas: replicas cannot be set in global mode: a global service runs one task per node`,
			`compose.yaml:8: services.web.deploy.update_config.monitor: 5 is not a duration: write it with a unit, such as 10s or 1m30s`,
			`compose.yaml:11: services.api: "pid" is not supported: it breaks the isolation between tasks and the node; gitorc does not run privileged or host-namespace containers`,
			`compose.yaml:14: services.api.deploy.restart_policy.max_attempts: -3 must not be negative`,
		},
	},
}

// writeStack writes files (name → content) into a new directory.
func writeStack(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func diagStrings(t *testing.T, err error) []string {
	t.Helper()
	var es Errors
	if !errors.As(err, &es) {
		t.Fatalf("error is %T (%v), want compose.Errors", err, err)
	}
	var out []string
	for _, d := range es {
		out = append(out, d.String())
	}
	return out
}

func TestLoadInvalid(t *testing.T) {
	if len(invalidStacks) < 25 {
		t.Fatalf("only %d invalid stack cases", len(invalidStacks))
	}
	for _, tc := range invalidStacks {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeStack(t, map[string]string{"compose.yaml": tc.yaml})
			st, err := Load(context.Background(), Source{Name: "test", Files: []string{filepath.Join(dir, "compose.yaml")}, Root: dir})
			if err == nil {
				t.Fatalf("loaded %d services, want an error", len(st.Bundle.Services))
			}
			if diff := cmp.Diff(tc.want, diagStrings(t, err)); diff != "" {
				t.Errorf("diagnostics (-want +got):\n%s", diff)
			}
		})
	}
}

// A variable the stack's env file sets feeds a config (its content and
// hash), never a secret: that would be plaintext in Git.
func TestEnvSourcedObjects(t *testing.T) {
	files := map[string]string{".env": "MOTD=hello\nTOKEN=hunter2\n", "compose.yaml": `services:
  web:
    image: x
    configs: [motd]
configs:
  motd:
    environment: MOTD
`}
	dir := writeStack(t, files)
	st, err := Load(context.Background(), Source{Name: "test", Files: []string{filepath.Join(dir, "compose.yaml")}, Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Bundle.Configs; len(c) != 1 || string(c[0].Data) != "hello" || !strings.HasPrefix(c[0].DataHash, "sha256:") {
		t.Errorf("configs %+v, want motd holding hello, with its hash", c)
	}

	files["compose.yaml"] = "services:\n  web:\n    image: x\n    secrets: [token]\nsecrets:\n  token:\n    environment: TOKEN\n"
	dir = writeStack(t, files)
	_, err = Load(context.Background(), Source{Name: "test", Files: []string{filepath.Join(dir, "compose.yaml")}, Root: dir})
	want := []string{"compose.yaml:7: secrets.token.environment: variable TOKEN comes from an env file, in plaintext: seal the value into a file with gitorc seal and use file:"}
	if diff := cmp.Diff(want, diagStrings(t, err)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	if strings.Contains(fmt.Sprint(err), "hunter2") {
		t.Error("the error shows the variable's value")
	}
}

func TestDiagnosticsNameTheFileThatHoldsTheProblem(t *testing.T) {
	dir := writeStack(t, map[string]string{
		"stacks/web/compose.yaml": "services:\n  web:\n    image: x\n    deploy:\n      replicas: 2\n",
		"stacks/web/prod.yaml":    "services:\n  web:\n    deploy:\n      replcas: 3\n      mode: everywhere\n",
	})
	_, err := Load(context.Background(), Source{
		Name:  "web",
		Files: []string{filepath.Join(dir, "stacks/web/compose.yaml"), filepath.Join(dir, "stacks/web/prod.yaml")},
		Root:  dir,
	})
	want := []string{
		`stacks/web/prod.yaml:4: services.web.deploy: unknown key "replcas"`,
		`stacks/web/prod.yaml:5: services.web.deploy.mode: invalid deploy mode "everywhere": must be one of "replicated", "global", "replicated-job", "global-job"`,
	}
	if diff := cmp.Diff(want, diagStrings(t, err)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
}

func TestOverridesMerge(t *testing.T) {
	dir := writeStack(t, map[string]string{
		"compose.yaml":  "services:\n  web:\n    image: web:1\n    deploy:\n      replicas: 2\n      update_config:\n        parallelism: 3\n",
		"override.yaml": "services:\n  web:\n    image: web:2\n    deploy:\n      replicas: 5\n",
	})
	st, err := Load(context.Background(), Source{Name: "s", Files: []string{filepath.Join(dir, "compose.yaml"), filepath.Join(dir, "override.yaml")}})
	if err != nil {
		t.Fatal(err)
	}
	svc := st.Bundle.Services[0]
	if svc.Task.Container.Image != "web:2" || svc.Replicas != 5 || svc.Update.Parallelism != 3 {
		t.Errorf("merged service: image %s replicas %d parallelism %d, want web:2 5 3",
			svc.Task.Container.Image, svc.Replicas, svc.Update.Parallelism)
	}
}

func TestInterpolationFromEnvFiles(t *testing.T) {
	dir := writeStack(t, map[string]string{
		"compose.yaml": "services:\n  web:\n    image: ${IMAGE}:${TAG:-latest}\n    environment:\n      MODE: ${MODE}\n    deploy:\n      replicas: ${REPLICAS}\n",
		".env":         "IMAGE=from-dotenv\nREPLICAS=2\n",
		"prod.env":     "IMAGE=from-prod\nREPLICAS=4\n",
	})
	file := filepath.Join(dir, "compose.yaml")
	cases := []struct {
		name      string
		src       Source
		image     string
		replicas  uint64
		unsetWarn bool
	}{
		{"dotenv", Source{Files: []string{file}}, "from-dotenv:latest", 2, true},
		{"env file wins over .env", Source{Files: []string{file}, EnvFiles: []string{"prod.env"}}, "from-prod:latest", 4, true},
		{"explicit env wins", Source{Files: []string{file}, EnvFiles: []string{"prod.env"}, Env: map[string]string{"TAG": "7", "MODE": "x"}}, "from-prod:7", 4, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.src.Root = dir
			st, err := Load(context.Background(), tc.src)
			if err != nil {
				t.Fatal(err)
			}
			svc := st.Bundle.Services[0]
			if svc.Task.Container.Image != tc.image || svc.Replicas != tc.replicas {
				t.Errorf("image %s replicas %d, want %s %d", svc.Task.Container.Image, svc.Replicas, tc.image, tc.replicas)
			}
			var warned bool
			for _, w := range st.Warnings {
				if w.String() == "compose.yaml:5: warning: variable MODE is not set: it is replaced by an empty string" {
					warned = true
				} else if strings.Contains(w.Msg, "TAG") {
					t.Errorf("warned about TAG, which has a default: %s", w)
				}
			}
			if warned != tc.unsetWarn {
				t.Errorf("warned about unset MODE: %v, want %v (warnings %v)", warned, tc.unsetWarn, st.Warnings)
			}
		})
	}
}

func TestInclude(t *testing.T) {
	dir := writeStack(t, map[string]string{
		"compose.yaml":    "include:\n  - db/compose.yaml\nservices:\n  web:\n    image: web:1\n    depends_on: [db]\n",
		"db/compose.yaml": "services:\n  db:\n    image: db:1\n    deploy:\n      mode: globl\n",
	})
	_, err := Load(context.Background(), Source{Name: "s", Files: []string{filepath.Join(dir, "compose.yaml")}, Root: dir})
	want := []string{`db/compose.yaml:5: services.db.deploy.mode: invalid deploy mode "globl": must be one of "replicated", "global", "replicated-job", "global-job"`}
	if diff := cmp.Diff(want, diagStrings(t, err)); diff != "" {
		t.Errorf("diagnostics (-want +got):\n%s", diff)
	}
	if err := os.WriteFile(filepath.Join(dir, "db/compose.yaml"), []byte("services:\n  db:\n    image: db:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	st, err := Load(context.Background(), Source{Name: "s", Files: []string{filepath.Join(dir, "compose.yaml")}, Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range st.Bundle.Services {
		names = append(names, s.Name)
	}
	if diff := cmp.Diff([]string{"s_db", "s_web"}, names); diff != "" {
		t.Errorf("services (-want +got):\n%s", diff)
	}
}

func TestIgnoredKeysWarn(t *testing.T) {
	dir := writeStack(t, map[string]string{"compose.yaml": "services:\n  web:\n    image: x\n    build: .\n    container_name: web\n    restart: always\n"})
	st, err := Load(context.Background(), Source{Name: "s", Files: []string{filepath.Join(dir, "compose.yaml")}, Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range st.Warnings {
		got = append(got, w.String())
	}
	want := []string{
		`compose.yaml:4: warning: services.web: "build" is ignored: gitorc deploys images; build and push them in CI`,
		`compose.yaml:5: warning: services.web: "container_name" is ignored: task containers are named by gitorc`,
		`compose.yaml:6: warning: services.web: "restart" is ignored: use deploy.restart_policy`,
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

// Every service key the compose-spec schema defines has a policy: a new key
// in a compose-go upgrade must be decided on, not silently accepted.
func TestEveryServiceKeyHasAPolicy(t *testing.T) {
	for k := range schemaServiceKeys() {
		if _, ok := serviceKeys[k]; !ok {
			t.Errorf("service key %q has no policy in serviceKeys", k)
		}
	}
}

// A service whose profiles are not active is left out, and the loader
// says so at its line; with its profile active, it loads.
func TestProfiles(t *testing.T) {
	dir := writeStack(t, map[string]string{"compose.yaml": `services:
  web:
    image: x
  debug:
    image: x
    profiles: [debug]
`})
	load := func(profiles ...string) *Stack {
		t.Helper()
		st, err := Load(context.Background(), Source{Name: "test", Files: []string{filepath.Join(dir, "compose.yaml")}, Root: dir, Profiles: profiles})
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	st := load()
	var names []string
	for _, s := range st.Bundle.Services {
		names = append(names, s.Name)
	}
	if strings.Join(names, ",") != "test_web" {
		t.Errorf("services without a profile: %v, want test_web", names)
	}
	var warns []string
	for _, w := range st.Warnings {
		warns = append(warns, w.String())
	}
	want := "compose.yaml:6: warning: services.debug.profiles: not deployed: it runs only with profile debug, and no profile is active (profiles: in gitorc.yaml, --profile for stack deploy)"
	if !slices.Contains(warns, want) {
		t.Errorf("warnings %q, want %q", warns, want)
	}
	if st := load("debug"); len(st.Bundle.Services) != 2 || len(st.Warnings) != 0 {
		t.Errorf("with profile debug: %d services, warnings %v", len(st.Bundle.Services), st.Warnings)
	}
}
