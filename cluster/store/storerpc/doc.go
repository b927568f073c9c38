// Package storerpc carries a follower manager's writes and read barriers
// to the leader over gRPC: the managers' implementation of
// store.Forwarder (client side) and the service that answers it on the
// leader (Store.ApplyCommand, Store.LeaderBarrier).
//
// The store's errors cross the wire by name, so errors.Is(err,
// store.ErrVersionConflict) and the others work on the follower as on the
// leader; a transport failure after the command may have left is
// store.ErrUncertain, one before it is not. Who may call is the caller's
// policy (Authorize: managers only, from the peer's certificate).
//
// It imports cluster/store and cluster/api only, as the store does.
package storerpc
