package main

// The help of flags that bootstrap, join and daemon share.
const (
	// metricsListenHelp is bootstrap's and join's --metrics-listen.
	metricsListenHelp = "serve Prometheus metrics (GET /metrics, plain HTTP) on this address, e.g. 127.0.0.1:9470; kept in the data dir; default off"
	// uiListenHelp is bootstrap's --ui-listen.
	uiListenHelp = "serve the read-only status page (plain HTTP) on this address, e.g. 127.0.0.1:4290: bind it to loopback or put it behind a proxy; kept in the data dir; default off"
)
