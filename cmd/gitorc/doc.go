// Command gitorc is the single gitorc binary.
//
// It owns flag parsing, environment reading and the wiring of concrete
// implementations (store, executor, network plane, Git source); libraries
// never read flags or the environment. Each top-level subcommand lives in
// its own file and registers itself with register() from an init function.
package main
