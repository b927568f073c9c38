package api

import "time"

// Meta is carried by every stored object. The store sets ID, Version and the
// timestamps; a write that names a stale Version is rejected, which is how
// concurrent controllers avoid lost updates.
type Meta struct {
	ID        string    `json:"id"`
	Version   uint64    `json:"version"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
}

// GetMeta returns the object's metadata; it lets generic code reach Meta.
func (m *Meta) GetMeta() *Meta { return m }

// Object is any stored domain object.
type Object interface {
	GetMeta() *Meta
}

// Labels gitorc sets on the objects it creates from Git, so that it can
// tell its own objects from others and prune what a commit removed.
const (
	LabelStack     = "gitorc.stack"      // the stack an object belongs to
	LabelManagedBy = "gitorc.managed-by" // "gitorc" on objects created from Git
	LabelRevision  = "gitorc.revision"   // the commit that last changed it
)
