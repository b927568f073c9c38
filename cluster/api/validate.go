package api

import (
	"fmt"
	"net/netip"
	"path"
	"regexp"
	"slices"
	"strings"
)

// FieldError is one problem with one field. Path is dotted from the object
// validated ("update_config.max_failure_ratio", "endpoint.ports[1].target").
type FieldError struct {
	Path string
	Msg  string
}

func (e FieldError) Error() string {
	if e.Path == "" {
		return e.Msg
	}
	return e.Path + ": " + e.Msg
}

// FieldErrors is every problem found; validation never stops at the first.
type FieldErrors []FieldError

func (es FieldErrors) Error() string {
	lines := make([]string, len(es))
	for i, e := range es {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Err returns es as an error, or nil when it is empty.
func (es FieldErrors) Err() error {
	if len(es) == 0 {
		return nil
	}
	return es
}

func (es *FieldErrors) add(p, format string, args ...any) {
	*es = append(*es, FieldError{Path: p, Msg: fmt.Sprintf(format, args...)})
}

func join(parts ...string) string {
	var out []string
	for _, p := range parts {
		if p != "" {
			out = append(out, p)
		}
	}
	return strings.Join(out, ".")
}

// nameRe is Swarm's rule for service, network, secret and config names.
var nameRe = regexp.MustCompile(`^[a-zA-Z0-9][a-zA-Z0-9_.-]*$`)

// MaxNameLen is the longest object name; service names become DNS labels.
const MaxNameLen = 63

func validateName(es *FieldErrors, p, name string) {
	switch {
	case name == "":
		es.add(p, "name must not be empty")
	case len(name) > MaxNameLen:
		es.add(p, "name %q is longer than %d characters", name, MaxNameLen)
	case !nameRe.MatchString(name):
		es.add(p, "name %q must start with a letter or digit and hold only letters, digits, '_', '.' and '-'", name)
	}
}

// Validate checks a service spec and returns every problem as FieldErrors.
func (s *ServiceSpec) Validate() error {
	var es FieldErrors
	validateName(&es, "name", s.Name)
	switch {
	case s.Mode.IsGlobal() && s.Replicas != 0:
		es.add("replicas", "replicas is not allowed with %s mode", s.Mode)
	case s.Mode.IsGlobal() && s.Task.Placement.MaxReplicasPerNode != 0:
		es.add("task.placement.max_replicas_per_node", "max_replicas_per_node is not allowed with %s mode", s.Mode)
	case s.Mode != ModeReplicatedJob && (s.MaxConcurrent != 0 || s.TotalCompletions != 0):
		es.add("max_concurrent", "max_concurrent and total_completions are for replicated-job mode only")
	}
	validateTask(&es, "task", &s.Task)
	validateUpdate(&es, "update_config", &s.Update)
	validateUpdate(&es, "rollback_config", &s.Rollback)
	validateEndpoint(&es, "endpoint", &s.Endpoint)
	seen := map[string]bool{}
	for i, n := range s.Networks {
		p := fmt.Sprintf("networks[%d]", i)
		if n.Target == "" {
			es.add(p, "network name must not be empty")
		} else if seen[n.Target] {
			es.add(p, "network %q is attached twice", n.Target)
		}
		seen[n.Target] = true
	}
	return es.Err()
}

func validateTask(es *FieldErrors, p string, t *TaskSpec) {
	c := &t.Container
	cp := join(p, "container")
	if strings.TrimSpace(c.Image) == "" {
		es.add(join(cp, "image"), "image is required: gitorc deploys images, it does not build them")
	} else if strings.ContainsAny(c.Image, " \t\n") {
		es.add(join(cp, "image"), "image %q must not contain whitespace", c.Image)
	}
	for i, e := range c.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" {
			es.add(fmt.Sprintf("%s.env[%d]", cp, i), "environment entry %q is not KEY=VALUE", e)
		}
	}
	if c.StopGracePeriod < 0 {
		es.add(join(cp, "stop_grace_period"), "must not be negative")
	}
	targets := map[string]string{}
	claim := func(fp, target string) {
		if prev, ok := targets[target]; ok {
			es.add(fp, "target %s is already used by %s", target, prev)
		}
		targets[target] = fp
	}
	for i, m := range c.Mounts {
		mp := fmt.Sprintf("%s.mounts[%d]", cp, i)
		if !path.IsAbs(m.Target) {
			es.add(mp, "target %q must be an absolute path", m.Target)
		}
		switch m.Type {
		case MountBind:
			if !path.IsAbs(m.Source) {
				es.add(mp, "bind source %q must be an absolute path", m.Source)
			}
		case MountTmpfs:
			if m.Source != "" {
				es.add(mp, "tmpfs mount takes no source")
			}
		}
		claim(mp, m.Target)
	}
	for _, group := range []struct {
		kind string
		refs []FileRef
	}{{"secrets", c.Secrets}, {"configs", c.Configs}} {
		kind := group.kind
		for i, r := range group.refs {
			rp := fmt.Sprintf("%s.%s[%d]", cp, kind, i)
			if r.Name == "" {
				es.add(rp, "name must not be empty")
			}
			if !path.IsAbs(r.Target) {
				es.add(rp, "target %q must be an absolute path", r.Target)
			}
			if r.Mode > 0o777 {
				es.add(rp, "mode %#o is not a file permission", r.Mode)
			}
			claim(rp, r.Target)
		}
	}
	if h := c.Healthcheck; h != nil {
		hp := join(cp, "healthcheck")
		switch {
		case len(h.Test) == 0:
			es.add(join(hp, "test"), "test must not be empty")
		case h.Test[0] == "NONE":
		case h.Test[0] == "CMD" || h.Test[0] == "CMD-SHELL":
			if len(h.Test) < 2 {
				es.add(join(hp, "test"), "%s needs a command", h.Test[0])
			}
		default:
			es.add(join(hp, "test"), "test must start with CMD, CMD-SHELL or NONE, not %q", h.Test[0])
		}
		if h.Interval < 0 || h.Timeout < 0 || h.StartPeriod < 0 || h.StartInterval < 0 {
			es.add(hp, "durations must not be negative")
		}
	}
	rp := join(p, "resources")
	l, r := t.Resources.Limits, t.Resources.Reservations
	if l.NanoCPUs < 0 || r.NanoCPUs < 0 || l.Memory < 0 || r.Memory < 0 || l.Pids < 0 {
		es.add(rp, "resources must not be negative")
	}
	if l.Memory > 0 && r.Memory > l.Memory {
		es.add(join(rp, "reservations.memory"), "reservation %s exceeds limit %s", r.Memory, l.Memory)
	}
	if l.NanoCPUs > 0 && r.NanoCPUs > l.NanoCPUs {
		es.add(join(rp, "reservations.cpus"), "reservation %s exceeds limit %s", r.NanoCPUs, l.NanoCPUs)
	}
	if l.Memory > 0 && l.Memory < 6<<20 {
		es.add(join(rp, "limits.memory"), "limit %s is below the 6MiB minimum", l.Memory)
	}
	if t.Restart.Delay < 0 || t.Restart.Window < 0 {
		es.add(join(p, "restart_policy"), "delay and window must not be negative")
	}
	for i, pref := range t.Placement.Preferences {
		if !strings.HasPrefix(pref.Spread, ConstraintLabelPrefix) || len(pref.Spread) == len(ConstraintLabelPrefix) {
			es.add(fmt.Sprintf("%s.placement.preferences[%d]", p, i), "spread over %q: want node.labels.<name>", pref.Spread)
		}
	}
}

func validateUpdate(es *FieldErrors, p string, u *UpdateConfig) {
	if u.MaxFailureRatio < 0 || u.MaxFailureRatio > 1 {
		es.add(join(p, "max_failure_ratio"), "%v is not between 0 and 1", u.MaxFailureRatio)
	}
	if u.Delay < 0 {
		es.add(join(p, "delay"), "must not be negative")
	}
	if u.Monitor < 0 {
		es.add(join(p, "monitor"), "must not be negative")
	}
}

func validateEndpoint(es *FieldErrors, p string, e *EndpointSpec) {
	type key struct {
		port  uint32
		proto Protocol
	}
	published := map[key]int{}
	for i, pc := range e.Ports {
		pp := fmt.Sprintf("%s.ports[%d]", p, i)
		if pc.Target == 0 || pc.Target > 65535 {
			es.add(pp, "target port %d is not between 1 and 65535", pc.Target)
		}
		if pc.Published > 65535 {
			es.add(pp, "published port %d is not between 1 and 65535", pc.Published)
		}
		if pc.Published != 0 {
			k := key{pc.Published, pc.Protocol}
			if j, dup := published[k]; dup {
				es.add(pp, "published port %d/%s is also published by ports[%d]", pc.Published, pc.Protocol, j)
			}
			published[k] = i
		}
	}
	if e.Mode == EndpointDNSRR {
		for i, pc := range e.Ports {
			if pc.Mode == PublishIngress {
				es.add(fmt.Sprintf("%s.ports[%d]", p, i), "dnsrr endpoint mode cannot publish in ingress mode; use mode: host")
			}
		}
	}
}

// Validate checks a network spec.
func (n *NetworkSpec) Validate() error {
	var es FieldErrors
	validateName(&es, "name", n.Name)
	if n.Driver != DefaultNetworkDriver {
		es.add("driver", "driver %q is not supported: gitorc networks are %q", n.Driver, DefaultNetworkDriver)
	}
	if n.Subnet != "" {
		if _, err := netip.ParsePrefix(n.Subnet); err != nil {
			es.add("subnet", "%q is not a CIDR subnet", n.Subnet)
		}
	}
	return es.Err()
}

// Validate checks a volume spec.
func (v *VolumeSpec) Validate() error {
	var es FieldErrors
	validateName(&es, "name", v.Name)
	if v.Driver != DefaultVolumeDriver {
		es.add("driver", "driver %q is not supported: gitorc volumes are %q", v.Driver, DefaultVolumeDriver)
	}
	if err := ValidVolumeOptions(v.DriverOpts); err != nil {
		es.add("driver_opts", "%v", err)
	}
	return es.Err()
}

// ValidVolumeOptions checks a local volume's driver_opts as Docker's
// local driver takes them: type (the filesystem: nfs, tmpfs, none for a
// bind with o: bind, …), device (what is mounted) and o (mount(8)
// options); all of type and device, or none of the three.
func ValidVolumeOptions(opts map[string]string) error {
	if len(opts) == 0 {
		return nil
	}
	for k := range opts {
		if k != "type" && k != "device" && k != "o" {
			return fmt.Errorf("option %q is not one of the local driver's: type, device, o", k)
		}
	}
	switch {
	case opts["type"] == "":
		return fmt.Errorf("type is required (the filesystem to mount: nfs, tmpfs, or none with o: bind)")
	case opts["device"] == "":
		return fmt.Errorf("device is required (what to mount, e.g. :/export/path for nfs, a host path for a bind)")
	case opts["type"] == "none" && !slices.Contains(strings.Split(opts["o"], ","), "bind"):
		return fmt.Errorf("type none mounts nothing without o: bind")
	}
	return nil
}

func validateSource(es *FieldErrors, external bool, file, env string) {
	n := 0
	for _, set := range []bool{external, file != "", env != ""} {
		if set {
			n++
		}
	}
	if n != 1 {
		es.add("", "exactly one of file, environment or external must be set")
	}
}

// Validate checks a secret spec.
func (s *SecretSpec) Validate() error {
	var es FieldErrors
	validateName(&es, "name", s.Name)
	validateSource(&es, s.External, s.File, s.Environment)
	return es.Err()
}

// Validate checks a config spec.
func (c *ConfigSpec) Validate() error {
	var es FieldErrors
	validateName(&es, "name", c.Name)
	if !c.External && c.File == "" && c.Environment == "" && c.Data == nil {
		es.add("", "one of file, environment, content or external must be set")
	}
	return es.Err()
}
