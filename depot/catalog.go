package depot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"sync"
	"time"

	"depot/store"
)

// The coordinator's catalog is a set of buckets (catalogkv.go keeps them in
// a bbolt file or in etcd):
//
//	repos        system_version → Repo (JSON)
//	trust_roots  id → TrustRoot (JSON)
//	sagas        id → Saga (JSON)
//	sleds        id → Sled (JSON)
//	meta         "generation" → uint64 (big-endian)
//	identity     "catalog_id" → the catalog's id (catalogid.go)
//
// The generation rises whenever the wanted set (every artifact of every
// repository) changes, in the same transaction as the change.
var (
	bucketRepos      = []byte("repos")
	bucketTrustRoots = []byte("trust_roots")
	bucketSagas      = []byte("sagas")
	bucketSleds      = []byte("sleds")
	bucketMeta       = []byte("meta")
	keyGeneration    = []byte("generation")
)

// Repo is one uploaded TUF repository.
type Repo struct {
	Hash          store.Digest   `json:"hash"`
	SystemVersion string         `json:"system_version"`
	FileName      string         `json:"file_name"`
	TimeCreated   time.Time      `json:"time_created"`
	Artifacts     []RepoArtifact `json:"artifacts"`
	// Format is tuf.FormatV1 or tuf.FormatV2 for an Oxide (tufaceous)
	// repository, empty for any other.
	Format string `json:"format,omitempty"`
}

// RepoArtifact is one artifact of a repository: an artifact of its
// manifest, or a part split out of one of its composites.
type RepoArtifact struct {
	Name    string       `json:"name"`
	Version string       `json:"version"`
	Kind    string       `json:"kind"` // for a part, the kind Nexus derives
	Hash    store.Digest `json:"hash"`
	Size    int64        `json:"size"`
	// Tags are a v2 artifact's tags, as the manifest gives them.
	Tags map[string]string `json:"tags,omitempty"`
	// Board and Sign are a Hubris image's caboose BORD and SIGN (or its v2
	// tags sp_board/rot_board and rot_rkth).
	Board string `json:"board,omitempty"`
	Sign  string `json:"sign,omitempty"`
	// Source is the composite a part was split from; composites themselves
	// are not artifacts (not stored, not replicated).
	Source *ArtifactSource `json:"source,omitempty"`
}

// TrustRoot is a trusted root.json document, in omicron's shape (id,
// root_role, time_created) plus the document's sha256 and its source.
type TrustRoot struct {
	ID          string          `json:"id"`     // a UUID, lower case
	SHA256      string          `json:"sha256"` // of the document, what makes two roots the same
	TimeCreated time.Time       `json:"time_created"`
	Source      string          `json:"source"` // "api" or the file it came from
	Root        json.RawMessage `json:"root_role"`
}

// Catalog is the coordinator's durable state. Safe for concurrent use,
// and, on etcd, by several coordinators at once.
type Catalog struct {
	kv    catalogKV
	id    string   // see catalogid.go
	audit notifier // wakes audit long-polls (audit.go)

	ownerMu sync.Mutex
	owner   string // this process's coordinator id, once it joined (presence.go)

	closed     chan struct{}
	closeOnce  sync.Once
	forwarding sync.WaitGroup
}

// OpenCatalog opens (creating) the bbolt catalog at path. Another process
// holding it fails with store.ErrLocked.
func OpenCatalog(path string, lockTimeout time.Duration) (*Catalog, error) {
	kv, err := openBoltKV(path, lockTimeout)
	if err != nil {
		return nil, err
	}
	return newCatalog(context.Background(), kv)
}

func newCatalog(ctx context.Context, kv catalogKV) (*Catalog, error) {
	c := &Catalog{kv: kv, closed: make(chan struct{})}
	if err := checkNoImport(ctx, kv); err != nil {
		kv.close()
		return nil, err
	}
	if err := c.loadID(ctx); err != nil {
		kv.close()
		return nil, fmt.Errorf("catalog id in %s: %w", kv.where(), err)
	}
	if kv.shared() {
		c.forwarding.Add(1)
		go c.forwardChanges()
	}
	return c, nil
}

// forwardChanges wakes audit long-polls at commits by other processes.
// The next channel is taken before waking, so no commit falls between.
func (c *Catalog) forwardChanges() {
	defer c.forwarding.Done()
	ch := c.kv.changes()
	for {
		select {
		case <-ch:
			ch = c.kv.changes()
			c.audit.notify()
		case <-c.closed:
			return
		}
	}
}

// Changes returns a channel closed at the next commit to a shared catalog
// by any coordinator; nil (never closed) for a catalog only this process
// writes, whose changes its callers see directly.
func (c *Catalog) Changes() <-chan struct{} { return c.kv.changes() }

// Close closes the catalog.
func (c *Catalog) Close() error {
	c.closeOnce.Do(func() { close(c.closed) })
	c.forwarding.Wait()
	return c.kv.close()
}

// Shared reports whether other coordinators write this catalog (etcd).
func (c *Catalog) Shared() bool { return c.kv.shared() }

// Where names the catalog: its file, or its etcd endpoints and prefix.
func (c *Catalog) Where() string { return c.kv.where() }

func getGeneration(tx kvTx) uint64 {
	v := tx.Bucket(bucketMeta).Get(keyGeneration)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func putGeneration(tx kvTx, g uint64) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], g)
	return tx.Bucket(bucketMeta).Put(keyGeneration, b[:])
}

func reposIn(tx kvTx) ([]Repo, error) {
	var out []Repo
	err := tx.Bucket(bucketRepos).ForEach(func(k, v []byte) error {
		var r Repo
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("decode repository %q: %w", k, err)
		}
		out = append(out, r)
		return nil
	})
	return out, err
}

// wantedOf is every artifact of every repository, with its size.
func wantedOf(repos []Repo) map[store.Digest]int64 {
	w := make(map[store.Digest]int64)
	for _, r := range repos {
		for _, a := range r.Artifacts {
			w[a.Hash] = a.Size
		}
	}
	return w
}

func sameKeys(a, b map[store.Digest]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			return false
		}
	}
	return true
}

// Wanted is the catalog's wanted set at a generation.
type Wanted struct {
	Generation uint64
	Artifacts  map[store.Digest]int64 // hash → size
}

// Sorted returns the wanted hashes in order.
func (w Wanted) Sorted() []store.Digest {
	out := make([]store.Digest, 0, len(w.Artifacts))
	for d := range w.Artifacts {
		out = append(out, d)
	}
	slices.SortFunc(out, func(a, b store.Digest) int { return bytes.Compare(a[:], b[:]) })
	return out
}

// Wanted returns the current generation and wanted set, read together.
func (c *Catalog) Wanted(ctx context.Context) (Wanted, error) {
	var w Wanted
	err := c.kv.view(ctx, func(tx kvTx) error {
		repos, err := reposIn(tx)
		if err != nil {
			return err
		}
		w = Wanted{Generation: getGeneration(tx), Artifacts: wantedOf(repos)}
		return nil
	})
	return w, err
}

// Repos returns every repository, oldest first.
func (c *Catalog) Repos(ctx context.Context) ([]Repo, error) {
	var out []Repo
	err := c.kv.view(ctx, func(tx kvTx) (err error) {
		out, err = reposIn(tx)
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].TimeCreated.Before(out[j].TimeCreated) })
	return out, err
}

// Repo returns the repository with the given system version, or
// ErrRepoNotFound.
func (c *Catalog) Repo(ctx context.Context, systemVersion string) (Repo, error) {
	var r Repo
	err := c.kv.view(ctx, func(tx kvTx) error {
		v := tx.Bucket(bucketRepos).Get([]byte(systemVersion))
		if v == nil {
			return fmt.Errorf("%w: %q", ErrRepoNotFound, systemVersion)
		}
		return json.Unmarshal(v, &r)
	})
	return r, err
}

// RepoByHash returns the repository uploaded as the archive with this
// hash, or ErrRepoNotFound.
func (c *Catalog) RepoByHash(ctx context.Context, h store.Digest) (Repo, error) {
	repos, err := c.Repos(ctx)
	if err != nil {
		return Repo{}, err
	}
	for _, r := range repos {
		if r.Hash == h {
			return r, nil
		}
	}
	return Repo{}, fmt.Errorf("%w: archive %s", ErrRepoNotFound, h)
}

// checkRepo returns the conflict r would make with the recorded
// repositories: ErrRepoExists with the existing one when the same archive
// is recorded, ErrRepoConflict for the same system version from another
// archive or an artifact (kind, name, version) recorded with another hash.
//
// For an Oxide repository omicron's rule also holds the other way: the same
// (kind, hash) recorded under another name or version is a conflict. Both
// messages name the recorded repository and artifact, and this one's.
func checkRepo(repos []Repo, r Repo) (*Repo, error) {
	type key struct{ kind, name, version string }
	type held struct {
		a    RepoArtifact
		repo string
	}
	type kh struct {
		kind string
		hash store.Digest
	}
	seen := make(map[key]held)
	byContent := make(map[kh]held)
	for i, old := range repos {
		if old.Hash == r.Hash {
			return &repos[i], nil
		}
		if old.SystemVersion == r.SystemVersion {
			return nil, fmt.Errorf("%w: system version %s was uploaded as archive %s; this archive is %s",
				ErrRepoConflict, r.SystemVersion, old.Hash, r.Hash)
		}
		for _, a := range old.Artifacts {
			seen[key{a.Kind, a.Name, a.Version}] = held{a, old.SystemVersion}
			byContent[kh{a.Kind, a.Hash}] = held{a, old.SystemVersion}
		}
	}
	for _, a := range r.Artifacts {
		if h, ok := seen[key{a.Kind, a.Name, a.Version}]; ok && h.a.Hash != a.Hash {
			return nil, fmt.Errorf("%w: artifact %s %s (kind %s) is recorded with hash %s (repository %s); this repository (%s) has %s",
				ErrRepoConflict, a.Name, a.Version, a.Kind, h.a.Hash, h.repo, r.SystemVersion, a.Hash)
		}
		if r.Format == "" {
			continue
		}
		if h, ok := byContent[kh{a.Kind, a.Hash}]; ok && (h.a.Name != a.Name || h.a.Version != a.Version) {
			return nil, fmt.Errorf("%w: kind %s content %s is recorded as %s %s (repository %s); this repository (%s) names it %s %s",
				ErrRepoConflict, a.Kind, a.Hash, h.a.Name, h.a.Version, h.repo, r.SystemVersion, a.Name, a.Version)
		}
	}
	return nil, nil
}

// CheckRepo reports, without changing anything, whether r is already
// recorded (the existing repo) or would conflict.
func (c *Catalog) CheckRepo(ctx context.Context, r Repo) (*Repo, error) {
	repos, err := c.Repos(ctx)
	if err != nil {
		return nil, err
	}
	return checkRepo(repos, r)
}

// InsertRepo records r and, in the same transaction, raises the generation
// if the wanted set grows and moves the saga (if any) to the record step.
// It returns the existing repository (inserted false) when the same archive
// is already recorded; conflicts as CheckRepo. An insert appends e's audit
// record (its target set to the system version) in the same transaction.
func (c *Catalog) InsertRepo(ctx context.Context, r Repo, sagaID string, e *AuditEntry) (rec Repo, inserted bool, gen uint64, err error) {
	err = c.kv.update(ctx, func(tx kvTx) error {
		// A shared catalog may run this more than once: start clean.
		rec, inserted = Repo{}, false
		repos, err := reposIn(tx)
		if err != nil {
			return err
		}
		gen = getGeneration(tx)
		existing, err := checkRepo(repos, r)
		if err != nil {
			return err
		}
		if existing != nil {
			rec = *existing
			return nil
		}
		v, err := json.Marshal(r)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketRepos).Put([]byte(r.SystemVersion), v); err != nil {
			return err
		}
		if !sameKeys(wantedOf(repos), wantedOf(append(repos, r))) {
			gen++
			if err := putGeneration(tx, gen); err != nil {
				return err
			}
		}
		if sagaID != "" {
			if err := c.updateSaga(tx, sagaID, func(s *Saga) { s.Step = StepRecorded; s.SystemVersion = r.SystemVersion }); err != nil {
				return err
			}
		}
		rec, inserted = r, true
		if e != nil {
			e.Target = r.SystemVersion
		}
		return c.appendAudit(tx, e)
	})
	return rec, inserted, gen, err
}

// DeleteRepo removes a repository; the generation rises if the wanted set
// shrinks (artifacts no other repository references). ErrRepoNotFound if
// there is no such repository. The delete appends e's audit record.
func (c *Catalog) DeleteRepo(ctx context.Context, systemVersion string, e *AuditEntry) (Repo, uint64, error) {
	var gone Repo
	var gen uint64
	err := c.kv.update(ctx, func(tx kvTx) error {
		b := tx.Bucket(bucketRepos)
		v := b.Get([]byte(systemVersion))
		if v == nil {
			return fmt.Errorf("%w: %q", ErrRepoNotFound, systemVersion)
		}
		if err := json.Unmarshal(v, &gone); err != nil {
			return err
		}
		before, err := reposIn(tx)
		if err != nil {
			return err
		}
		if err := b.Delete([]byte(systemVersion)); err != nil {
			return err
		}
		after, err := reposIn(tx)
		if err != nil {
			return err
		}
		gen = getGeneration(tx)
		if !sameKeys(wantedOf(before), wantedOf(after)) {
			gen++
			if err := putGeneration(tx, gen); err != nil {
				return err
			}
		}
		return c.appendAudit(tx, e)
	})
	return gone, gen, err
}

// TrustRoots returns every trusted root, oldest first.
func (c *Catalog) TrustRoots(ctx context.Context) ([]TrustRoot, error) {
	var out []TrustRoot
	err := c.kv.view(ctx, func(tx kvTx) error {
		var err error
		out, err = trustRootsIn(tx)
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].TimeCreated.Before(out[j].TimeCreated) })
	return out, err
}

// AddTrustRoot records a root.json document (the caller has checked that
// it parses as a TUF root) under a new UUID. Adding the same document
// (same sha256) again returns the existing record (created false) and
// records no audit entry: nothing changed. An add appends e's audit
// record (target: the id).
func (c *Catalog) AddTrustRoot(ctx context.Context, doc []byte, source string, e *AuditEntry) (TrustRoot, bool, error) {
	sum := sha256.Sum256(doc)
	digest := hex.EncodeToString(sum[:])
	var out TrustRoot
	created := false
	err := c.kv.update(ctx, func(tx kvTx) error {
		created = false // a shared catalog may run this more than once
		roots, err := trustRootsIn(tx)
		if err != nil {
			return err
		}
		for _, r := range roots {
			if r.SHA256 == digest {
				out = r
				return nil
			}
		}
		out = TrustRoot{ID: newUUID(), SHA256: digest, TimeCreated: time.Now().UTC(), Source: source, Root: json.RawMessage(doc)}
		v, err := json.Marshal(out)
		if err != nil {
			return err
		}
		created = true
		if err := tx.Bucket(bucketTrustRoots).Put([]byte(out.ID), v); err != nil {
			return err
		}
		if e != nil {
			e.Target = out.ID
		}
		return c.appendAudit(tx, e)
	})
	return out, created, err
}

// TrustRoot returns the trusted root with this id; ErrTrustRootNotFound
// if there is none.
func (c *Catalog) TrustRoot(ctx context.Context, id string) (TrustRoot, error) {
	var out TrustRoot
	err := c.kv.view(ctx, func(tx kvTx) error {
		_, r, err := trustRootByID(tx, id)
		out = r
		return err
	})
	return out, err
}

// DeleteTrustRoot removes a trusted root; ErrTrustRootNotFound if absent.
// The removal appends e's audit record.
func (c *Catalog) DeleteTrustRoot(ctx context.Context, id string, e *AuditEntry) error {
	return c.kv.update(ctx, func(tx kvTx) error {
		key, _, err := trustRootByID(tx, id)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketTrustRoots).Delete(key); err != nil {
			return err
		}
		return c.appendAudit(tx, e)
	})
}

// keyEpoch counts changes that ask for replication without changing the
// wanted set: registry changes and activation requests.
var keyEpoch = []byte("epoch")

// Stamp is what replication depends on: when it changes, the leader runs
// an activation.
type Stamp struct {
	Generation uint64
	Epoch      uint64
}

func getCounter(tx kvTx, key []byte) uint64 {
	v := tx.Bucket(bucketMeta).Get(key)
	if len(v) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(v)
}

func bumpEpoch(tx kvTx) error {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], getCounter(tx, keyEpoch)+1)
	return tx.Bucket(bucketMeta).Put(keyEpoch, b[:])
}

// Stamp reads the generation and the epoch together.
func (c *Catalog) Stamp(ctx context.Context) (Stamp, error) {
	var st Stamp
	err := c.kv.view(ctx, func(tx kvTx) error {
		st = Stamp{Generation: getGeneration(tx), Epoch: getCounter(tx, keyEpoch)}
		return nil
	})
	return st, err
}

// RequestActivation asks the leading coordinator for a replication
// activation (a follower's POST /v1/replication/activate).
func (c *Catalog) RequestActivation(ctx context.Context, e *AuditEntry) error {
	return c.kv.update(ctx, func(tx kvTx) error {
		if err := bumpEpoch(tx); err != nil {
			return err
		}
		return c.appendAudit(tx, e)
	})
}
