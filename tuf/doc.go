/*
Package tuf opens an uploaded TUF repository archive safely and verifies it
offline, with go-tuf v2, against trusted root.json documents. It knows nothing
of storage or HTTP: it reads an io.ReaderAt and hands out verified targets as
streams.

What Open guarantees when it returns a Repository:

  - The archive is a zip, tar, tar.gz or tar.zst (found from its first bytes,
    never its name) whose every entry was checked: no absolute paths, no "..",
    no backslashes, no links, devices, fifos, sparse or encrypted entries, no
    duplicate names, no overlapping zip entries, at most Limits.MaxEntries
    entries, at most Limits.MaxExpandedSize bytes expanded (declared and
    actually counted), no entry (zip) or stream (tar.gz, tar.zst) expanding
    more than Limits.MaxCompressionRatio times. Nothing is written to disk.
  - The metadata chain verifies from one of the trusted roots: every
    N.root.json rotation signed by the old root and the new, then timestamp,
    snapshot, targets and every reachable delegated role, with signatures,
    thresholds, versions (no rollback), hashes and lengths, and expiry
    (unless Options.AllowExpired) as the TUF client workflow demands.
  - Every listed target was resolved with the specification's pre-order
    depth-first delegation search, which go-tuf leaves to its updater: a role
    listing a target outside its delegated paths fails Open.
  - Every target exists in the archive with its signed length; artifacts.json
    also matches its signed hash.

Target content is verified while it streams: WalkTargets yields each target
once and fails at its end if the length or sha256 (and sha512, if signed)
differs from the metadata.

# Basics

	repo, err := tuf.Open(ctx, file, size, trustedRoots, tuf.Options{})
	// errors.Is(err, tuf.ErrTooLarge): answer 413; errors.As(err, &te) with
	// te *tuf.Error: answer 400 naming te.Check.
	m, err := repo.Manifest()            // artifacts.json, resolved to hashes
	err = repo.WalkTargets(ctx, func(t tuf.Target, body io.Reader) error {
		return store.Put(ctx, t.SHA256, t.Length, body) // read body to EOF
	})

Layouts: the tufaceous layout (repo/metadata/*.json, repo/targets/<sha256>.<name>,
consistent snapshots) and plain TUF layouts (metadata/, targets/, with or
without consistent snapshots), optionally under one top-level directory.
Target paths may have directories: targets/a/<sha256>.b.bin.

Errors: every failure caused by the archive is, or wraps, an *Error whose
Check says what failed ("archive", "layout", "signature", "threshold",
"expiry", "hash", "length", "manifest", "root", "version", "composite",
"hubris", "kind"), with the role and
archive entry involved. errors.Is(err, ErrInvalid) holds for all of them.

The tuftest subpackage builds signed repositories for tests, and Oxide
content (v2 manifests, composites, zones, Hubris archives).

# Oxide repositories

Repositories built by tufaceous carry artifacts-v2.json (every artifact its
own target, described by tags) or, in v1, artifacts.json with composite
artifacts. Manifest reads artifacts-v2.json when it exists, as tufaceous
does, deriving each artifact's kind from its tags (DeriveKind).
SplitComposite reads one v1 composite (host, trampoline, *_rot,
control_plane) in one streaming pass and hands each part to the caller as it
goes; zones of a control plane are checked while they stream, for their own
oxide.json. ReadHubrisCaboose reads the board, name and sign of a Hubris
build archive. Their failures are *Error with Check "composite" or "hubris".

# Caveats

  - Files in the archive that no metadata lists (targets/ leftovers, other
    top-level files, metadata/ subdirectories, non-.json metadata) are ignored,
    not rejected; they still count toward the entry and size limits, and
    metadata/*.json files toward the metadata caps.
  - All metadata/*.json files are held in memory during Open (each capped,
    together capped by Limits.MaxMetadataTotal), because a tar stream cannot
    be revisited.
  - Open reads a tar.gz or tar.zst archive from start to end once and
    WalkTargets once more: compressed tar streams have no index.
  - A zip's central directory is parsed whole before MaxEntries is checked; its
    size is bounded by the archive's, which the caller must cap.
  - path_hash_prefixes are compared with the hex sha256 of the target path, as
    the TUF specification says; go-tuf v2.4 compares a base64 digest.
  - A delegated role reachable from two delegators is verified with the keys
    of the first one in pre-order.
  - A delegated role the snapshot does not list fails the repository only if
    some listed target's search needs it.
  - At most 32 roles are consulted per target and 1024 delegated roles may be
    declared; root rotations are followed up to 256 versions.
  - With AllowExpired, expiry is skipped for every role, including roots.
  - zstd windows above 64 MiB (zstd --long=27 and up) are refused.
  - A composite's parts stream out before the composite's own signed hash
    is checked at its end: SplitComposite reads its body to the end, so
    over a WalkTargets body it returns nil only once the composite matched;
    until then a caller must hold the parts back (depot keeps them in
    unpublished temp files).
  - ReadHubrisCaboose holds img/final.elf in memory (capped at MaxHubrisELF)
    and reads only 32-bit little-endian ELF images, as Hubris builds them.
  - Inside zone tarballs, relative symbolic links that stay inside the zone
    are accepted (zone images carry them); hard links and links leaving the
    zone are refused.
*/
package tuf
