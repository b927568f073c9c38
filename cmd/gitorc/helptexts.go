package main

// metricsListenHelp is bootstrap's and join's --metrics-listen.
const metricsListenHelp = "serve Prometheus metrics (GET /metrics, plain HTTP) on this address, e.g. 127.0.0.1:9470; kept in the data dir; default off"
