package server

import (
	"depot/depot"
	"depot/server/api"
	"depot/store"
)

// This file converts domain values into the bodies of server/api. Every
// conversion keeps nil as nil and empty as empty, so the JSON is the one
// the domain value would give.

// convert maps f over in; nil stays nil.
func convert[T, U any](in []T, f func(T) U) []U {
	if in == nil {
		return nil
	}
	out := make([]U, len(in))
	for i, v := range in {
		out[i] = f(v)
	}
	return out
}

func wireMirror(m store.MirrorStatus) api.MirrorStatus { return api.MirrorStatus(m) }

func wireScrub(s store.ScrubStatus) api.ScrubStatus { return api.ScrubStatus(s) }

func wireCopyCounts(c depot.CopyCounts) api.CopyCounts { return api.CopyCounts(c) }

func wireReconcile(r depot.ReconcileStatus) api.ReconcileStatus { return api.ReconcileStatus(r) }

func wireConfig(c depot.Config) api.Config {
	return api.Config{CatalogID: c.CatalogID, Generation: c.Generation, Artifacts: c.Artifacts}
}

func wireCopyJob(j depot.CopyJob) api.CopyJob {
	return api.CopyJob{
		Hash: api.Digest(j.Hash), Source: j.Source, Generation: j.Generation, State: j.State,
		Bytes: j.Bytes, Error: j.Error, Started: j.Started, Finished: j.Finished,
	}
}

func wireRepoArtifact(a depot.RepoArtifact) api.RepoArtifact {
	w := api.RepoArtifact{
		Name: a.Name, Version: a.Version, Kind: a.Kind, Hash: api.Digest(a.Hash), Size: a.Size,
		Tags: a.Tags, Board: a.Board, Sign: a.Sign,
	}
	if s := a.Source; s != nil {
		w.Source = &api.ArtifactSource{Name: s.Name, Version: s.Version, Kind: s.Kind, Hash: api.Digest(s.Hash), Path: s.Path}
	}
	return w
}

func wireRepo(r depot.Repo) api.Repo {
	return api.Repo{
		Hash: api.Digest(r.Hash), SystemVersion: r.SystemVersion, FileName: r.FileName,
		TimeCreated: r.TimeCreated, Artifacts: convert(r.Artifacts, wireRepoArtifact), Format: r.Format,
	}
}

func wireUploadResult(u depot.UploadResult) api.UploadResult {
	return api.UploadResult{Repo: wireRepo(u.Repo), Status: u.Status}
}

func wireRepoProgress(p depot.RepoProgress) api.RepoProgress {
	return api.RepoProgress{
		Repo: wireRepo(p.Repo), State: p.State, MinReplication: p.MinReplication, InService: p.InService,
		UnknownSleds: p.UnknownSleds,
		Artifacts: convert(p.Artifacts, func(a depot.ArtifactProgress) api.ArtifactProgress {
			return api.ArtifactProgress{RepoArtifact: wireRepoArtifact(a.RepoArtifact), Sleds: a.Sleds}
		}),
	}
}

func wireTrustRoot(t depot.TrustRoot) api.TrustRoot { return api.TrustRoot(t) }

func wireSledRecord(r depot.SledRecord) api.SledRecord { return api.SledRecord(r) }

func wireCounters(c depot.Counters) api.Counters {
	if c == nil {
		return nil
	}
	out := make(api.Counters, len(c))
	for op, n := range c {
		if n == nil {
			out[op] = nil
			continue
		}
		v := api.OpCounts(*n)
		out[op] = &v
	}
	return out
}

func wireReplicationStatus(st depot.ReplicationStatus) api.ReplicationStatus {
	out := api.ReplicationStatus{
		CatalogID: st.CatalogID, CatalogError: st.CatalogError, Generation: st.Generation, Activations: st.Activations, Running: st.Running,
		Coordinator: st.Coordinator, Leading: st.Leading,
		Lifetime: wireCounters(st.Lifetime),
		Sleds: convert(st.Sleds, func(s depot.SledState) api.SledState {
			return api.SledState{
				SledRecord: wireSledRecord(s.SledRecord), Mirrors: s.Mirrors, Artifacts: s.Artifacts,
				LastInventory: s.LastInventory, LastError: s.LastError, LastErrorTime: s.LastErrorTime,
				CatalogID: s.CatalogID, ConfigGeneration: s.ConfigGeneration, Conflict: s.Conflict,
			}
		}),
		Recent: convert(st.Recent, func(r depot.RequestRecord) api.RequestRecord {
			out := api.RequestRecord{
				Time: r.Time, Sled: r.Sled, Op: r.Op, Source: r.Source, Generation: r.Generation,
				DurationMS: r.DurationMS, Error: r.Error,
			}
			if r.Hash != nil {
				h := api.Digest(*r.Hash)
				out.Hash = &h
			}
			return out
		}),
		SagaRecovery: api.RecoveryStatus{
			Passes: st.SagaRecovery.Passes, TotalUndone: st.SagaRecovery.TotalUndone,
			TotalCarried: st.SagaRecovery.TotalCarried, TotalFailed: st.SagaRecovery.TotalFailed,
		},
	}
	if a := st.Last; a != nil {
		out.Last = &api.Activation{
			Started: a.Started, Finished: a.Finished, Generation: a.Generation, Sleds: a.Sleds,
			Planned: a.Planned, Counters: wireCounters(a.Counters), Converged: a.Converged, Error: a.Error,
		}
	}
	if p := st.SagaRecovery.Last; p != nil {
		v := api.RecoveryPass(*p)
		out.SagaRecovery.Last = &v
	}
	return out
}
