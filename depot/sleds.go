package depot

import (
	"context"
	"io"
	"time"

	"depot/store"
)

// SledClient is what the coordinator needs from one sled. The HTTP client
// in server/client implements it for remote sleds; LocalSled adapts the
// coordinator's own. Errors map to this package's and store's sentinels
// (ErrConfigGeneration, ErrTooManyCopies, store.ErrHashMismatch, ...).
type SledClient interface {
	// GetConfig returns the sled's artifact config (GET
	// /artifacts-config), or ErrNoConfig while it is unmanaged.
	GetConfig(ctx context.Context) (Config, error)
	// PutConfig installs the artifact config (PUT /artifacts-config).
	PutConfig(ctx context.Context, cfg Config) error
	// List returns the artifacts the sled holds, with copies each.
	List(ctx context.Context) (map[store.Digest]int, error)
	// Info returns the sled's depot URL and number of mirrors (/status).
	Info(ctx context.Context) (SledInfo, error)
	// PutArtifact streams an artifact to the sled at generation gen.
	PutArtifact(ctx context.Context, d store.Digest, gen uint64, body io.Reader, size int64) error
	// CopyFromDepot starts a copy job on the sled from sourceURL.
	CopyFromDepot(ctx context.Context, d store.Digest, gen uint64, sourceURL string) error
	// WaitCopy long-polls the sled's copy job for d.
	WaitCopy(ctx context.Context, d store.Digest, wait time.Duration) (CopyJob, error)
}

// SledInfo is what a sled says about itself.
type SledInfo struct {
	DepotURL string
	Mirrors  int
}

// LocalSled adapts the coordinator's own sled to SledClient, in process.
type LocalSled struct {
	Sled     *Sled
	DepotURL string // where peers copy from this sled
}

var _ SledClient = LocalSled{}

func (l LocalSled) GetConfig(context.Context) (Config, error) {
	return l.Sled.Config()
}
func (l LocalSled) PutConfig(ctx context.Context, cfg Config) error {
	return l.Sled.SetConfig(ctx, cfg)
}
func (l LocalSled) List(ctx context.Context) (map[store.Digest]int, error) {
	infos, err := l.Sled.List(ctx)
	if err != nil {
		return nil, err
	}
	out := make(map[store.Digest]int, len(infos))
	for _, i := range infos {
		out[i.Digest] = i.Copies
	}
	return out, nil
}
func (l LocalSled) Info(context.Context) (SledInfo, error) {
	return SledInfo{DepotURL: l.DepotURL, Mirrors: len(l.Sled.Mirrors())}, nil
}
func (l LocalSled) PutArtifact(ctx context.Context, d store.Digest, gen uint64, body io.Reader, size int64) error {
	_, err := l.Sled.Put(ctx, d, &gen, body, size)
	return err
}
func (l LocalSled) CopyFromDepot(ctx context.Context, d store.Digest, gen uint64, src string) error {
	return l.Sled.CopyFromDepot(ctx, d, &gen, src)
}
func (l LocalSled) WaitCopy(ctx context.Context, d store.Digest, wait time.Duration) (CopyJob, error) {
	return l.Sled.WaitCopy(ctx, d, wait)
}
