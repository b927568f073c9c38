// Package controlapi is the manager's local control API: the JSON-over-HTTP
// endpoints the gitorc CLI calls through a root-only unix socket to list and
// change nodes, services and tasks (node ls/inspect/update/rm, service
// ls/inspect/scale/rollback/update --force, ps) and to list networks
// (network ls/inspect).
//
// Reads come from the local store replica; writes are store transactions
// with optimistic version checks (a stale ?version=N is a 409). It never
// drives rollouts itself: a scale, rollback or forced update only changes
// the service in the store, and the orchestrator acts on the change. Such
// changes are drift by construction — the GitOps loop compares specs — and
// carry LabelChangedBy so that a human sees where the drift came from.
//
// Endpoints (errors are {"error": "..."} with 400, 404, 409, 503 or 500):
//
//	GET    /v1/nodes                      []Node
//	GET    /v1/nodes/{node}[?consistent=1] Node (by ID, name or unique ID prefix; consistent: a linearizable read)
//	POST   /v1/nodes/{node}               NodeUpdate → Node
//	DELETE /v1/nodes/{node}[?force=1]     refuses a ready node without force, and managers
//	GET    /v1/services                   []Service (with running/desired counts)
//	GET    /v1/services/{service}         Service
//	POST   /v1/services/{service}/scale   ScaleRequest → Service
//	POST   /v1/services/{service}/rollback → Service
//	POST   /v1/services/{service}/force   → Service
//	GET    /v1/tasks[?service=S|stack=S][&node=N]  []Task (with node names)
//	GET    /v1/networks                   []Network (with services, VIPs and task addresses)
//	GET    /v1/networks/{network}         Network (by ID or name)
//
// controlapi is manager-side: it imports cluster/api, cluster/store and
// cluster/orchestrator; never cluster/agent, reconcile or compose. Only
// cmd/gitorc chooses the socket path and serves the handler.
package controlapi
