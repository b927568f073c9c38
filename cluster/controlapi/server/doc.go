// Package server serves the manager's control API: the JSON-over-HTTP
// endpoints the gitorc CLI (through cluster/controlapi/client) calls over
// a root-only unix socket, or over mutual TLS on a manager's API port with
// an admin certificate. Every endpoint is here, its request and response
// types in cluster/controlapi; the node (cluster/node) builds one Config
// and calls Register once.
//
// Reads of nodes, services, tasks, networks, secrets, configs and
// registries come from the local store replica; writes are store
// transactions with optimistic version checks (a stale ?version=N is a
// 409). It never drives rollouts itself: a scale, rollback or forced
// update only changes the service in the store, and the orchestrator acts
// on the change. Such changes are drift by construction — the GitOps loop
// compares specs — and carry LabelChangedBy so that a human sees where the
// drift came from.
//
// What is the node's or reconcile's work — the GitOps loop's state and
// requests, diffs and rollbacks, stacks deployed by hand, join tokens,
// admin certificates, the unlock key, leaving — the node gives through the
// interfaces of interfaces.go (Syncer, Differ, StackDeployer, Tokens,
// AdminCerts, Autolock, CA, Leaver); a group the Config leaves nil answers
// 501. Two handlers serve outside Register: RegisterLeave (POST /v1/leave,
// on every node's socket, workers' too) and LockedHandler (a locked
// manager's socket, before it has a store).
//
// Endpoints (errors are {"error": "..."} with 400, 404, 409, 501, 502,
// 503 or 500):
//
//	GET    /v1/info                       Info (the node that answers, the leader)
//	GET    /v1/nodes                      []Node
//	GET    /v1/nodes/{node}[?consistent=1] Node (by ID, name or unique ID prefix; consistent: a linearizable read)
//	POST   /v1/nodes/{node}               NodeUpdate → Node
//	DELETE /v1/nodes/{node}[?force=1]     refuses a ready node without force, and managers
//	GET    /v1/services                   []Service (with running/desired counts)
//	GET    /v1/services/{service}         Service
//	POST   /v1/services/{service}/scale[?version=N]    ScaleRequest → Service
//	POST   /v1/services/{service}/rollback[?version=N] → Service
//	POST   /v1/services/{service}/force[?version=N]    → Service
//	GET    /v1/tasks[?service=S|stack=S][&node=N]  []Task (with node names)
//	GET    /v1/logs?service=S|task=T[&tail=N][&since=T][&follow=1]  NDJSON api.LogLine
//	GET    /v1/events[?type=T,...][&since=T]           NDJSON Event
//	GET    /v1/networks                   []Network (with services, VIPs and task addresses)
//	GET    /v1/networks/{network}         Network (by ID or name)
//	POST   /v1/networks                   CreateNetworkRequest → api.Network (external)
//	DELETE /v1/networks/{network}         → api.Network
//	GET    /v1/secrets, /v1/configs       []FileObject (every version kept, no content)
//	POST   /v1/secrets, /v1/configs       CreateFileRequest → FileObject (external)
//	DELETE /v1/secrets/{name}, /v1/configs/{name}  → FileObject
//	GET    /v1/registries                 []Registry (never a password)
//	PUT    /v1/registries/{host}          RegistryLoginRequest → Registry
//	DELETE /v1/registries/{host}          → Registry
//	GET    /v1/sync                       SyncReport (state, last syncs, webhooks)
//	POST   /v1/sync                       → 202 api.SyncRequest (a manual sync queued)
//	GET    /v1/sync/requests/{id}         api.SyncRequest (with its outcome once done)
//	POST   /v1/sync/suspend, /v1/sync/resume  → Suspension
//	GET    /v1/sync/history[?limit=N]     []api.SyncRecord, oldest first
//	POST   /v1/sync/diff                  DiffRequest → Plan (a reconcile.Diff)
//	POST   /v1/sync/rollback              RollbackRequest → RollbackAnswer
//	PATCH  /v1/source                     SourcePatch → SourceReport
//	PUT    /v1/stacks/{name}              DeployRequest → Plan (a reconcile.Changeset; 409 {"error", "plan"})
//	DELETE /v1/stacks/{name}              → Plan
//	GET    /v1/tokens/{role}              TokenReport
//	POST   /v1/tokens/{role}/rotate[?ttl=D]  → TokenReport
//	POST   /v1/tokens/{role}/ttl?ttl=D    → TokenReport
//	POST   /v1/admin-certs                AdminIssueRequest → AdminIssued
//	GET    /v1/admin-certs                []AdminCertReport
//	POST   /v1/admin-certs/revoke         AdminRevokeRequest → []AdminCertReport
//	GET    /v1/ca                         CAReport (the root, a rotation in progress)
//	POST   /v1/ca/rotate                  → CAReport (Started: whether this call started it)
//	GET    /v1/unlock-key                 UnlockKeyReport
//	POST   /v1/unlock-key/rotate          → UnlockKeyReport
//	POST   /v1/autolock                   AutolockRequest → UnlockKeyReport
//	POST   /v1/unlock                     UnlockRequest → UnlockReport on a locked manager's socket
//	                                      (LockedHandler, which answers 503 to the rest); 409 here
//	POST   /v1/leave[?force=1]            → LeaveReport (RegisterLeave: node-local, every node's socket)
//
// controlapi is manager-side: it imports cluster/api, cluster/store,
// cluster/logs and cluster/orchestrator; never cluster/agent, reconcile or
// compose. Only cluster/node chooses the socket path and serves the handler.
package server
