package depot

import "errors"

// Errors of the sled service. Callers check them with errors.Is; returned
// errors wrap them with the operation and the object.
var (
	// ErrNoConfig is returned by Config while the sled is unmanaged.
	ErrNoConfig = errors.New("no artifact config")

	// ErrConfigGeneration is returned by SetConfig for a generation lower
	// than the current one, or equal to it with a different set: another
	// coordinator is ahead, or this one is confused.
	ErrConfigGeneration = errors.New("config generation conflict")

	// ErrCatalogMismatch is returned by SetConfig for a config from
	// another catalog than the sled's (see CheckConfig), and by
	// AdoptCatalog when the sled does not serve the catalog it is to be
	// moved from. The coordinator's collect reports it for a sled that
	// serves another catalog, and then writes to no sled.
	ErrCatalogMismatch = errors.New("config is from another catalog")

	// ErrGeneration is returned by Put and CopyFromDepot on a managed sled
	// when the request's generation is missing or is not the current one.
	ErrGeneration = errors.New("generation does not match the sled's config")

	// ErrNotInConfig is returned by Put and CopyFromDepot on a managed sled
	// for an artifact the config does not list.
	ErrNotInConfig = errors.New("artifact is not in the sled's config")

	// ErrArtifactInConfig is returned by Delete for an artifact the config
	// lists: only a new config can drop it.
	ErrArtifactInConfig = errors.New("artifact is in the sled's config")

	// ErrTooManyCopies is returned by CopyFromDepot when the copy queue is
	// full; the caller retries later.
	ErrTooManyCopies = errors.New("too many copies in flight")

	// ErrInvalidSource is returned by CopyFromDepot for a depot_base_url
	// that is not scheme://host:port (http or https, nothing else), or
	// that the sled's source policy does not allow.
	ErrInvalidSource = errors.New("invalid depot_base_url")

	// ErrServerBusy is returned when every write slot is taken (see
	// WriteSlots); the caller retries later.
	ErrServerBusy = errors.New("server busy: every write slot is taken")

	// ErrSourceUnavailable is returned by CopyFromDepot when the source
	// cannot be asked for the artifact (refused, timed out, an answer other
	// than 200 or 404).
	ErrSourceUnavailable = errors.New("copy source unavailable")

	// ErrSourceNotFound is returned by CopyFromDepot when the source
	// answers that it does not hold the artifact.
	ErrSourceNotFound = errors.New("copy source does not hold the artifact")

	// ErrCopyNotFound is returned by Copy for a hash with no copy job.
	ErrCopyNotFound = errors.New("no copy job for this artifact")

	// ErrClosed is returned after Close.
	ErrClosed = errors.New("sled service is closed")
)

// Errors of the coordinator.
var (
	// ErrRepoNotFound: no repository with that system version (or hash).
	ErrRepoNotFound = errors.New("repository not found")

	// ErrRepoConflict: the upload's system version or one of its artifacts
	// is recorded with a different hash.
	ErrRepoConflict = errors.New("repository conflicts with one already uploaded")

	// ErrRepoInvalid wraps every reason an uploaded archive is refused
	// (archive, layout, signature, threshold, expiry, hash, length,
	// manifest); the tuf package's *Error says which check failed.
	ErrRepoInvalid = errors.New("repository is invalid")

	// ErrTrustRootNotFound: no trusted root with that id.
	ErrTrustRootNotFound = errors.New("trust root not found")

	// ErrTrustRootInvalid: a document offered as a trusted root is not a
	// TUF root.
	ErrTrustRootInvalid = errors.New("invalid trust root")

	// ErrSledNotFound: no registered sled with that id.
	ErrSledNotFound = errors.New("sled not found")

	// ErrNotCoordinator: the daemon runs without the coordinator role.
	ErrNotCoordinator = errors.New("this daemon is not a coordinator")
)

// ErrInvalidSled: a sled record with a bad id, URL or state.
var ErrInvalidSled = errors.New("invalid sled")
