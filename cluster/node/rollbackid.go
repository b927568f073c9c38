package node

import (
	"crypto/rand"
	"encoding/hex"
)

func rollbackRequestID() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "rollback-" + hex.EncodeToString(b[:])
}
