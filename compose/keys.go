package compose

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/compose-spec/compose-go/v2/schema"
)

// keyPolicy is what gitorc does with a key compose accepts.
type keyPolicy struct {
	err  bool   // reject the stack
	why  string // the reason, shown to the user
	warn bool   // load, ignoring the key
}

var (
	supported = keyPolicy{}
	ignore    = func(why string) keyPolicy { return keyPolicy{warn: true, why: why} }
	reject    = func(why string) keyPolicy { return keyPolicy{err: true, why: why} }
)

const (
	whyHost    = "it breaks the isolation between tasks and the node; gitorc does not run privileged or host-namespace containers"
	whyRes     = "set limits under deploy.resources"
	whyNetMode = "tasks join the networks listed under networks"
)

// serviceKeys covers every key of a compose service. A key that is not here
// is rejected as unsupported, so a new compose-spec key is never silently
// accepted.
var serviceKeys = map[string]keyPolicy{
	"image": supported, "command": supported, "entrypoint": supported, "environment": supported,
	"env_file": supported, "labels": supported, "label_file": supported, "deploy": supported,
	"healthcheck": supported, "ports": supported, "networks": supported, "secrets": supported,
	"configs": supported, "volumes": supported, "tmpfs": supported, "user": supported,
	"working_dir": supported, "hostname": supported, "stop_grace_period": supported,
	"stop_signal": supported, "depends_on": supported, "read_only": supported, "sysctls": supported, "ulimits": supported, "cap_add": supported,
	"cap_drop": supported, "extra_hosts": supported, "group_add": supported, "platform": supported,
	"extends": supported, "profiles": supported,
	// Checked against the nodes' policies (policy.go).
	"privileged": supported, "security_opt": supported,

	"build":              ignore("gitorc deploys images; build and push them in CI"),
	"pull_policy":        ignore("images are pulled when a node lacks them"),
	"pull_refresh_after": ignore("images are pulled when a node lacks them"),
	"container_name":     ignore("task containers are named by gitorc"),
	"restart":            ignore("use deploy.restart_policy"),
	"scale":              ignore("use deploy.replicas"),
	"expose":             ignore("every port of a task is reachable from its networks"),
	"links":              ignore("services find each other by name on shared networks"),
	"external_links":     ignore("services find each other by name on shared networks"),
	"logging":            ignore("gitorc keeps task logs itself; read them with gitorc logs"),
	"log_driver":         ignore("gitorc keeps task logs itself; read them with gitorc logs"),
	"log_opt":            ignore("gitorc keeps task logs itself; read them with gitorc logs"),
	"dns":                ignore("tasks use the cluster's DNS"),
	"dns_search":         ignore("tasks use the cluster's DNS"),
	"dns_opt":            ignore("tasks use the cluster's DNS"),
	"domainname":         ignore("tasks use the cluster's DNS"),
	"stdin_open":         ignore("tasks have no standard input"),
	"tty":                ignore("tasks have no terminal; their output goes to gitorc logs"),
	"init":               ignore("gitorc does not inject an init process; use an image whose entrypoint reaps children"),
	"attach":             ignore("tasks have no attached terminal"),
	"develop":            ignore("compose watch is not part of a cluster deployment"),
	"annotations":        ignore("use labels"),
	"mac_address":        ignore("tasks get their addresses from the cluster"),
	"mem_limit":          ignore(whyRes),
	"mem_reservation":    ignore(whyRes),
	"cpus":               ignore(whyRes),
	"pids_limit":         ignore(whyRes),
	"cpu_shares":         ignore(whyRes),
	"oom_score_adj":      ignore("not supported by gitorc's executor"),

	"devices":             reject(whyHost),
	"device_cgroup_rules": reject(whyHost),
	"gpus":                reject("gitorc does not schedule GPUs"),
	"network_mode":        reject(whyNetMode),
	"pid":                 reject(whyHost),
	"ipc":                 reject(whyHost),
	"uts":                 reject(whyHost),
	"userns_mode":         reject(whyHost),
	"cgroup":              reject(whyHost),
	"cgroup_parent":       reject("gitorc places every task in its own cgroup"),
	"volumes_from":        reject("tasks of different services may run on different nodes; use a named volume"),
	"runtime":             reject("gitorc runs tasks with runc"),
	"isolation":           reject("gitorc runs Linux containers only"),
	"credential_spec":     reject("gitorc runs Linux containers only"),
	"storage_opt":         reject("not supported by gitorc's executor"),
	"blkio_config":        reject("not supported by gitorc's executor"),
	"cpu_count":           reject(whyRes),
	"cpu_percent":         reject(whyRes),
	"cpu_period":          reject(whyRes),
	"cpu_quota":           reject(whyRes),
	"cpu_rt_period":       reject(whyRes),
	"cpu_rt_runtime":      reject(whyRes),
	"cpuset":              reject(whyRes),
	"memswap_limit":       reject(whyRes),
	"mem_swappiness":      reject(whyRes),
	"oom_kill_disable":    reject(whyRes),
	"shm_size":            reject("mount a tmpfs at /dev/shm instead"),
	"provider":            reject("service providers are a docker compose feature"),
	"models":              reject("models are a docker compose feature"),
	"use_api_socket":      reject("there is no Docker API socket in a gitorc cluster"),
	"pre_start":           reject("lifecycle hooks are not supported"),
	"post_start":          reject("lifecycle hooks are not supported"),
	"pre_stop":            reject("lifecycle hooks are not supported"),
	"umask":               reject("not supported by gitorc's executor"),
}

var topKeys = map[string]keyPolicy{
	"version": supported, "name": supported, "services": supported, "networks": supported,
	"volumes": supported, "secrets": supported, "configs": supported, "include": supported,
	"models": reject("models are a docker compose feature"),
}

var networkKeys = map[string]keyPolicy{
	"name": supported, "driver": supported, "external": supported, "internal": supported,
	"attachable": supported, "labels": supported, "ipam": supported,
	"driver_opts": ignore("the overlay has no driver options"),
	"enable_ipv4": ignore("gitorc networks are IPv4"),
	"enable_ipv6": reject("gitorc networks are IPv4 only"),
}

var volumeKeys = map[string]keyPolicy{
	"name": supported, "driver": supported, "external": supported, "labels": supported,
	"driver_opts": supported,
}

var fileObjectKeys = map[string]keyPolicy{
	"name": supported, "file": supported, "environment": supported, "external": supported,
	"labels": supported, "content": supported,
	"driver":          reject("secrets and configs come from files or the environment"),
	"driver_opts":     reject("secrets and configs come from files or the environment"),
	"template_driver": reject("templated secrets and configs are not supported"),
}

var deployKeys = map[string]keyPolicy{
	"mode": supported, "replicas": supported, "labels": supported, "update_config": supported,
	"rollback_config": supported, "resources": supported, "restart_policy": supported,
	"placement": supported, "endpoint_mode": supported,
}

var resourceKeys = map[string]keyPolicy{
	"cpus": supported, "memory": supported, "pids": supported,
	"devices":           reject("gitorc does not schedule devices"),
	"generic_resources": reject("gitorc does not schedule generic resources"),
}

// checkKeys applies the key policies to one file as written.
func checkKeys(d *diags, f *fileIndex, doc any) {
	top, _ := doc.(map[string]any)
	applyPolicy(d, f, nil, top, topKeys, false)
	services, _ := top["services"].(map[string]any)
	for _, name := range sortedKeys(services) {
		svc, _ := services[name].(map[string]any)
		p := []string{"services", name}
		applyPolicy(d, f, p, svc, serviceKeys, true)
		deploy, _ := svc["deploy"].(map[string]any)
		applyPolicy(d, f, append(p, "deploy"), deploy, deployKeys, false)
		res, _ := deploy["resources"].(map[string]any)
		for _, which := range []string{"limits", "reservations"} {
			r, _ := res[which].(map[string]any)
			applyPolicy(d, f, append(p, "deploy", "resources", which), r, resourceKeys, false)
		}
	}
	for section, policy := range map[string]map[string]keyPolicy{
		"networks": networkKeys, "volumes": volumeKeys, "secrets": fileObjectKeys, "configs": fileObjectKeys,
	} {
		objs, _ := top[section].(map[string]any)
		for _, name := range sortedKeys(objs) {
			obj, _ := objs[name].(map[string]any)
			applyPolicy(d, f, []string{section, name}, obj, policy, false)
		}
	}
}

// applyPolicy reports the keys of m that gitorc ignores or rejects. With
// strict, keys absent from the policy are rejected; otherwise they are
// left to the schema (which knows every valid key).
func applyPolicy(d *diags, f *fileIndex, path []string, m map[string]any, policy map[string]keyPolicy, strict bool) {
	for _, k := range sortedKeys(m) {
		if len(k) > 2 && k[:2] == "x-" {
			continue
		}
		pol, known := policy[k]
		p := append(append([]string(nil), path...), k)
		switch {
		case !known && strict && schemaServiceKeys()[k]:
			d.keyIn(f, p, "%q is not supported by gitorc", k)
		case pol.err:
			d.keyIn(f, p, "%q is not supported: %s", k, pol.why)
		case pol.warn:
			d.list = append(d.list, Diagnostic{File: f.name, Line: f.keys[pathKey(p)], Path: pathString(path),
				Msg: fmt.Sprintf("%q is ignored: %s", k, pol.why), Severity: SevWarning})
		}
	}
}

func pathString(p []string) string { return strings.Join(p, ".") }

// schemaServiceKeys is every service key the compose-spec schema defines.
// Keys it does not define are reported by the schema check as unknown; keys
// it defines that gitorc has no policy for are reported as unsupported.
var schemaServiceKeys = sync.OnceValue(func() map[string]bool {
	var doc struct {
		Defs map[string]struct {
			Properties map[string]json.RawMessage `json:"properties"`
		} `json:"$defs"`
	}
	keys := map[string]bool{}
	if err := json.Unmarshal([]byte(schema.Schema), &doc); err != nil {
		return keys
	}
	for _, def := range []string{"service", "container_spec", "workload_spec"} {
		for k := range doc.Defs[def].Properties {
			keys[k] = true
		}
	}
	return keys
})

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
