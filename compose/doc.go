// Package compose loads Compose/Swarm stack files into gitorc's domain
// model (cluster/api), with Swarm's semantics and defaults.
//
// Loading is compose-go's (interpolation from env files and .env,
// include:, extends:, overrides), wrapped in diagnostics compose-go does not
// give: every problem of every file is reported at once, each naming its
// file, line and field path ("stacks/web/compose.yaml:12:
// services.web.deploy: unknown key \"replcas\""). The enums compose-go leaves
// unchecked (deploy.mode, port mode, failure_action, order, restart
// condition, constraints) are checked here, and keys gitorc cannot honour
// are warnings or errors, never silently accepted. With
// Source.CheckPolicies, what a service needs beyond the default node
// policy (binds, capabilities, sysctls, privileged, unconfined) must be
// allowed by one of the cluster's nodes (policy.go).
//
// compose imports cluster/api and no other gitorc package. It reads the
// files it is given and nothing else; it does not read the process
// environment (interpolation uses only Source.Env, env files and .env), so
// a commit loads the same way on every manager. With Source.Tree set,
// every file a stack names (include:, extends.file, env_file, label_file,
// .env, secrets' and configs' file:) must resolve inside that tree through
// os.Root, symlinks included, and is checked before compose-go reads
// anything; files are capped in size (DefaultMaxFileBytes,
// DefaultMaxDataBytes) and documents in nesting depth. LOADING.md says
// what is checked where and what loading costs.
package compose
