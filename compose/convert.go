package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/compose-spec/compose-go/v2/types"
	"github.com/gitorc/gitorc/cluster/api"
)

// converter turns a loaded compose project into api specs, reporting each
// problem at the field path the user wrote.
type converter struct {
	d       *diags
	proj    *types.Project
	stack   string
	wd      string
	tree    *tree
	maxData int64
	// policies are the nodes' policies checked with checkPolicy (Source).
	policies    []api.NodePolicy
	checkPolicy bool
}

func (c *converter) convert() api.Bundle {
	var b api.Bundle
	for _, key := range sortedKeys(c.proj.Networks) {
		b.Networks = append(b.Networks, c.network(key, c.proj.Networks[key]))
	}
	for _, key := range sortedKeys(c.proj.Volumes) {
		b.Volumes = append(b.Volumes, c.volume(key, c.proj.Volumes[key]))
	}
	for _, key := range sortedKeys(c.proj.Secrets) {
		b.Secrets = append(b.Secrets, c.secret(key, types.FileObjectConfig(c.proj.Secrets[key])))
	}
	for _, key := range sortedKeys(c.proj.Configs) {
		b.Configs = append(b.Configs, c.config(key, types.FileObjectConfig(c.proj.Configs[key])))
	}
	for _, name := range sortedKeys(c.proj.Services) {
		b.Services = append(b.Services, c.service(name, c.proj.Services[name]))
	}
	return b
}

func (c *converter) objectStack(external bool) string {
	if external {
		return ""
	}
	return c.stack
}

func (c *converter) network(key string, n types.NetworkConfig) api.NetworkSpec {
	spec := api.NetworkSpec{
		Name: n.Name, Stack: c.objectStack(bool(n.External)), Labels: labels(n.Labels),
		Driver: n.Driver, Internal: n.Internal, Attachable: n.Attachable, External: bool(n.External),
	}
	if spec.Driver == "" {
		spec.Driver = api.DefaultNetworkDriver
	}
	p := []string{"networks", key}
	if d := n.Ipam.Driver; d != "" && d != "default" {
		c.d.errorf(append(p, "ipam", "driver"), "ipam driver %q is not supported: tasks take their addresses from the cluster's task pool (gitorc bootstrap --task-pool)", d)
	}
	if len(n.Ipam.Config) > 0 && n.Ipam.Config[0] != nil {
		spec.Subnet = n.Ipam.Config[0].Subnet
		if len(n.Ipam.Config) > 1 {
			c.d.warnf(append(p, "ipam", "config"), "only the first subnet is checked")
		}
		if spec.Subnet != "" {
			c.d.warnf(append(p, "ipam", "config", "subnet"), "tasks take their addresses from their node's share of the cluster's task pool, whatever networks they join: the subnet is only checked not to overlap the cluster's pools")
		}
	}
	if bool(n.External) && (n.Driver != "" || n.Internal || n.Attachable) {
		c.d.errorf(p, "an external network is defined outside the stack: it takes no driver, internal or attachable")
	}
	c.validate(p, spec.Validate(), nil)
	return spec
}

func (c *converter) volume(key string, v types.VolumeConfig) api.VolumeSpec {
	spec := api.VolumeSpec{
		Name: v.Name, Stack: c.objectStack(bool(v.External)), Labels: labels(v.Labels),
		Driver: v.Driver, DriverOpts: map[string]string(v.DriverOpts), External: bool(v.External),
	}
	if spec.Driver == "" {
		spec.Driver = api.DefaultVolumeDriver
	}
	if len(spec.DriverOpts) == 0 {
		spec.DriverOpts = nil
	}
	c.validate([]string{"volumes", key}, spec.Validate(), nil)
	return spec
}

// relFile shows a resolved file path relative to the stack's directory.
func (c *converter) relFile(p string) string {
	if rel, err := filepath.Rel(c.wd, p); err == nil && !strings.HasPrefix(rel, "..") {
		return "./" + filepath.ToSlash(rel)
	}
	return p
}

func (c *converter) secret(key string, s types.FileObjectConfig) api.SecretSpec {
	spec := api.SecretSpec{
		Name: s.Name, Stack: c.objectStack(bool(s.External)), Labels: labels(s.Labels),
		Environment: s.Environment, External: bool(s.External),
	}
	p := []string{"secrets", key}
	switch {
	case s.Environment != "" && !c.envSet(s.Environment):
		c.d.errorf(append(p, "environment"), "variable %s is not set: the secret would be empty", s.Environment)
	case s.Environment != "":
		// compose-go filled Content from the variable, which an env file
		// of the stack sets: in plaintext, in Git.
		c.d.errorf(append(p, "environment"), "variable %s comes from an env file, in plaintext: seal the value into a file with gitorc seal and use file:", s.Environment)
	case s.Content != "":
		c.d.errorf(p, "inline content would put the secret in Git in plaintext: seal it into a file with gitorc seal")
	}
	if s.File != "" {
		spec.File = c.relFile(s.File)
		c.checkFile(append(p, "file"), s.File, spec.File)
		if !strings.HasSuffix(s.File, ".age") {
			c.d.warnf(append(p, "file"), "%s is not sealed: secrets committed to Git should be sealed with gitorc seal (a .age file)", spec.File)
		}
	}
	c.validate(p, spec.Validate(), nil)
	return spec
}

func (c *converter) config(key string, s types.FileObjectConfig) api.ConfigSpec {
	spec := api.ConfigSpec{
		Name: s.Name, Stack: c.objectStack(bool(s.External)), Labels: labels(s.Labels),
		Environment: s.Environment, External: bool(s.External),
	}
	p := []string{"configs", key}
	switch {
	case s.Environment != "" && !c.envSet(s.Environment):
		c.d.errorf(append(p, "environment"), "variable %s is not set: the config would be empty", s.Environment)
	case s.File != "":
		spec.File = c.relFile(s.File)
		c.checkFile(append(p, "file"), s.File, spec.File)
	case s.Content != "" || s.Environment != "":
		// Inline, or from a variable the stack's environment sets.
		spec.Data = []byte(s.Content)
		sum := sha256.Sum256(spec.Data)
		spec.DataHash = "sha256:" + hex.EncodeToString(sum[:])
	}
	c.validate(p, spec.Validate(), nil)
	return spec
}

// envSet reports whether the stack's environment (its env files and the
// variables given to the loader) sets name, to empty or not.
func (c *converter) envSet(name string) bool {
	_, ok := c.proj.Environment[name]
	return ok
}

func (c *converter) checkFile(p []string, abs, shown string) {
	t := c.tree
	if t == nil {
		t = &tree{}
	}
	st, err := t.stat(abs)
	switch {
	case errors.Is(err, ErrOutsideTree):
		c.d.errorf(p, "%s is %v", shown, err)
	case err != nil:
		c.d.errorf(p, "%s: no such file", shown)
	case st.IsDir():
		c.d.errorf(p, "%s is a directory, not a file", shown)
	case c.maxData > 0 && st.Size() > c.maxData:
		c.d.errorf(p, "%s is %s, over the limit of %s for a secret or config file", shown, FormatBytes(st.Size()), FormatBytes(c.maxData))
	}
}

func (c *converter) service(name string, s types.ServiceConfig) api.ServiceSpec {
	p := []string{"services", name}
	at := func(rel ...string) []string { return append(append([]string(nil), p...), rel...) }
	spec := api.ServiceSpec{
		Name:     c.stack + "_" + name,
		Stack:    c.stack,
		Mode:     api.ModeReplicated,
		Replicas: api.DefaultReplicas,
		Update:   api.DefaultUpdateConfig(),
		Rollback: api.DefaultRollbackConfig(),
		Task: api.TaskSpec{
			Restart: api.DefaultRestartPolicy(),
		},
	}
	ct := &spec.Task.Container
	ct.Image = s.Image
	ct.Command = []string(s.Entrypoint)
	ct.Args = []string(s.Command)
	ct.Dir = s.WorkingDir
	ct.User = s.User
	ct.Groups = s.GroupAdd
	ct.Hostname = s.Hostname
	ct.Labels = labels(s.Labels)
	ct.ReadOnly = s.ReadOnly
	ct.StopSignal = s.StopSignal
	ct.StopGracePeriod = api.DefaultStopGracePeriod
	if s.StopGracePeriod != nil {
		ct.StopGracePeriod = api.Duration(*s.StopGracePeriod)
	}
	ct.Sysctls = map[string]string(s.Sysctls)
	if len(ct.Sysctls) == 0 {
		ct.Sysctls = nil
	}
	ct.CapAdd, ct.CapDrop = s.CapAdd, s.CapDrop
	ct.Privileged = s.Privileged
	c.securityOpts(at("security_opt"), s.SecurityOpt, ct)
	for _, k := range sortedKeys(s.Environment) {
		if v := s.Environment[k]; v != nil {
			ct.Env = append(ct.Env, k+"="+*v)
		}
	}
	for _, k := range sortedKeys(s.Ulimits) {
		u := s.Ulimits[k]
		soft, hard := int64(u.Soft), int64(u.Hard)
		if u.Single != 0 {
			soft, hard = int64(u.Single), int64(u.Single)
		}
		ct.Ulimits = append(ct.Ulimits, api.Ulimit{Name: k, Soft: soft, Hard: hard})
	}
	for _, h := range sortedKeys(s.ExtraHosts) {
		for _, ip := range s.ExtraHosts[h] {
			ct.ExtraHosts = append(ct.ExtraHosts, h+":"+ip)
		}
	}
	if s.Platform != "" {
		os, arch, _ := strings.Cut(s.Platform, "/")
		arch, _, _ = strings.Cut(arch, "/")
		spec.Task.Placement.Platforms = []api.Platform{{OS: os, Architecture: arch}}
	}
	c.healthcheck(at("healthcheck"), s.HealthCheck, ct)
	c.mounts(at(), s, ct)
	ct.Secrets = c.fileRefs(at("secrets"), s.Secrets, true)
	ct.Configs = c.fileRefs(at("configs"), toSecretRefs(s.Configs), false)
	c.ports(at("ports"), s.Ports, &spec.Endpoint)
	c.networks(at("networks"), s.Networks, &spec)
	for _, dep := range sortedKeys(s.DependsOn) {
		other, ok := c.proj.Services[dep]
		if !ok {
			c.d.errorf(at("depends_on", dep), "undefined service %q", dep)
		}
		spec.DependsOn = append(spec.DependsOn, dep)
		var cond api.DependCondition
		switch s.DependsOn[dep].Condition {
		case "", types.ServiceConditionStarted:
			cond = api.DependStarted
		case types.ServiceConditionHealthy:
			cond = api.DependHealthy
		case types.ServiceConditionCompletedSuccessfully:
			cond = api.DependCompleted
			if m, err := api.ParseServiceMode(deployMode(other)); ok && (err != nil || !m.IsJob()) {
				c.d.errorf(at("depends_on", dep, "condition"), "service_completed_successfully waits for a job, and %s is not one (deploy.mode: replicated-job or global-job)", dep)
			}
		default:
			c.d.errorf(at("depends_on", dep, "condition"), "unknown condition %q: want service_started, service_healthy or service_completed_successfully", s.DependsOn[dep].Condition)
		}
		if spec.Conditions == nil {
			spec.Conditions = map[string]api.DependCondition{}
		}
		spec.Conditions[dep] = cond
	}
	if s.Deploy != nil {
		c.deploy(at("deploy"), s.Deploy, &spec)
	}
	c.validate(p, spec.Validate(), serviceFieldPaths)
	c.checkPolicies(p, s, ct)
	return spec
}

func toSecretRefs(in []types.ServiceConfigObjConfig) []types.ServiceSecretConfig {
	out := make([]types.ServiceSecretConfig, len(in))
	for i, r := range in {
		out[i] = types.ServiceSecretConfig(r)
	}
	return out
}

// deployMode is a service's deploy.mode as written ("replicated" when
// none).
func deployMode(s types.ServiceConfig) string {
	if s.Deploy == nil || s.Deploy.Mode == "" {
		return "replicated"
	}
	return s.Deploy.Mode
}

func (c *converter) deploy(p []string, d *types.DeployConfig, spec *api.ServiceSpec) {
	at := func(rel ...string) []string { return append(append([]string(nil), p...), rel...) }
	if d.Mode != "" {
		m, err := api.ParseServiceMode(d.Mode)
		if err != nil {
			c.d.errorf(at("mode"), "%v", err)
		}
		spec.Mode = m
	}
	switch {
	case spec.Mode.IsGlobal():
		spec.Replicas = 0
		if d.Replicas != nil {
			c.d.errorf(at("replicas"), msgGlobalReplicas, spec.Mode)
		}
	case spec.Mode == api.ModeReplicatedJob:
		spec.Replicas, spec.MaxConcurrent, spec.TotalCompletions = 0, 1, 1
		if d.Replicas != nil && *d.Replicas >= 0 {
			spec.MaxConcurrent, spec.TotalCompletions = uint64(*d.Replicas), uint64(*d.Replicas)
		}
	default:
		if d.Replicas != nil {
			if *d.Replicas < 0 {
				c.d.errorf(at("replicas"), "%d must not be negative", *d.Replicas)
			} else {
				spec.Replicas = uint64(*d.Replicas)
			}
		}
	}
	spec.Labels = labels(d.Labels)
	if d.UpdateConfig != nil {
		c.updateConfig(at("update_config"), d.UpdateConfig, &spec.Update)
	}
	if d.RollbackConfig != nil {
		c.updateConfig(at("rollback_config"), d.RollbackConfig, &spec.Rollback)
	}
	if r := d.RestartPolicy; r != nil {
		rp := &spec.Task.Restart
		if r.Condition != "" {
			cond, err := api.ParseRestartCondition(r.Condition)
			if err != nil {
				c.d.errorf(at("restart_policy", "condition"), "%v", err)
			}
			rp.Condition = cond
		}
		if r.Delay != nil {
			rp.Delay = api.Duration(*r.Delay)
		}
		if r.MaxAttempts != nil {
			rp.MaxAttempts = *r.MaxAttempts
		}
		if r.Window != nil {
			rp.Window = api.Duration(*r.Window)
		}
	}
	res := &spec.Task.Resources
	if l := d.Resources.Limits; l != nil {
		res.Limits = resources(l)
	}
	if r := d.Resources.Reservations; r != nil {
		res.Reservations = resources(r)
		if r.Pids != 0 {
			c.d.warnf(at("resources", "reservations", "pids"), "pids can only be limited, not reserved: ignored")
			res.Reservations.Pids = 0
		}
	}
	pl := &spec.Task.Placement
	for i, s := range d.Placement.Constraints {
		con, err := api.ParseConstraint(s)
		if err != nil {
			c.d.errorf(at("placement", "constraints", strconv.Itoa(i)), "%v", err)
			continue
		}
		pl.Constraints = append(pl.Constraints, con)
	}
	for _, pref := range d.Placement.Preferences {
		pl.Preferences = append(pl.Preferences, api.SpreadOver{Spread: pref.Spread})
	}
	pl.MaxReplicasPerNode = d.Placement.MaxReplicas
	if d.EndpointMode != "" {
		m, err := api.ParseEndpointMode(d.EndpointMode)
		if err != nil {
			c.d.errorf(at("endpoint_mode"), "%v", err)
		}
		spec.Endpoint.Mode = m
	}
}

func resources(r *types.Resource) api.Resources {
	return api.Resources{
		NanoCPUs: api.NanoCPUs(math.Round(float64(r.NanoCPUs)*1e9/1e6) * 1e6), // cpus are given to 3 decimals
		Memory:   api.Bytes(r.MemoryBytes),
		Pids:     r.Pids,
	}
}

func (c *converter) updateConfig(p []string, u *types.UpdateConfig, out *api.UpdateConfig) {
	at := func(rel ...string) []string { return append(append([]string(nil), p...), rel...) }
	if u.Parallelism != nil {
		out.Parallelism = *u.Parallelism
	}
	out.Delay = api.Duration(u.Delay)
	if u.FailureAction != "" {
		a, err := api.ParseFailureAction(u.FailureAction)
		if err != nil {
			c.d.errorf(at("failure_action"), "%v", err)
		}
		out.FailureAction = a
	}
	if u.Monitor != 0 {
		out.Monitor = api.Duration(u.Monitor)
	}
	out.MaxFailureRatio = math.Round(float64(u.MaxFailureRatio)*1e6) / 1e6
	if u.Order != "" {
		o, err := api.ParseUpdateOrder(u.Order)
		if err != nil {
			c.d.errorf(at("order"), "%v", err)
		}
		out.Order = o
	}
}

func (c *converter) healthcheck(p []string, h *types.HealthCheckConfig, ct *api.ContainerSpec) {
	if h == nil {
		return
	}
	if h.Disable {
		ct.Healthcheck = &api.Healthcheck{Test: []string{"NONE"}}
		return
	}
	hc := api.DefaultHealthcheck()
	hc.Test = []string(h.Test)
	if len(hc.Test) == 0 {
		c.d.errorf(append(p, "test"), "a healthcheck needs a test (or disable: true)")
	}
	if h.Interval != nil {
		hc.Interval = api.Duration(*h.Interval)
	}
	if h.Timeout != nil {
		hc.Timeout = api.Duration(*h.Timeout)
	}
	if h.Retries != nil {
		hc.Retries = *h.Retries
	}
	if h.StartPeriod != nil {
		hc.StartPeriod = api.Duration(*h.StartPeriod)
	}
	if h.StartInterval != nil {
		hc.StartInterval = api.Duration(*h.StartInterval)
	}
	ct.Healthcheck = &hc
}

func (c *converter) mounts(p []string, s types.ServiceConfig, ct *api.ContainerSpec) {
	for i, v := range s.Volumes {
		vp := append(append([]string(nil), p...), "volumes", strconv.Itoa(i))
		m := api.Mount{Target: v.Target, ReadOnly: v.ReadOnly}
		switch v.Type {
		case types.VolumeTypeVolume, "":
			m.Type = api.MountVolume
			if v.Source != "" {
				vol, ok := c.proj.Volumes[v.Source]
				if !ok {
					c.d.errorf(vp, "undefined volume %q: declare it under the top-level volumes", v.Source)
				}
				m.Source = vol.Name
				if len(vol.DriverOpts) > 0 {
					m.VolumeOptions = map[string]string(vol.DriverOpts)
				}
			}
			if v.Volume != nil {
				m.NoCopy = v.Volume.NoCopy
			}
		case types.VolumeTypeBind:
			m.Type = api.MountBind
			m.Source = v.Source
			if rel, err := filepath.Rel(c.wd, v.Source); err == nil && !strings.HasPrefix(rel, "..") {
				c.d.errorf(vp, "bind mount of %s, a path of the stack's own directory: workers have no copy of the repository; use a config, or an absolute host path", c.relFile(v.Source))
			}
		case types.VolumeTypeTmpfs:
			m.Type = api.MountTmpfs
			if v.Tmpfs != nil {
				m.TmpfsSize = api.Bytes(v.Tmpfs.Size)
				m.TmpfsMode = v.Tmpfs.Mode
			}
		default:
			c.d.errorf(vp, "volume type %q is not supported: use volume, bind or tmpfs", v.Type)
			continue
		}
		ct.Mounts = append(ct.Mounts, m)
	}
	for _, t := range s.Tmpfs {
		target, _, _ := strings.Cut(t, ":")
		ct.Mounts = append(ct.Mounts, api.Mount{Type: api.MountTmpfs, Target: target})
	}
}

func (c *converter) fileRefs(p []string, refs []types.ServiceSecretConfig, secret bool) []api.FileRef {
	kind := "config"
	if secret {
		kind = "secret"
	}
	var out []api.FileRef
	for i, r := range refs {
		rp := append(append([]string(nil), p...), strconv.Itoa(i))
		ref := api.FileRef{Target: r.Target, UID: r.UID, GID: r.GID, Mode: api.DefaultFileMode}
		if secret {
			s, ok := c.proj.Secrets[r.Source]
			ref.Name = s.Name
			if !ok {
				ref.Name = r.Source
				c.d.errorf(rp, "undefined secret %q: declare it under the top-level secrets", r.Source)
			}
		} else {
			s, ok := c.proj.Configs[r.Source]
			ref.Name = s.Name
			if !ok {
				ref.Name = r.Source
				c.d.errorf(rp, "undefined config %q: declare it under the top-level configs", r.Source)
			}
		}
		switch {
		case ref.Target == "" && secret:
			ref.Target = api.SecretsDir + r.Source
		case ref.Target == "":
			ref.Target = "/" + r.Source
		case !path.IsAbs(ref.Target) && secret:
			ref.Target = api.SecretsDir + ref.Target
		case !path.IsAbs(ref.Target):
			c.d.errorf(append(rp, "target"), "%s target %q must be an absolute path", kind, ref.Target)
		}
		if ref.UID == "" {
			ref.UID = api.DefaultFileUID
		}
		if ref.GID == "" {
			ref.GID = api.DefaultFileGID
		}
		if r.Mode != nil {
			ref.Mode = api.FileMode(*r.Mode)
		}
		out = append(out, ref)
	}
	return out
}

func (c *converter) ports(p []string, ports []types.ServicePortConfig, ep *api.EndpointSpec) {
	for i, pc := range ports {
		pp := append(append([]string(nil), p...), strconv.Itoa(i))
		out := api.PortConfig{Name: pc.Name, Target: pc.Target}
		if pc.Protocol != "" {
			proto, err := api.ParseProtocol(pc.Protocol)
			if err != nil {
				c.d.errorf(append(pp, "protocol"), "%v", err)
			}
			out.Protocol = proto
		}
		if pc.Mode != "" {
			m, err := api.ParsePublishMode(pc.Mode)
			if err != nil {
				c.d.errorf(append(pp, "mode"), "%v", err)
			}
			out.Mode = m
		}
		if pc.Published != "" {
			n, err := strconv.ParseUint(pc.Published, 10, 32)
			if err != nil || n == 0 || n > 65535 {
				c.d.errorf(append(pp, "published"), "published port %q is not a port between 1 and 65535", pc.Published)
			}
			out.Published = uint32(n)
		}
		if pc.HostIP != "" {
			c.d.warnf(pp, "host_ip %s is ignored: published ports answer on every address of a node", pc.HostIP)
		}
		ep.Ports = append(ep.Ports, out)
	}
}

func (c *converter) networks(p []string, nets map[string]*types.ServiceNetworkConfig, spec *api.ServiceSpec) {
	keys := sortedKeys(nets)
	for _, key := range keys {
		n, ok := c.proj.Networks[key]
		if !ok {
			c.d.errorf(append(append([]string(nil), p...), key), "undefined network %q: declare it under the top-level networks", key)
			continue
		}
		att := api.NetworkAttachment{Target: n.Name}
		if cfg := nets[key]; cfg != nil {
			att.Aliases = cfg.Aliases
		}
		spec.Networks = append(spec.Networks, att)
	}
	sort.Slice(spec.Networks, func(i, j int) bool { return spec.Networks[i].Target < spec.Networks[j].Target })
}

func labels(l types.Labels) map[string]string {
	if len(l) == 0 {
		return nil
	}
	return map[string]string(l)
}

// serviceFieldPaths maps api.ServiceSpec field paths to the compose keys
// they come from, so api validation errors land on the user's lines.
var serviceFieldPaths = []struct{ api, compose string }{
	{"name", ""},
	{"replicas", "deploy.replicas"},
	{"max_concurrent", "deploy.replicas"},
	{"task.container.image", "image"},
	{"task.container.env", "environment"},
	{"task.container.stop_grace_period", "stop_grace_period"},
	{"task.container.mounts", "volumes"},
	{"task.container.secrets", "secrets"},
	{"task.container.configs", "configs"},
	{"task.container.healthcheck", "healthcheck"},
	{"task.resources", "deploy.resources"},
	{"task.restart_policy", "deploy.restart_policy"},
	{"task.placement", "deploy.placement"},
	{"update_config", "deploy.update_config"},
	{"rollback_config", "deploy.rollback_config"},
	{"endpoint.ports", "ports"},
	{"endpoint", "deploy.endpoint_mode"},
	{"networks", "networks"},
}

// validate reports api validation errors under the object's compose path.
func (c *converter) validate(p []string, err error, paths []struct{ api, compose string }) {
	fes, ok := err.(api.FieldErrors)
	if !ok {
		if err != nil {
			c.d.errorf(p, "%v", err)
		}
		return
	}
	for _, fe := range fes {
		rel := strings.NewReplacer("[", ".", "]", "").Replace(fe.Path)
		for _, m := range paths {
			if rel == m.api || strings.HasPrefix(rel, m.api+".") {
				rel = m.compose + strings.TrimPrefix(rel, m.api)
				break
			}
		}
		full := append([]string(nil), p...)
		if rel = strings.Trim(rel, "."); rel != "" && fe.Path != "name" {
			full = append(full, strings.Split(rel, ".")...)
		}
		c.d.errorf(full, "%s", fe.Msg)
	}
}
