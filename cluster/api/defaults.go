package api

import "time"

// The defaults below are Swarm's, in one place. Loaders start from them and
// override what a stack file sets, so a spec always carries explicit values.

// DefaultUpdateConfig is update_config when a stack file says nothing.
func DefaultUpdateConfig() UpdateConfig {
	return UpdateConfig{
		Parallelism:     1,
		Delay:           0,
		FailureAction:   FailurePause,
		Monitor:         Duration(5 * time.Second),
		MaxFailureRatio: 0,
		Order:           OrderStopFirst,
	}
}

// DefaultRollbackConfig is rollback_config when a stack file says nothing.
func DefaultRollbackConfig() UpdateConfig { return DefaultUpdateConfig() }

// DefaultRestartPolicy is restart_policy when a stack file says nothing.
func DefaultRestartPolicy() RestartPolicy {
	return RestartPolicy{Condition: RestartAny, Delay: Duration(5 * time.Second)}
}

// DefaultStopGracePeriod is the time between SIGTERM and SIGKILL.
const DefaultStopGracePeriod = Duration(10 * time.Second)

// DefaultReplicas is the number of slots of a replicated service.
const DefaultReplicas = 1

// DefaultHealthcheck fills the timing of a healthcheck that sets only a test.
func DefaultHealthcheck() Healthcheck {
	return Healthcheck{
		Interval:      Duration(30 * time.Second),
		Timeout:       Duration(30 * time.Second),
		Retries:       3,
		StartInterval: Duration(5 * time.Second),
	}
}

// DefaultFileMode, DefaultFileUID and DefaultFileGID apply to secret and
// config files that do not set them.
const (
	DefaultFileMode FileMode = 0o444
	DefaultFileUID           = "0"
	DefaultFileGID           = "0"
)

// DefaultNetworkDriver and DefaultVolumeDriver are the only drivers gitorc has.
const (
	DefaultNetworkDriver = "overlay"
	DefaultVolumeDriver  = "local"
)

// SecretsDir is where secrets land in a container when no target is given.
const SecretsDir = "/run/secrets/"
