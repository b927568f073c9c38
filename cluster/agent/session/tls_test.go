package session

import "crypto/tls"

func testTLS() *tls.Config { return &tls.Config{MinVersion: tls.VersionTLS13} }
