package depot_test

import (
	"errors"
	"strings"
	"testing"

	"depot/depot"
)

// TestCoordinator_Upload_SystemVersionMustBeSemver: a repository whose
// system_version is not a semantic version is refused, naming the field,
// and nothing is recorded.
func TestCoordinator_Upload_SystemVersionMustBeSemver(t *testing.T) {
	e := newCoordEnv(t)
	for _, v := range []string{"1.0", "v1.0.0", "release-7", "1.0.0.0"} {
		zip, root, _ := repoArchive(t, v, 1)
		if _, _, err := e.coord.AddTrustRoot(t.Context(), root, "test", nil); err != nil {
			t.Fatal(err)
		}
		_, err := e.upload(t, zip)
		if !errors.Is(err, depot.ErrRepoInvalid) || !strings.Contains(err.Error(), "system_version") {
			t.Fatalf("%q: err = %v, want ErrRepoInvalid naming system_version", v, err)
		}
	}
	if repos, err := e.coord.Catalog().Repos(t.Context()); err != nil || len(repos) != 0 {
		t.Fatalf("repositories after refused uploads: %+v, %v", repos, err)
	}
}
