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
	TriggerSelfHeal // drift restored while the revision stayed the same
	TriggerRollback // gitorc rollback --to pinned an older revision
)

var syncTriggerNames = []string{"poll", "webhook", "watch", "manual", "revert", "bootstrap", "self-heal", "rollback"}

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
	// SelfHeal is "auto" (the default, also when empty: objects changed
	// behind Git's back are restored at the next automatic sync) or "off"
	// (drift is only reported).
	SelfHeal string `json:"self_heal,omitempty"`
	// Windows allow or deny automatic syncs at times (manual syncs always run).
	Windows []SyncWindow `json:"windows,omitempty"`
	// Notify says where sync outcomes are posted (reconcile/notify).
	Notify *NotifySpec `json:"notify,omitempty"`
}

// NotifySpec is where the leader tells of each sync: a JSON event to a
// URL (signed with HMAC-SHA256 when the cluster has a notify secret), and
// the commit's status on its Git host. The secret and the Git host's
// token are cluster keys, never in the spec.
type NotifySpec struct {
	URL string `json:"url,omitempty"`
	// CommitStatus is github, gitea or gitlab; CommitStatusAPI the host's
	// API base (https://api.github.com, https://gitea.example.com,
	// https://gitlab.example.com); CommitStatusRepo owner/name (the
	// project's path on GitLab).
	CommitStatus     string `json:"commit_status,omitempty"`
	CommitStatusAPI  string `json:"commit_status_api,omitempty"`
	CommitStatusRepo string `json:"commit_status_repo,omitempty"`
	// Since is when this spec was set: the syncs that ended after it are
	// told at least once, also when the leader changed before a delivery
	// was done (a new leader tells what its predecessor left).
	Since time.Time `json:"since,omitzero"`
}

// NotifyDelivery is the outcome of one notification: the last ones are
// kept on the sync state, for gitorc status.
type NotifyDelivery struct {
	Time     time.Time `json:"time"`
	Target   string    `json:"target"` // "url" or the commit status provider
	Revision string    `json:"revision"`
	Event    string    `json:"event"`
	Attempts int       `json:"attempts"`
	// Error is empty when the receiver accepted it.
	Error string `json:"error,omitempty"`
}

// SyncWindow allows or denies automatic syncs (poll, webhook, watch) for
// Duration from every time its cron Schedule fires, as Argo CD's sync
// windows do. With any allow window, automatic syncs run only inside one;
// a deny window wins over an allow window.
type SyncWindow struct {
	Kind     string   `json:"kind"`     // "allow" or "deny"
	Schedule string   `json:"schedule"` // a cron spec ("0 22 * * *", "@daily", "CRON_TZ=Europe/Paris 0 8 * * 1-5")
	Duration Duration `json:"duration"`
}

// SyncRequest asks the leader for a sync. Any manager writes it into the
// sync state (gitorc sync, a webhook delivery); the leader's trigger loop
// takes it, runs one sync for every request pending then, and writes the
// outcome back here, so that the requester can wait for it.
type SyncRequest struct {
	ID      string      `json:"id"`
	Trigger SyncTrigger `json:"trigger"` // manual or webhook
	At      time.Time   `json:"at"`
	// Revision is the commit a webhook named, when it named one.
	Revision string `json:"revision,omitempty"`
	// Count is how many deliveries this request stands for (a burst of
	// webhook deliveries folds into the one pending request).
	Count int `json:"count,omitempty"`
	// Attempts counts the syncs after which the source did not show the
	// Revision a webhook named (a Git server may announce a push before
	// every replica serves it); the request waits until RetryAt and runs
	// again, a few times at most.
	Attempts int       `json:"attempts,omitempty"`
	RetryAt  time.Time `json:"retry_at,omitzero"`
	// Node is the manager that took the request.
	Node string `json:"node,omitempty"`
	// StartedAt is when a leader took the request, FinishedAt when the sync
	// it started ended.
	StartedAt  time.Time `json:"started_at,omitzero"`
	FinishedAt time.Time `json:"finished_at,omitzero"`
	// Result and Message say how the sync ended; Record is the history
	// record it wrote (none when there was nothing new to apply).
	Result  SyncPhase `json:"result,omitempty"`
	Message string    `json:"message,omitempty"`
	Record  string    `json:"record,omitempty"`
}

// Pending reports whether no leader has taken the request yet.
func (r SyncRequest) Pending() bool { return r.StartedAt.IsZero() }

// Done reports whether the sync the request started has ended.
func (r SyncRequest) Done() bool { return !r.FinishedAt.IsZero() }

// WebhookDelivery is one webhook delivery and what came of it.
type WebhookDelivery struct {
	At       time.Time `json:"at"`
	Node     string    `json:"node,omitempty"` // the manager that answered it
	Provider string    `json:"provider,omitempty"`
	Event    string    `json:"event,omitempty"`
	Delivery string    `json:"delivery,omitempty"`
	Ref      string    `json:"ref,omitempty"`
	Commit   string    `json:"commit,omitempty"`
	Status   int       `json:"status"`
	Outcome  string    `json:"outcome"`
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
	// InFlight is the apply whose rollout is being tracked, nil when
	// none: a new leader resumes it instead of starting over.
	InFlight *SyncInFlight `json:"in_flight,omitempty"`
	// LastDiff is what the last apply changed, as gitorc diff prints it.
	LastDiff *SyncDiff `json:"last_diff,omitempty"`
	// Pin holds the cluster on an older revision (gitorc rollback --to)
	// until gitorc sync or a new commit on the followed ref.
	Pin *SyncPin `json:"pin,omitempty"`
	// Requests are the pending sync requests and the last finished ones.
	// Source, Suspended, Requests and Deliveries are control fields: they
	// change only through read-modify-write transactions of their own,
	// never with a sync's commit (see reconcile.SyncControl).
	Requests []SyncRequest `json:"requests,omitempty"`
	// Deliveries are the last webhook deliveries, oldest first.
	Deliveries []WebhookDelivery `json:"deliveries,omitempty"`
	// Notifications are the last notifications sent, oldest first.
	Notifications []NotifyDelivery `json:"notifications,omitempty"`
}

// SyncDiff is the plan of an apply, in text: no secret's content is in
// it (plans show a secret's version, never its value).
type SyncDiff struct {
	Revision string    `json:"revision"`
	Record   string    `json:"record"`
	At       time.Time `json:"at"`
	Text     string    `json:"text"`
	// Truncated is set when Text was cut to its bound.
	Truncated bool `json:"truncated,omitempty"`
}

// SyncInFlight is an applied revision whose rollout is not judged yet.
type SyncInFlight struct {
	// Record is the history record of the apply, Progressing; it is
	// finished in place, never duplicated.
	Record SyncRecord `json:"record"`
	// Changed and Removed are the services the apply created or updated,
	// and those it deleted.
	Changed   []string  `json:"changed,omitempty"`
	Removed   []string  `json:"removed,omitempty"`
	AppliedAt time.Time `json:"applied_at"`
	// Unchanged: the apply changed no service, and Changed lists every
	// service the revision declares, to be judged on their health only
	// (reconcile.Rollout.Unchanged).
	Unchanged bool `json:"unchanged,omitempty"`
	// Reason is, for a revert, why the revision it replaced failed.
	Reason string `json:"reason,omitempty"`
}

// SyncPin is a rollback to an older revision.
type SyncPin struct {
	Revision    string    `json:"revision"`
	RequestedAt time.Time `json:"requested_at"`
	// Head is the followed ref's commit when the pin took effect (empty
	// until then): a different commit releases the pin.
	Head string `json:"head,omitempty"`
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
	// Request is the sync request this sync served, if one started it.
	Request string `json:"request,omitempty"`
	// Services are those the sync's apply created, updated or removed.
	Services []string `json:"services,omitempty"`
	// Notified is the last outcome told of this record (pending, synced,
	// …) by the notifications, when the source has some.
	Notified string `json:"notified,omitempty"`
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
