package api

import "time"

// SyncPhase is where the cluster stands relative to its Git source.
type SyncPhase uint8

const (
	SyncUnknown     SyncPhase = iota // nothing applied yet
	SyncProgressing                  // applied, rollouts in flight
	SyncSynced                       // every changed service rolled out healthy
	SyncDegraded                     // a rollout failed
	SyncFailed                       // the revision could not be loaded or applied
	SyncSuspended                    // automatic syncs are off
)

var syncPhaseNames = []string{"unknown", "progressing", "synced", "degraded", "failed", "suspended"}

func (p SyncPhase) String() string { return enumString(syncPhaseNames, p) }

// ParseSyncPhase parses a sync phase name.
func ParseSyncPhase(s string) (SyncPhase, error) {
	return parseEnum[SyncPhase]("sync phase", syncPhaseNames, s)
}
func (p SyncPhase) MarshalText() ([]byte, error) { return []byte(p.String()), nil }
func (p *SyncPhase) UnmarshalText(b []byte) (err error) {
	*p, err = ParseSyncPhase(string(b))
	return err
}

// SyncTrigger is what started a sync.
type SyncTrigger uint8

const (
	TriggerPoll SyncTrigger = iota
	TriggerWebhook
	TriggerWatch // a local repository changed on disk
	TriggerManual
	TriggerRevert // a failed rollout returned to the last good revision
	TriggerBootstrap
)

var syncTriggerNames = []string{"poll", "webhook", "watch", "manual", "revert", "bootstrap"}

func (t SyncTrigger) String() string { return enumString(syncTriggerNames, t) }

// ParseSyncTrigger parses a trigger name.
func ParseSyncTrigger(s string) (SyncTrigger, error) {
	return parseEnum[SyncTrigger]("sync trigger", syncTriggerNames, s)
}
func (t SyncTrigger) MarshalText() ([]byte, error) { return []byte(t.String()), nil }
func (t *SyncTrigger) UnmarshalText(b []byte) (err error) {
	*t, err = ParseSyncTrigger(string(b))
	return err
}

// SourceSpec is the Git repository a cluster follows.
type SourceSpec struct {
	URL string `json:"url"`
	// Ref is a branch, a tag or an exact commit.
	Ref string `json:"ref"`
	// Path is an optional sub-directory holding the stacks.
	Path     string   `json:"path,omitempty"`
	Interval Duration `json:"interval"`
	// Revert is "auto" (return to the last good revision on failure) or "off".
	Revert string `json:"revert"`
}

// SyncState is the cluster's one record of its GitOps state. It lives in
// the store so that a new leader continues where the old one stopped.
type SyncState struct {
	Meta
	Source SourceSpec `json:"source"`
	Phase  SyncPhase  `json:"phase"`
	// Revision is the commit the cluster is converging to.
	Revision         string `json:"revision,omitempty"`
	LastGoodRevision string `json:"last_good_revision,omitempty"`
	// FailedRevisions are not retried until the source moves past them.
	FailedRevisions []string  `json:"failed_revisions,omitempty"`
	Message         string    `json:"message,omitempty"`
	Suspended       bool      `json:"suspended,omitempty"`
	LastFetch       time.Time `json:"last_fetch,omitzero"`
	LastFetchError  string    `json:"last_fetch_error,omitempty"`
}

// SyncRecord is one entry of the sync history.
type SyncRecord struct {
	Meta
	Revision   string      `json:"revision"`
	Trigger    SyncTrigger `json:"trigger"`
	StartedAt  time.Time   `json:"started_at"`
	FinishedAt time.Time   `json:"finished_at,omitzero"`
	Result     SyncPhase   `json:"result"`
	Message    string      `json:"message,omitempty"`
}

// Bundle is the desired state of one stack: what its files declare.
type Bundle struct {
	Stack    StackSpec     `json:"stack"`
	Networks []NetworkSpec `json:"networks,omitempty"`
	Volumes  []VolumeSpec  `json:"volumes,omitempty"`
	Secrets  []SecretSpec  `json:"secrets,omitempty"`
	Configs  []ConfigSpec  `json:"configs,omitempty"`
	Services []ServiceSpec `json:"services"`
}
