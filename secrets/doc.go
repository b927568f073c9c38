// Package secrets owns the cluster's age (X25519) identity: sealing secrets
// for Git with the cluster's public recipient, and opening them on managers
// at sync time. Plaintext lives only in memory, in the store's encrypted
// payloads and in a task's tmpfs.
//
// secrets is a leaf: it imports cluster/api and its own libraries, and no
// other gitorc package.
package secrets
