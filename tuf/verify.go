package tuf

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"path"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
)

const (
	// maxRootRotations bounds the N.root.json chain, as go-tuf's updater does.
	maxRootRotations = 256
	// maxDelegations bounds the roles consulted for one target path, as
	// go-tuf's updater's MaxDelegations does.
	maxDelegations = 32
	// maxDelegationDepth bounds how deep delegations nest.
	maxDelegationDepth = 32
	// maxDelegatedRoles bounds the delegated roles declared across the whole
	// repository: resolving every target walks them, so a repository with
	// many thousands could pin a core.
	maxDelegatedRoles = 1024
)

// How far verification got, to tell which trusted root's failure is the most
// telling when none verifies.
const (
	stageRoot = iota
	stageRootChain
	stageTimestamp
	stageSnapshot
	stageTargets
	stageDelegations
	stageResolve
)

// resolvedTarget is a verified target and where its content lives.
type resolvedTarget struct {
	Target
	role   string // the role whose listing is authoritative
	sha512 []byte // also checked while streaming, when signed
	entry  *entry
}

// verified is the outcome of verifying the metadata against one trusted root.
type verified struct {
	rootVersion int64
	consistent  bool
	targets     []*resolvedTarget // sorted by path
}

type verifier struct {
	lay         *layout
	ref         time.Time
	tm          *trustedmetadata.TrustedMetadata
	stage       int
	consistent  bool
	rootEntry   *entry            // the last N.root.json applied, nil if none
	parent      map[string]string // loaded delegated role -> its delegator
	loadOrder   []string          // loaded delegated roles, pre-order
	unavailable map[string]bool   // delegated roles the snapshot does not list
	declared    int               // delegated roles declared so far
}

// verify runs the TUF client workflow offline over the archive's metadata,
// starting from rootJSON, and resolves every listed target. It returns the
// stage reached, also on failure.
func verify(ctx context.Context, lay *layout, ref time.Time, rootJSON []byte) (res *verified, stage int, err error) {
	v := &verifier{lay: lay, ref: ref, parent: map[string]string{}, unavailable: map[string]bool{}}
	defer func() {
		// go-tuf dereferences what the JSON provides (a null key, a null
		// role); malformed metadata must fail the upload, not the process.
		if r := recover(); r != nil {
			res, err = nil, &Error{Check: CheckLayout, Err: fmt.Errorf("malformed metadata (%v)", r)}
		}
		stage = v.stage
	}()
	res, err = v.run(ctx, rootJSON)
	return res, v.stage, err
}

func (v *verifier) run(ctx context.Context, rootJSON []byte) (*verified, error) {
	v.stage = stageRoot
	if err := checkSpecVersion(rootJSON, metadata.ROOT, ""); err != nil {
		return nil, err
	}
	tm, err := trustedmetadata.New(rootJSON)
	if err != nil {
		return nil, &Error{Check: CheckRoot, Role: metadata.ROOT, Err: fmt.Errorf("trusted root unusable: %w", err)}
	}
	tm.RefTime = v.ref
	v.tm = tm

	// Root chain: N.root.json from the trusted version + 1 upward. Each must
	// be signed by the previous root's threshold and its own.
	v.stage = stageRootChain
	for range maxRootRotations {
		e := v.lay.meta[fmt.Sprintf("%d.root.json", tm.Root.Signed.Version+1)]
		if e == nil {
			break
		}
		if err := checkSpecVersion(e.data, metadata.ROOT, e.raw); err != nil {
			return nil, err
		}
		if _, err := tm.UpdateRoot(e.data); err != nil {
			return nil, v.fail(err, metadata.ROOT, e)
		}
		v.rootEntry = e
	}
	v.consistent = tm.Root.Signed.ConsistentSnapshot

	v.stage = stageTimestamp
	e := v.lay.meta["timestamp.json"]
	if e == nil {
		return nil, &Error{Check: CheckLayout, Role: metadata.TIMESTAMP, Err: errors.New(`metadata file "timestamp.json" missing`)}
	}
	if err := checkSpecVersion(e.data, metadata.TIMESTAMP, e.raw); err != nil {
		return nil, err
	}
	if _, err := tm.UpdateTimestamp(e.data); err != nil {
		if isExpired(err) && tm.Root.Signed.IsExpired(v.ref) {
			return nil, v.expired(metadata.ROOT, v.rootEntry, tm.Root.Signed.Expires)
		}
		if isExpired(err) && tm.Timestamp != nil {
			return nil, v.expired(metadata.TIMESTAMP, e, tm.Timestamp.Signed.Expires)
		}
		return nil, v.fail(err, metadata.TIMESTAMP, e)
	}

	v.stage = stageSnapshot
	info := tm.Timestamp.Signed.Meta["snapshot.json"]
	if info == nil {
		return nil, &Error{Check: CheckLayout, Role: metadata.TIMESTAMP, Err: errors.New("timestamp lists no snapshot.json")}
	}
	if e, err = v.roleFile(metadata.SNAPSHOT, info.Version); err != nil {
		return nil, err
	}
	if err := checkSpecVersion(e.data, metadata.SNAPSHOT, e.raw); err != nil {
		return nil, err
	}
	if _, err := tm.UpdateSnapshot(e.data, false); err != nil {
		if isExpired(err) && tm.Snapshot != nil {
			return nil, v.expired(metadata.SNAPSHOT, e, tm.Snapshot.Signed.Expires)
		}
		return nil, v.fail(err, metadata.SNAPSHOT, e)
	}

	v.stage = stageTargets
	if err := v.loadTargets(metadata.TARGETS, metadata.ROOT); err != nil {
		return nil, err
	}

	v.stage = stageDelegations
	if err := v.loadDelegations(ctx); err != nil {
		return nil, err
	}

	v.stage = stageResolve
	targets, err := v.resolve(ctx)
	if err != nil {
		return nil, err
	}
	return &verified{rootVersion: tm.Root.Signed.Version, consistent: v.consistent, targets: targets}, nil
}

// roleFile finds the metadata file of a snapshot or targets role: with
// consistent snapshots "N.role.json", else "role.json"; each falls back to
// the other (the version checks catch a wrong one).
func (v *verifier) roleFile(role string, version int64) (*entry, error) {
	plain := url.PathEscape(role) + ".json"
	names := []string{plain, fmt.Sprintf("%d.%s", version, plain)}
	if v.consistent {
		names[0], names[1] = names[1], names[0]
	}
	for _, n := range names {
		if e := v.lay.meta[n]; e != nil {
			return e, nil
		}
	}
	return nil, &Error{Check: CheckLayout, Role: role, Err: fmt.Errorf("metadata file %q missing", v.lay.prefix+"metadata/"+names[0])}
}

// loadTargets verifies and loads a targets role (top-level or delegated).
func (v *verifier) loadTargets(role, delegator string) error {
	info := v.tm.Snapshot.Signed.Meta[role+".json"]
	if info == nil {
		return &Error{Check: CheckLayout, Role: role, Err: fmt.Errorf("snapshot lists no %s.json", role)}
	}
	e, err := v.roleFile(role, info.Version)
	if err != nil {
		return err
	}
	if err := checkSpecVersion(e.data, role, e.raw); err != nil {
		return err
	}
	if _, err := v.tm.UpdateDelegatedTargets(e.data, role, delegator); err != nil {
		if isExpired(err) {
			if md, perr := metadata.Targets().FromBytes(e.data); perr == nil {
				return v.expired(role, e, md.Signed.Expires)
			}
		}
		return v.fail(err, role, e)
	}
	if d := v.tm.Targets[role].Signed.Delegations; d != nil {
		return v.checkDelegations(role, d)
	}
	return nil
}

// checkDelegations refuses delegations go-tuf would choke on or that could
// mean two things.
func (v *verifier) checkDelegations(role string, d *metadata.Delegations) error {
	bad := func(format string, args ...any) error {
		return &Error{Check: CheckLayout, Role: role, Err: fmt.Errorf("delegations: "+format, args...)}
	}
	for id, k := range d.Keys {
		if k == nil {
			return bad("key %q is null", id)
		}
	}
	if d.Roles != nil && d.SuccinctRoles != nil {
		return bad("both roles and succinct_roles")
	}
	if s := d.SuccinctRoles; s != nil {
		if s.BitLength < 1 || s.BitLength > 32 {
			return bad("succinct_roles bit_length %d outside 1..32", s.BitLength)
		}
		if s.NamePrefix == "" {
			return bad("succinct_roles without name_prefix")
		}
	}
	names := map[string]bool{}
	for _, r := range d.Roles {
		switch {
		case r.Name == "":
			return bad("role without a name")
		case slices.Contains(metadata.TOP_LEVEL_ROLE_NAMES[:], r.Name):
			return bad("delegated role named %q, a top-level role", r.Name)
		case names[r.Name]:
			return bad("role %q delegated twice", r.Name)
		case len(r.Paths) > 0 && len(r.PathHashPrefixes) > 0:
			return bad("role %q has both paths and path_hash_prefixes", r.Name)
		}
		names[r.Name] = true
	}
	v.declared += len(d.Roles)
	if v.declared > maxDelegatedRoles {
		return bad("more than %d delegated roles in the repository", maxDelegatedRoles)
	}
	return nil
}

type pending struct {
	role, parent string
	depth        int
}

// loadDelegations loads every delegated role reachable from targets, in
// pre-order, each verified with the keys of the first delegator that reaches
// it. A role the snapshot does not list is noted as unavailable: it only
// fails the repository if resolving some target needs it.
func (v *verifier) loadDelegations(ctx context.Context) error {
	stack := v.childrenOf(metadata.TARGETS, 1, nil)
	for len(stack) > 0 {
		if err := ctx.Err(); err != nil {
			return err
		}
		p := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if _, done := v.parent[p.role]; done || v.unavailable[p.role] {
			continue
		}
		if p.depth > maxDelegationDepth {
			return &Error{Check: CheckLayout, Role: p.role, Err: fmt.Errorf("delegated more than %d levels deep", maxDelegationDepth)}
		}
		if v.tm.Snapshot.Signed.Meta[p.role+".json"] == nil {
			v.unavailable[p.role] = true
			continue
		}
		if err := v.loadTargets(p.role, p.parent); err != nil {
			return err
		}
		v.parent[p.role] = p.parent
		v.loadOrder = append(v.loadOrder, p.role)
		stack = v.childrenOf(p.role, p.depth+1, stack)
	}
	return nil
}

// childrenOf pushes a loaded role's delegated roles onto stack so that they
// pop in declaration order.
func (v *verifier) childrenOf(role string, depth int, stack []pending) []pending {
	d := v.tm.Targets[role].Signed.Delegations
	if d == nil {
		return stack
	}
	var kids []pending
	if s := d.SuccinctRoles; s != nil {
		// Only bins the snapshot lists: a bit_length of 32 names four
		// billion of them.
		for name := range v.tm.Snapshot.Signed.Meta {
			if bin, ok := strings.CutSuffix(name, ".json"); ok && s.IsDelegatedRole(bin) {
				kids = append(kids, pending{bin, role, depth})
			}
		}
		sort.Slice(kids, func(i, j int) bool { return kids[i].role < kids[j].role })
	}
	for _, r := range d.Roles {
		kids = append(kids, pending{r.Name, role, depth})
	}
	slices.Reverse(kids)
	return append(stack, kids...)
}

// walk returns the roles the TUF spec's pre-order depth-first search consults
// for target path p, in order, without stopping at the first role that lists
// p: a role outside this list may not list p. It mirrors go-tuf's updater
// (terminating delegations cut backtracking; at most maxDelegations+1 roles).
func (v *verifier) walk(p string) []string {
	var digest string // hex sha256 of p, for path_hash_prefixes; computed once
	var order []string
	visited := map[string]bool{}
	stack := []string{metadata.TARGETS}
	for len(visited) <= maxDelegations && len(stack) > 0 {
		role := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if visited[role] {
			continue
		}
		visited[role] = true
		order = append(order, role)
		md := v.tm.Targets[role]
		if md == nil || md.Signed.Delegations == nil {
			continue
		}
		d := md.Signed.Delegations
		var kids []string
		if d.SuccinctRoles != nil {
			// Every target falls in exactly one bin; bins terminate (TAP 15).
			kids = []string{d.SuccinctRoles.GetRolesForTarget(p)[0].Name}
			stack = stack[:0]
		}
		for i := range d.Roles {
			r := &d.Roles[i]
			if !delegates(r, p, &digest) {
				continue
			}
			kids = append(kids, r.Name)
			if r.Terminating {
				stack = stack[:0]
				break
			}
		}
		slices.Reverse(kids)
		stack = append(stack, kids...)
	}
	return order
}

// delegates reports whether role r is trusted for target path p. Unlike
// go-tuf, which compares path_hash_prefixes with a base64 digest, it uses the
// hex digest the TUF specification (and python-tuf) use.
func delegates(r *metadata.DelegatedRole, p string, digest *string) bool {
	if len(r.Paths) > 0 {
		for _, pattern := range r.Paths {
			if matchPath(pattern, p) {
				return true
			}
		}
		return false
	}
	if len(r.PathHashPrefixes) > 0 && *digest == "" {
		sum := sha256.Sum256([]byte(p))
		*digest = hex.EncodeToString(sum[:])
	}
	for _, prefix := range r.PathHashPrefixes {
		if strings.HasPrefix(*digest, prefix) {
			return true
		}
	}
	return false
}

// matchPath matches a TUF path pattern: shell globs per "/"-separated
// element, so "*" never crosses a directory.
func matchPath(pattern, p string) bool {
	pe, te := strings.Split(pattern, "/"), strings.Split(p, "/")
	if len(pe) != len(te) {
		return false
	}
	for i := range pe {
		if ok, _ := path.Match(pe[i], te[i]); !ok {
			return false
		}
	}
	return true
}

// resolve decides, for every path any loaded role lists, which listing is
// authoritative, and refuses listings by roles the walk never reaches.
func (v *verifier) resolve(ctx context.Context) ([]*resolvedTarget, error) {
	listed := map[string][]string{}
	for _, role := range append([]string{metadata.TARGETS}, v.loadOrder...) {
		for p := range v.tm.Targets[role].Signed.Targets {
			listed[p] = append(listed[p], role)
		}
	}
	paths := make([]string, 0, len(listed))
	for p := range listed {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	out := make([]*resolvedTarget, 0, len(paths))
	for i, p := range paths {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if !fs.ValidPath(p) || p == "." || strings.Contains(p, `\`) {
			return nil, &Error{Check: CheckLayout, Role: listed[p][0], Err: fmt.Errorf("target path %q is not a clean relative path", p)}
		}
		order := v.walk(p)
		auth := ""
		for _, r := range order {
			if v.unavailable[r] {
				return nil, &Error{Check: CheckLayout, Role: r, Err: fmt.Errorf("needed to resolve target %q, but the snapshot does not list it", p)}
			}
			if _, ok := v.tm.Targets[r].Signed.Targets[p]; ok {
				auth = r
				break
			}
		}
		for _, r := range listed[p] {
			if !slices.Contains(order, r) {
				return nil, &Error{Check: CheckSignature, Role: r, Err: fmt.Errorf("lists target %q outside its delegated paths", p)}
			}
		}
		t, err := newTarget(auth, p, v.tm.Targets[auth].Signed.Targets[p])
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, nil
}

func newTarget(role, p string, tf *metadata.TargetFiles) (*resolvedTarget, error) {
	bad := func(check, format string, args ...any) error {
		return &Error{Check: check, Role: role, Err: fmt.Errorf("target %q: "+format, append([]any{p}, args...)...)}
	}
	if tf == nil {
		return nil, bad(CheckLayout, "null entry")
	}
	if tf.Length < 0 {
		return nil, bad(CheckLength, "negative length %d", tf.Length)
	}
	t := &resolvedTarget{Target: Target{Path: p, Length: tf.Length}, role: role}
	for alg, sum := range tf.Hashes {
		switch {
		case alg == "sha256" && len(sum) == sha256.Size:
			copy(t.SHA256[:], sum)
		case alg == "sha512" && len(sum) == 64:
			t.sha512 = sum
		default:
			return nil, bad(CheckHash, "unusable %q hash", alg)
		}
	}
	if _, ok := tf.Hashes["sha256"]; !ok {
		return nil, bad(CheckHash, "no sha256 hash")
	}
	return t, nil
}

// locate finds a target's content in the archive: with consistent snapshots
// "targets/<dir>/<hash>.<name>", else "targets/<path>"; each falls back to the
// other. The entry's declared size must be the signed length.
func (lay *layout) locate(t *resolvedTarget, consistent bool) (*entry, error) {
	dir, base := "", t.Path
	if i := strings.LastIndexByte(t.Path, '/'); i >= 0 {
		dir, base = t.Path[:i+1], t.Path[i+1:]
	}
	names := []string{dir + hex.EncodeToString(t.SHA256[:]) + "." + base}
	if t.sha512 != nil {
		names = append(names, dir+hex.EncodeToString(t.sha512)+"."+base)
	}
	if consistent {
		names = append(names, t.Path)
	} else {
		names = append([]string{t.Path}, names...)
	}
	for _, n := range names {
		if e := lay.targets[n]; e != nil {
			if e.size != t.Length {
				return nil, &Error{Check: CheckLength, Role: t.role, Entry: e.raw,
					Err: fmt.Errorf("target %q: entry holds %d bytes, signed length is %d", t.Path, e.size, t.Length)}
			}
			return e, nil
		}
	}
	return nil, &Error{Check: CheckLayout, Role: t.role,
		Err: fmt.Errorf("target %q missing from the archive (no %s)", t.Path, lay.prefix+"targets/"+names[0])}
}

func isExpired(err error) bool {
	var x *metadata.ErrExpiredMetadata
	return errors.As(err, &x)
}

func (v *verifier) expired(role string, e *entry, at time.Time) error {
	out := &Error{Check: CheckExpiry, Role: role, Err: fmt.Errorf("expired at %s", at.UTC().Format(time.RFC3339))}
	if e != nil {
		out.Entry = e.raw
	}
	return out
}

var gotWantRE = regexp.MustCompile(`got (\d+), want (\d+)`)

// fail maps a go-tuf error met while loading role from entry e to an *Error.
func (v *verifier) fail(err error, role string, e *entry) error {
	out := &Error{Role: role, Entry: e.raw, Err: err}
	var (
		unsigned *metadata.ErrUnsignedMetadata
		version  *metadata.ErrBadVersionNumber
		mismatch *metadata.ErrLengthOrHashMismatch
	)
	switch {
	case isExpired(err):
		out.Check = CheckExpiry
	case errors.As(err, &unsigned):
		// go-tuf does not say how many signatures verified except in its
		// message; none means the wrong keys, some means too few.
		out.Check = CheckSignature
		if m := gotWantRE.FindStringSubmatch(unsigned.Msg); m != nil && m[1] != "0" {
			out.Check = CheckThreshold
		}
	case errors.As(err, &version):
		out.Check = CheckVersion
	case errors.As(err, &mismatch):
		out.Check = CheckHash
		if strings.Contains(mismatch.Msg, "length") {
			out.Check = CheckLength
		}
	case !parses(role, e.data):
		out.Check = CheckLayout
		out.Err = fmt.Errorf("malformed metadata: %w", err)
	default:
		// A well-formed file go-tuf still refuses: no delegation to it, a
		// key its delegator does not know, a threshold below one.
		out.Check = CheckSignature
	}
	return out
}

func parses(role string, data []byte) bool {
	var err error
	switch role {
	case metadata.ROOT:
		_, err = metadata.Root().FromBytes(data)
	case metadata.TIMESTAMP:
		_, err = metadata.Timestamp().FromBytes(data)
	case metadata.SNAPSHOT:
		_, err = metadata.Snapshot().FromBytes(data)
	default:
		_, err = metadata.Targets().FromBytes(data)
	}
	return err == nil
}
