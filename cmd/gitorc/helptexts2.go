package main

import (
	_ "embed"
)

// uiListenHelp is bootstrap's --ui-listen.
const uiListenHelp = "serve the read-only status page (plain HTTP) on this address, e.g. 127.0.0.1:4290: bind it to loopback or put it behind a proxy; kept in the data dir; default off"
