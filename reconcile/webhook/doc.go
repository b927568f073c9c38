// Package webhook verifies and parses Git push notifications for
// POST /hooks/{github,gitlab,gitea,generic} and turns them into sync
// triggers.
//
// It owns: signature and token checks (GitHub and Gitea HMAC-SHA256 of
// the raw body in X-Hub-Signature-256, the GitLab X-Gitlab-Token, the
// generic X-Gitorc-Signature HMAC), the push payload parsers, an
// http.Handler whose response always says what will happen, and a
// Coalescer that folds bursts of triggers into one sync. Verify and Parse
// are pure; the Handler calls a narrow Trigger interface that the caller
// (package reconcile or cluster/node) implements; Config.OnDelivery lets
// it keep every answer. The daemon (cluster/node/hooks.go) coalesces in the
// store instead of with the Coalescer: a delivery is answered 202 only
// once its sync request is committed, folded into the pending one.
//
// Limits (limits.go): what a delivery costs before its signature is
// verified is bounded. A missing or malformed signature header is refused
// before the body is read (CheckHeader), a body is read up to 1 MiB by
// default (Config.MaxBody), at most 8 deliveries are served at once
// (Config.MaxInFlight; the next is answered 503 at once with
// Retry-After: 1, as a queue would only hold more memory and senders or
// the poll retry), each field of an answer is cut to MaxFieldBytes,
// refusals are logged at most once a second per status and provider with
// a count of the lines dropped, and a delivery ID acted on is remembered
// for a day (4,096 at most): a replay is answered 202 "ignored".
//
// Metrics (metrics.go) counts the deliveries by provider and outcome for
// Prometheus, registered by the composition root.
//
// Imports: the standard library (cluster/api at most) and
// prometheus/client_golang for its Metrics. Never cluster/store,
// cluster/agent or compose.
package webhook
