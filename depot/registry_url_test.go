package depot_test

import (
	"log/slog"
	"testing"

	"depot/depot"
)

// TestReplicator_DepotURLFromRegistryOnly: every remote sled reports a
// depot URL of its own choosing in its status; copies still come only
// from the URLs in the coordinator's registry.
func TestReplicator_DepotURLFromRegistryOnly(t *testing.T) {
	r := newRack(t, 3, 2)
	r.rep = depot.NewReplicator(r.coord.coord, depot.ReplicationOptions{
		MinReplication: 2,
		Local:          depot.LocalSled{Sled: r.coord.sled, DepotURL: "http://local:1"},
		LocalStore:     r.coord.st,
		ClientFor: func(rec depot.SledRecord) depot.SledClient {
			return flakySled{depot.LocalSled{Sled: r.sleds[rec.ControlURL].sled, DepotURL: "http://attacker.example:1"}, r, rec.ControlURL}
		},
		Logger: slog.New(slog.DiscardHandler),
		Seed:   1,
	})
	res := r.upload(t, "1.0.0", 1)
	r.converge(5)
	st := r.rep.Status(t.Context())
	if st.Lifetime[depot.OpCopy].Err != 0 || st.Lifetime[depot.OpCopy].OK == 0 {
		t.Fatalf("copies: %+v (recent %+v)", st.Lifetime[depot.OpCopy], st.Recent)
	}
	for _, s := range st.Sleds {
		if s.DepotURL == "http://attacker.example:1" {
			t.Fatalf("sled %s shown with the URL it reported: %+v", s.ID, s)
		}
	}
	if p := r.rep.Progress(res.Repo); p.State != depot.RepoComplete {
		t.Fatalf("progress = %+v", p)
	}
}
