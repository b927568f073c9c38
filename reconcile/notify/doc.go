// Package notify tells the outside world what the GitOps loop did, as
// Flux's notification-controller does: for each sync's outcome, a JSON
// event posted to a URL (signed with HMAC-SHA256 when a secret is set),
// and the commit's status on its Git host (GitHub, Gitea or GitLab,
// following each one's documented commit status API): pending when a
// sync of the commit starts, success or failure when it ends.
//
// Deliveries run in the background with a bounded queue and bounded
// retries with backoff; a receiver that is down never holds up a sync,
// and each outcome is reported (Config.Report) for gitorc status.
//
// It imports cluster/api only.
package notify
