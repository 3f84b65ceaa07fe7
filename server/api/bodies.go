package api

import (
	"encoding/json"
	"time"
)

// This file holds the bodies that mirror a domain type field for field
// (depot, store). The server converts its domain values into them, so
// the JSON is the one the domain types would give; the client decodes
// into them and links no domain package.

// MirrorStatus is one mirror's health in GET /status.
type MirrorStatus struct {
	Path          string    `json:"path"`
	Healthy       bool      `json:"healthy"`
	Artifacts     int       `json:"artifacts"`
	Bytes         int64     `json:"bytes"`
	Free          int64     `json:"free"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
}

// ScrubStatus is the scrub in flight (or the last one) and the totals
// since start-up, in GET /status and POST /scrub.
type ScrubStatus struct {
	Running       bool      `json:"running"`
	Verify        bool      `json:"verify"` // false: a refill pass that only copies what is missing
	Started       time.Time `json:"started,omitzero"`
	Finished      time.Time `json:"finished,omitzero"`
	Artifacts     int       `json:"artifacts"`
	Checked       int       `json:"checked"`
	Bytes         int64     `json:"bytes"`
	Corrupt       int       `json:"corrupt"`
	Missing       int       `json:"missing"`
	Repaired      int       `json:"repaired"`
	Failed        int       `json:"failed"`
	LastError     string    `json:"last_error,omitempty"`
	Passes        int       `json:"passes"`
	TotalCorrupt  int       `json:"total_corrupt"`
	TotalRepaired int       `json:"total_repaired"`
	TotalFailed   int       `json:"total_failed"`
}

// CopyCounts sums up copy jobs in GET /status.
type CopyCounts struct {
	Running    int   `json:"running"`
	Limit      int   `json:"limit"`
	Queued     int   `json:"queued"`
	QueueLimit int   `json:"queue_limit"`
	Succeeded  int64 `json:"succeeded"`
	Failed     int64 `json:"failed"`
	Rejected   int64 `json:"rejected"`
}

// ReconcileStatus is the delete reconciler's last pass and totals in GET
// /status.
type ReconcileStatus struct {
	Running      bool      `json:"running"`
	LastStarted  time.Time `json:"last_started,omitzero"`
	LastFinished time.Time `json:"last_finished,omitzero"`
	Generation   *uint64   `json:"generation"`
	Found        int       `json:"found"`
	Deleted      int       `json:"deleted"`
	Skipped      int       `json:"skipped"`
	Failed       int       `json:"failed"`
	LastError    string    `json:"last_error,omitempty"`
	Passes       int       `json:"passes"`
	TotalDeleted int       `json:"total_deleted"`
	TotalFailed  int       `json:"total_failed"`
}

// Config is a sled's artifact config: GET and PUT /artifacts-config.
type Config struct {
	// CatalogID names the catalog the config comes from; omicron's
	// clients neither send nor read it.
	CatalogID  string   `json:"catalog_id,omitempty"`
	Generation uint64   `json:"generation"`
	Artifacts  []Digest `json:"artifacts"`
}

// Copy job states.
const (
	CopyQueued    = "queued"
	CopyRunning   = "running"
	CopySucceeded = "succeeded"
	CopyFailed    = "failed"
)

// CopyJob is one copy-from-depot job: GET /copies and /copies/{sha256}.
type CopyJob struct {
	Hash       Digest    `json:"hash"`
	Source     string    `json:"source"`
	Generation *uint64   `json:"generation"`
	State      string    `json:"state"`
	Bytes      int64     `json:"bytes"`
	Error      string    `json:"error,omitempty"`
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished,omitzero"`
}

// Repo is one uploaded TUF repository.
type Repo struct {
	Hash          Digest         `json:"hash"`
	SystemVersion string         `json:"system_version"`
	FileName      string         `json:"file_name"`
	TimeCreated   time.Time      `json:"time_created"`
	Artifacts     []RepoArtifact `json:"artifacts"`
	// Format is "tufaceous-v1" or "tufaceous-v2" for an Oxide repository,
	// empty for any other.
	Format string `json:"format,omitempty"`
}

// RepoArtifact is one artifact of a repository: an artifact of its
// manifest, or a part split out of one of its composites.
type RepoArtifact struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Kind    string `json:"kind"` // for a part, the kind Nexus derives
	Hash    Digest `json:"hash"`
	Size    int64  `json:"size"`
	// Tags are a v2 artifact's tags, as its manifest gives them.
	Tags map[string]string `json:"tags,omitempty"`
	// Board and Sign are a Hubris image's caboose BORD and SIGN.
	Board string `json:"board,omitempty"`
	Sign  string `json:"sign,omitempty"`
	// Source is the composite a part was split from.
	Source *ArtifactSource `json:"source,omitempty"`
}

// ArtifactSource names the composite artifact a part was split from and
// the part's path inside it.
type ArtifactSource struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	Hash    Digest `json:"hash"`
	Path    string `json:"path"`
}

// Upload statuses.
const (
	UploadInserted      = "inserted"
	UploadAlreadyExists = "already_exists"
)

// UploadResult is the body of PUT /v1/system/update/repositories.
type UploadResult struct {
	Repo   Repo   `json:"repo"`
	Status string `json:"status"`
}

// Repository replication states.
const (
	RepoReplicating = "replicating"
	RepoDurable     = "durable"
	RepoComplete    = "complete"
)

// ArtifactProgress is one artifact of a repository with the sleds holding it.
type ArtifactProgress struct {
	RepoArtifact
	Sleds []string `json:"sleds"`
}

// RepoProgress is a repository with its replication state: GET
// /v1/system/update/repositories/{system_version}.
type RepoProgress struct {
	Repo
	State          string `json:"state"`
	MinReplication int    `json:"min_replication"`
	InService      int    `json:"in_service_sleds"`
	// UnknownSleds are the in-service sleds whose holdings the last
	// collect could not confirm: they count as holding nothing.
	UnknownSleds []string           `json:"unknown_sleds,omitempty"`
	Artifacts    []ArtifactProgress `json:"artifacts"`
}

// TrustRoot is a trusted root.json document: omicron's UpdatesTrustRoot
// (id, root_role, time_created) plus the document's sha256 and source.
type TrustRoot struct {
	ID          string          `json:"id"`     // a UUID
	SHA256      string          `json:"sha256"` // of the document
	TimeCreated time.Time       `json:"time_created"`
	Source      string          `json:"source"` // "api" or the file it came from
	Root        json.RawMessage `json:"root_role"`
}

// Sled states in the registry.
const (
	SledInService = "in_service"
	SledExpunged  = "expunged"
)

// SledRecord is one sled in the coordinator's registry: /v1/sleds.
type SledRecord struct {
	ID         string    `json:"id"`
	ControlURL string    `json:"control_url"`
	DepotURL   string    `json:"depot_url,omitempty"`
	State      string    `json:"state"`
	Added      time.Time `json:"added"`
}

// Replication operations, as counted and recorded.
const (
	OpGetConfig = "get_config"
	OpPutConfig = "put_config"
	OpList      = "list"
	OpPut       = "put"
	OpCopy      = "copy"
)

// OpCounts counts one operation's outcomes.
type OpCounts struct {
	OK  int64 `json:"ok"`
	Err int64 `json:"err"`
}

// Counters are per-operation outcomes, keyed by Op*.
type Counters map[string]*OpCounts

// RequestRecord is one replication request.
type RequestRecord struct {
	Time       time.Time `json:"time"`
	Sled       string    `json:"sled"`
	Op         string    `json:"op"`
	Hash       *Digest   `json:"hash,omitempty"`
	Source     string    `json:"source,omitempty"`
	Generation uint64    `json:"generation"`
	DurationMS int64     `json:"duration_ms"`
	Error      string    `json:"error,omitempty"`
}

// Activation sums up one replication activation.
type Activation struct {
	Started    time.Time `json:"started"`
	Finished   time.Time `json:"finished,omitzero"`
	Generation uint64    `json:"generation"`
	Sleds      int       `json:"sleds"`
	Planned    int       `json:"planned"`
	Counters   Counters  `json:"counters"`
	Converged  bool      `json:"converged"`
	Error      string    `json:"error,omitempty"`
}

// SledState is the coordinator's view of one sled.
type SledState struct {
	SledRecord
	Mirrors       int       `json:"mirrors"`
	Artifacts     int       `json:"artifacts"`
	LastInventory time.Time `json:"last_inventory,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	LastErrorTime time.Time `json:"last_error_time,omitzero"`
	// CatalogID and ConfigGeneration are the sled's config as collect last
	// read or wrote it; Conflict says why collect wrote to no sled
	// (another catalog, or a higher generation of this one), "" otherwise.
	CatalogID        string  `json:"catalog_id,omitempty"`
	ConfigGeneration *uint64 `json:"config_generation,omitempty"`
	Conflict         string  `json:"conflict,omitempty"`
}

// RecoveryPass is one pass of upload saga recovery.
type RecoveryPass struct {
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	Found    int       `json:"found"`
	Undone   int       `json:"undone"`
	Carried  int       `json:"carried"`
	Skipped  int       `json:"skipped"`
	Adopted  int       `json:"adopted"`
	Failed   int       `json:"failed"`
	Error    string    `json:"error,omitempty"`
}

// RecoveryStatus is saga recovery's last pass and its totals.
type RecoveryStatus struct {
	Last         *RecoveryPass `json:"last_pass"`
	Passes       int           `json:"passes"`
	TotalUndone  int           `json:"total_undone"`
	TotalCarried int           `json:"total_carried"`
	TotalFailed  int           `json:"total_failed"`
}

// ReplicationStatus is GET /v1/replication/status.
type ReplicationStatus struct {
	CatalogID    string          `json:"catalog_id"`
	Generation   uint64          `json:"generation"`
	Activations  int64           `json:"activations"`
	Running      bool            `json:"running"`
	Last         *Activation     `json:"last_activation"`
	Lifetime     Counters        `json:"lifetime"`
	Sleds        []SledState     `json:"sleds"`
	Recent       []RequestRecord `json:"recent_requests"` // oldest first
	SagaRecovery RecoveryStatus  `json:"saga_recovery"`
	// CatalogError is set when the catalog could not be read for this
	// status; Generation is then unknown (0).
	CatalogError string `json:"catalog_error,omitempty"`
	// Coordinator is this coordinator's id; Leading says whether it runs
	// replication now (on a shared catalog one coordinator leads).
	Coordinator string `json:"coordinator"`
	Leading     bool   `json:"leading"`
}
