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
// (package reconcile or cmd/gitorc) implements; Config.OnDelivery lets
// it keep every answer. The daemon (cmd/gitorc/hooks.go) coalesces in the
// store instead of with the Coalescer: a delivery is answered 202 only
// once its sync request is committed, folded into the pending one.
//
// Metrics (metrics.go) counts the deliveries by provider and outcome for
// Prometheus, registered by the composition root.
//
// Imports: the standard library (cluster/api at most) and
// prometheus/client_golang for its Metrics. Never cluster/store,
// cluster/agent or compose.
package webhook
