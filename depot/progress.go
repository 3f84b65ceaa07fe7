package depot

// Repository replication states.
const (
	RepoReplicating = "replicating"
	RepoDurable     = "durable"  // every artifact on MinReplication sleds
	RepoComplete    = "complete" // every artifact on every in-service sled
)

// ArtifactProgress is one artifact of a repository with the sleds holding it.
type ArtifactProgress struct {
	RepoArtifact
	Sleds []string `json:"sleds"`
}

// RepoProgress is a repository with its replication state.
type RepoProgress struct {
	Repo
	State          string             `json:"state"`
	MinReplication int                `json:"min_replication"`
	InService      int                `json:"in_service_sleds"`
	Artifacts      []ArtifactProgress `json:"artifacts"`
}

// Progress returns the repository's replication state as of the last
// activation.
func (r *Replicator) Progress(repo Repo) RepoProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := RepoProgress{Repo: repo, MinReplication: r.opts.MinReplication, InService: len(r.inService)}
	durable, complete := true, len(r.inService) > 0
	for _, a := range repo.Artifacts {
		ap := ArtifactProgress{RepoArtifact: a, Sleds: []string{}}
		for _, id := range r.inService {
			if r.holders[a.Hash][id] {
				ap.Sleds = append(ap.Sleds, id)
			}
		}
		if len(ap.Sleds) < r.opts.MinReplication {
			durable = false
		}
		if len(ap.Sleds) < len(r.inService) {
			complete = false
		}
		p.Artifacts = append(p.Artifacts, ap)
	}
	switch {
	case durable && complete:
		p.State = RepoComplete
	case durable:
		p.State = RepoDurable
	default:
		p.State = RepoReplicating
	}
	return p
}
