// Package tuftest builds signed TUF repository archives for tests (of tuf,
// server, depot, end-to-end) and for scripts/mkrepo, with go-tuf v2's
// metadata API. It is a normal package so commands can use it too.
//
// A Builder holds a repository's intent (keys, roles, delegations, targets,
// expiries) and signs everything afresh each time it writes, so a test can
// change one thing and write again:
//
//	b := tuftest.NewBuilder(t)
//	b.SetManifest("1.0.0", []tuftest.Artifact{{Name: "zone", Version: "1.0.0", Kind: "zone", Target: "zone.bin"}})
//	b.AddTarget("zone.bin", data)
//	zipBytes, root := b.Zip(), b.RootJSON()
//
// A Builder is not safe for concurrent use.
package tuftest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"path"
	"slices"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Top-level role names.
const (
	Root      = metadata.ROOT
	Timestamp = metadata.TIMESTAMP
	Snapshot  = metadata.SNAPSHOT
	Targets   = metadata.TARGETS
)

var topLevel = []string{Root, Timestamp, Snapshot, Targets}

// Builder builds one signed repository. See the package comment.
type Builder struct {
	t          testing.TB // nil: failures panic
	keyType    KeyType
	prefix     string
	consistent bool
	now        time.Time
	expiry     time.Duration

	roots     []*rootVersion       // roots[i] is version i+1
	roles     map[string]*roleSpec // every role but root
	edits     map[string][]func(any)
	fileEdits []func([]Entry) []Entry
}

type rootVersion struct {
	keys         map[string][]*Key
	threshold    map[string]int
	expires      time.Time
	signers      []*Key // nil: keys[Root]
	skipPrevious bool   // not signed by the previous version's root keys
}

type roleSpec struct {
	name        string
	version     int64
	expires     time.Time
	signers     []*Key // nil: the role's keys
	targets     []*target
	delegations []*delegation // targets roles only
}

type delegation struct {
	Delegation
	name string
}

type target struct {
	path   string
	length int64
	sum    [32]byte
	data   []byte
	open   func() io.Reader
}

// Delegation describes a delegated role.
type Delegation struct {
	Paths            []string // default {"*"} unless PathHashPrefixes is set
	PathHashPrefixes []string // hex prefixes of the target path's sha256
	Terminating      bool
	Threshold        int    // default 1
	Keys             []*Key // default: one fresh key of the builder's type
}

// Artifact is one artifacts.json entry.
type Artifact struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	Target  string `json:"target"`
}

// Option configures a Builder.
type Option func(*Builder)

// WithKeyType sets the type of every key the builder generates (default ED25519).
func WithKeyType(kt KeyType) Option { return func(b *Builder) { b.keyType = kt } }

// WithPrefix sets the top-level directory holding metadata/ and targets/
// (default "repo", as tufaceous writes; "" for none).
func WithPrefix(dir string) Option { return func(b *Builder) { b.prefix = dir } }

// WithConsistentSnapshot sets root's consistent_snapshot (default true):
// versioned snapshot and targets metadata, hash-prefixed target files.
func WithConsistentSnapshot(on bool) Option { return func(b *Builder) { b.consistent = on } }

// WithPlainLayout writes metadata/ and targets/ at the top level without
// consistent snapshots.
func WithPlainLayout() Option {
	return func(b *Builder) { b.prefix, b.consistent = "", false }
}

// WithNow sets the builder's idea of now (default time.Now()), from which
// expiries and ExpireRole count.
func WithNow(now time.Time) Option { return func(b *Builder) { b.now = now } }

// WithExpiry sets how long after now metadata expires (default one year).
func WithExpiry(d time.Duration) Option { return func(b *Builder) { b.expiry = d } }

// NewBuilder returns a builder of a fresh repository: one key per top-level
// role, thresholds 1, every role expiring a year from now, no targets. If t
// is nil, failures panic (for commands); otherwise they fail t.
func NewBuilder(t testing.TB, opts ...Option) *Builder {
	if t != nil {
		t.Helper()
	}
	b := &Builder{t: t, keyType: ED25519, prefix: "repo", consistent: true, now: time.Now(),
		expiry: 365 * 24 * time.Hour, roles: map[string]*roleSpec{}, edits: map[string][]func(any){}}
	for _, o := range opts {
		o(b)
	}
	rv := &rootVersion{keys: map[string][]*Key{}, threshold: map[string]int{}, expires: b.expires()}
	for _, r := range topLevel {
		rv.keys[r] = []*Key{b.newKey()}
		rv.threshold[r] = 1
	}
	b.roots = []*rootVersion{rv}
	for _, r := range topLevel[1:] {
		b.roles[r] = &roleSpec{name: r, version: 1, expires: b.expires()}
	}
	return b
}

func (b *Builder) expires() time.Time { return b.now.Add(b.expiry).UTC().Truncate(time.Second) }

func (b *Builder) fatal(err error) {
	if b.t == nil {
		panic(err)
	}
	b.t.Helper()
	b.t.Fatal(err)
}

func (b *Builder) newKey() *Key {
	k, err := NewKey(b.keyType)
	if err != nil {
		b.fatal(err)
	}
	return k
}

func (b *Builder) root() *rootVersion { return b.roots[len(b.roots)-1] }

func (b *Builder) role(name string) *roleSpec {
	r := b.roles[name]
	if r == nil {
		b.fatal(fmt.Errorf("tuftest: no role %q", name))
	}
	return r
}

// delegationOf returns the delegation of a delegated role.
func (b *Builder) delegationOf(name string) *delegation {
	for _, r := range b.roles {
		for _, d := range r.delegations {
			if d.name == name {
				return d
			}
		}
	}
	b.fatal(fmt.Errorf("tuftest: no delegated role %q", name))
	return nil
}

// AddTarget adds (or replaces) a target of the top-level targets role.
func (b *Builder) AddTarget(path string, data []byte) { b.AddTargetTo(Targets, path, data) }

// AddTargetTo adds (or replaces) a target of role, top-level or delegated.
// The builder does not check the role may list path.
func (b *Builder) AddTargetTo(role, path string, data []byte) {
	b.addTarget(role, &target{path: path, length: int64(len(data)), sum: sha256.Sum256(data), data: data})
}

// AddTargetReader adds (or replaces) a target whose content open returns
// on each write, length bytes with the given sha256, so large targets are
// never held in memory. If the reader is an io.Closer it is closed after use.
func (b *Builder) AddTargetReader(role, path string, length int64, sum [32]byte, open func() io.Reader) {
	b.addTarget(role, &target{path: path, length: length, sum: sum, open: open})
}

func (b *Builder) addTarget(role string, t *target) {
	r := b.role(role)
	r.targets = slices.DeleteFunc(r.targets, func(o *target) bool { return o.path == t.path })
	r.targets = append(r.targets, t)
}

// SetManifest adds (or replaces) the artifacts.json target.
func (b *Builder) SetManifest(systemVersion string, artifacts []Artifact) {
	b.AddTarget("artifacts.json", ManifestJSON(systemVersion, artifacts))
}

// ManifestJSON returns an artifacts.json document.
func ManifestJSON(systemVersion string, artifacts []Artifact) []byte {
	if artifacts == nil {
		artifacts = []Artifact{}
	}
	data, err := json.MarshalIndent(struct {
		SystemVersion string     `json:"system_version"`
		Artifacts     []Artifact `json:"artifacts"`
	}{systemVersion, artifacts}, "", "  ")
	if err != nil {
		panic(err) // strings only
	}
	return data
}

// Delegate makes parent (targets or a delegated role) delegate to a new role.
// Delegations are written in the order they are made.
func (b *Builder) Delegate(parent, name string, d Delegation) {
	p := b.role(parent)
	if _, dup := b.roles[name]; dup || slices.Contains(topLevel, name) {
		b.fatal(fmt.Errorf("tuftest: role %q exists", name))
	}
	if d.Paths == nil && d.PathHashPrefixes == nil {
		d.Paths = []string{"*"}
	}
	if d.Threshold == 0 {
		d.Threshold = 1
	}
	if d.Keys == nil {
		d.Keys = []*Key{b.newKey()}
	}
	p.delegations = append(p.delegations, &delegation{Delegation: d, name: name})
	b.roles[name] = &roleSpec{name: name, version: 1, expires: b.expires()}
}

// Keys returns the keys of role: a top-level role's in the current root, a
// delegated role's in its delegator.
func (b *Builder) Keys(role string) []*Key {
	if slices.Contains(topLevel, role) {
		return slices.Clone(b.root().keys[role])
	}
	return slices.Clone(b.delegationOf(role).Keys)
}

// AddKey trusts one more key for role (in the current root, or in the
// delegator); it also signs, unless SetSigners says otherwise.
func (b *Builder) AddKey(role string, k *Key) {
	if slices.Contains(topLevel, role) {
		b.root().keys[role] = append(b.root().keys[role], k)
		return
	}
	d := b.delegationOf(role)
	d.Keys = append(d.Keys, k)
}

// SetThreshold sets role's signature threshold.
func (b *Builder) SetThreshold(role string, n int) {
	if slices.Contains(topLevel, role) {
		b.root().threshold[role] = n
		return
	}
	b.delegationOf(role).Threshold = n
}

// SetSigners makes exactly keys sign role's metadata (for root, the current
// version's, besides the previous root's keys after a rotation), trusted or
// not. By default all of the role's keys sign.
func (b *Builder) SetSigners(role string, keys ...*Key) {
	if role == Root {
		b.root().signers = keys
		return
	}
	b.role(role).signers = keys
}

// RotateOptions say what a root rotation changes.
type RotateOptions struct {
	NewRoles          []string // roles given fresh keys, e.g. {"root", "timestamp"}
	SkipOldSignatures bool     // the new root is not signed by the old root's keys
}

// RotateRoot adds a root version (written as N.root.json), copying the
// current one and giving fresh keys to opts.NewRoles. It is signed by its own
// root keys and, unless opts.SkipOldSignatures, the previous root's.
func (b *Builder) RotateRoot(opts RotateOptions) {
	cur := b.root()
	rv := &rootVersion{keys: map[string][]*Key{}, threshold: map[string]int{}, expires: b.expires(), skipPrevious: opts.SkipOldSignatures}
	for _, r := range topLevel {
		rv.keys[r] = slices.Clone(cur.keys[r])
		rv.threshold[r] = cur.threshold[r]
	}
	for _, r := range opts.NewRoles {
		if !slices.Contains(topLevel, r) {
			b.fatal(fmt.Errorf("tuftest: %q is not a top-level role", r))
		}
		rv.keys[r] = []*Key{b.newKey()}
		rv.threshold[r] = 1
	}
	b.roots = append(b.roots, rv)
}

// ExpireRole makes role's metadata (for root, the current version's) expire a
// day before now.
func (b *Builder) ExpireRole(role string) { b.SetExpires(role, b.now.Add(-24*time.Hour)) }

// SetExpires sets when role's metadata (for root, the current version's) expires.
func (b *Builder) SetExpires(role string, t time.Time) {
	t = t.UTC().Truncate(time.Second)
	if role == Root {
		b.root().expires = t
		return
	}
	b.role(role).expires = t
}

// SetVersion sets the version of a non-root role's metadata; the snapshot
// and timestamp list whatever versions the roles have.
func (b *Builder) SetVersion(role string, v int64) { b.role(role).version = v }

// EditSigned registers fn to change role's metadata after the builder filled
// it in and before it is signed. fn gets a *metadata.Metadata[T] of the
// role's type (metadata.RootType for root, of the current version only).
func (b *Builder) EditSigned(role string, fn func(md any)) {
	b.edits[role] = append(b.edits[role], fn)
}

// EditFiles registers fn to change the list of files (signed metadata, then
// targets, names including the prefix) just before they are archived: to
// tamper with bytes, rename, drop or add entries.
func (b *Builder) EditFiles(fn func([]Entry) []Entry) { b.fileEdits = append(b.fileEdits, fn) }

// RootJSON returns the repository's first root, the one clients trust.
func (b *Builder) RootJSON() []byte { return b.RootVersion(1) }

// RootVersion returns version v of the signed root.
func (b *Builder) RootVersion(v int) []byte {
	data, err := b.signRoot(v - 1)
	if err != nil {
		b.fatal(err)
	}
	return data
}

// Entries signs the repository and returns its files in archive order:
// metadata (roots, timestamp, snapshot, targets roles), then targets.
func (b *Builder) Entries() []Entry {
	files, err := b.build()
	if err != nil {
		b.fatal(err)
	}
	return files
}

// Archive returns the repository as an archive in format f.
func (b *Builder) Archive(f Format) []byte {
	var buf bytes.Buffer
	if err := b.WriteArchive(&buf, f, false); err != nil {
		b.fatal(err)
	}
	return buf.Bytes()
}

// Zip returns the repository as a zip (the tufaceous format).
func (b *Builder) Zip() []byte { return b.Archive(Zip) }

// Tar returns the repository as a tar.
func (b *Builder) Tar() []byte { return b.Archive(Tar) }

// TarGz returns the repository as a gzip-compressed tar.
func (b *Builder) TarGz() []byte { return b.Archive(TarGz) }

// TarZst returns the repository as a zstd-compressed tar.
func (b *Builder) TarZst() []byte { return b.Archive(TarZst) }

// WriteZip streams the repository to w as a zip; store writes entries
// uncompressed. Targets added with AddTargetReader are streamed, never held.
func (b *Builder) WriteZip(w io.Writer, store bool) error { return b.WriteArchive(w, Zip, store) }

// WriteArchive streams the repository to w in format f (store: see WriteZip).
func (b *Builder) WriteArchive(w io.Writer, f Format, store bool) error {
	files, err := b.build()
	if err != nil {
		return err
	}
	return WriteArchive(w, f, files, store)
}

func (b *Builder) signRoot(i int) ([]byte, error) {
	if i < 0 || i >= len(b.roots) {
		return nil, fmt.Errorf("tuftest: no root version %d", i+1)
	}
	rv := b.roots[i]
	md := metadata.Root(rv.expires)
	md.Signed.Version = int64(i + 1)
	md.Signed.ConsistentSnapshot = b.consistent
	for _, r := range topLevel {
		for _, k := range rv.keys[r] {
			if err := md.Signed.AddKey(k.Public, r); err != nil {
				return nil, err
			}
		}
		md.Signed.Roles[r].Threshold = rv.threshold[r]
	}
	if i == len(b.roots)-1 {
		for _, fn := range b.edits[Root] {
			fn(md)
		}
	}
	signers := rv.signers
	if signers == nil {
		signers = rv.keys[Root]
	}
	if i > 0 && !rv.skipPrevious {
		signers = append(slices.Clone(signers), b.roots[i-1].keys[Root]...)
	}
	return sign(md, signers)
}

// sign signs md once per distinct key and serializes it.
func sign[T metadata.Roles](md *metadata.Metadata[T], keys []*Key) ([]byte, error) {
	seen := map[string]bool{}
	for _, k := range keys {
		if seen[k.ID] {
			continue
		}
		seen[k.ID] = true
		if _, err := md.Sign(k.Signer); err != nil {
			return nil, err
		}
	}
	return md.ToBytes(false)
}

func (b *Builder) metaName(role string, version int64) string {
	if b.consistent {
		return fmt.Sprintf("%d.%s.json", version, url.PathEscape(role))
	}
	return url.PathEscape(role) + ".json"
}

func metaFile(version int64, data []byte) *metadata.MetaFiles {
	sum := sha256.Sum256(data)
	return &metadata.MetaFiles{Version: version, Length: int64(len(data)), Hashes: metadata.Hashes{"sha256": sum[:]}}
}

func (b *Builder) build() ([]Entry, error) {
	prefix := ""
	if b.prefix != "" {
		prefix = b.prefix + "/"
	}
	var files []Entry
	addMeta := func(name string, data []byte) {
		files = append(files, Entry{Name: prefix + "metadata/" + name, Data: data})
	}
	var roots [][]byte
	for i := range b.roots {
		data, err := b.signRoot(i)
		if err != nil {
			return nil, err
		}
		roots = append(roots, data)
	}

	// Targets roles in a fixed order: targets, then delegated roles in the
	// order they were delegated (depth-first).
	var order []string
	var walk func(string)
	walk = func(role string) {
		order = append(order, role)
		for _, d := range b.roles[role].delegations {
			walk(d.name)
		}
	}
	walk(Targets)
	snapMeta := map[string]*metadata.MetaFiles{}
	var targetsFiles []Entry
	var targetEntries []Entry
	for _, role := range order {
		spec := b.roles[role]
		md := metadata.Targets(spec.expires)
		md.Signed.Version = spec.version
		for _, t := range spec.targets {
			md.Signed.Targets[t.path] = &metadata.TargetFiles{Length: t.length, Hashes: metadata.Hashes{"sha256": t.sum[:]}}
			name := t.path
			if b.consistent {
				name = path.Join(path.Dir(t.path), hex.EncodeToString(t.sum[:])+"."+path.Base(t.path))
			}
			targetEntries = append(targetEntries, Entry{Name: prefix + "targets/" + name, Data: t.data, Open: t.open, Size: t.length})
		}
		if len(spec.delegations) > 0 {
			del := &metadata.Delegations{Keys: map[string]*metadata.Key{}}
			for _, d := range spec.delegations {
				dr := metadata.DelegatedRole{Name: d.name, Threshold: d.Threshold, Terminating: d.Terminating,
					Paths: d.Paths, PathHashPrefixes: d.PathHashPrefixes, KeyIDs: []string{}}
				for _, k := range d.Keys {
					del.Keys[k.ID] = k.Public
					dr.KeyIDs = append(dr.KeyIDs, k.ID)
				}
				del.Roles = append(del.Roles, dr)
			}
			md.Signed.Delegations = del
		}
		for _, fn := range b.edits[role] {
			fn(md)
		}
		signers := spec.signers
		if signers == nil {
			signers = b.Keys(role)
		}
		data, err := sign(md, signers)
		if err != nil {
			return nil, err
		}
		snapMeta[role+".json"] = metaFile(md.Signed.Version, data)
		targetsFiles = append(targetsFiles, Entry{Name: prefix + "metadata/" + b.metaName(role, md.Signed.Version), Data: data})
	}

	snap := b.roles[Snapshot]
	smd := metadata.Snapshot(snap.expires)
	smd.Signed.Version = snap.version
	smd.Signed.Meta = snapMeta
	for _, fn := range b.edits[Snapshot] {
		fn(smd)
	}
	signers := snap.signers
	if signers == nil {
		signers = b.Keys(Snapshot)
	}
	snapData, err := sign(smd, signers)
	if err != nil {
		return nil, err
	}

	ts := b.roles[Timestamp]
	tmd := metadata.Timestamp(ts.expires)
	tmd.Signed.Version = ts.version
	tmd.Signed.Meta = map[string]*metadata.MetaFiles{"snapshot.json": metaFile(smd.Signed.Version, snapData)}
	for _, fn := range b.edits[Timestamp] {
		fn(tmd)
	}
	signers = ts.signers
	if signers == nil {
		signers = b.Keys(Timestamp)
	}
	tsData, err := sign(tmd, signers)
	if err != nil {
		return nil, err
	}

	for i, data := range roots {
		addMeta(fmt.Sprintf("%d.root.json", i+1), data)
	}
	addMeta("timestamp.json", tsData)
	addMeta(b.metaName(Snapshot, smd.Signed.Version), snapData)
	files = append(files, targetsFiles...)
	files = append(files, targetEntries...)
	for _, fn := range b.fileEdits {
		files = fn(files)
	}
	return files, nil
}
