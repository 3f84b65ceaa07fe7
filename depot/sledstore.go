package depot

import (
	"context"
	"io"

	"depot/store"
)

// Store is everything the sled service needs from a sled's blob store: the
// narrow interfaces of its parts (reconcileStore, copyStore, stagingStore,
// ledgerStore), reads for the artifact API, and scrub control.
// *store.Store implements it.
type Store interface {
	reconcileStore
	copyStore
	stagingStore
	ledgerStore
	Open(ctx context.Context, d store.Digest) (*store.Blob, error)
	ScrubStatus() store.ScrubStatus
	StartScrub(verify bool)
}

var _ Store = (*store.Store)(nil)

// copyStore is what copy-from-depot jobs need: skip a copy the store
// already holds on every healthy mirror, else write what the peer sends.
type copyStore interface {
	Stat(ctx context.Context, d store.Digest) (store.Info, error)
	Put(ctx context.Context, d store.Digest, body io.Reader, size int64) (store.PutResult, error)
	Mirrors() []store.MirrorStatus
}

// Peer fetches an artifact from another sled's repo-depot API
// ({baseURL}/artifact/sha256/{hex}). size is the declared length or -1. The
// caller closes body. Implementations bound the connect time; the sled
// service bounds stalls.
//
// Stat asks the peer whether it holds d without fetching it (a HEAD): its
// size, an error matching store.ErrNotFound when the peer answers that it
// does not hold d, another error when it cannot be asked. The same rules
// as Fetch apply to the URL and the connection.
type Peer interface {
	Fetch(ctx context.Context, baseURL string, d store.Digest) (body io.ReadCloser, size int64, err error)
	Stat(ctx context.Context, baseURL string, d store.Digest) (size int64, err error)
}
