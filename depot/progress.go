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
	State          string `json:"state"`
	MinReplication int    `json:"min_replication"`
	InService      int    `json:"in_service_sleds"`
	// UnknownSleds are the in-service sleds whose holdings the last
	// collect could not confirm (unreachable, or serving another
	// catalog): they count as holding nothing.
	UnknownSleds []string           `json:"unknown_sleds,omitempty"`
	Artifacts    []ArtifactProgress `json:"artifacts"`
}

// Progress returns the repository's replication state: what the last
// collect listed, plus every request that has succeeded since (so
// `durable` comes as soon as the quorum's requests succeed). A sled the
// last collect could not list counts as holding nothing; `complete` needs
// every in-service sled listed by it and holding every artifact.
func (r *Replicator) Progress(repo Repo) RepoProgress {
	r.mu.Lock()
	defer r.mu.Unlock()
	p := RepoProgress{Repo: repo, MinReplication: r.opts.MinReplication, InService: len(r.inService)}
	for _, id := range r.inService {
		if r.view[id] == nil {
			p.UnknownSleds = append(p.UnknownSleds, id)
		}
	}
	durable, complete := true, len(r.inService) > 0 && len(p.UnknownSleds) == 0
	for _, a := range repo.Artifacts {
		ap := ArtifactProgress{RepoArtifact: a, Sleds: []string{}}
		for _, id := range r.inService {
			if r.view[id][a.Hash] {
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
