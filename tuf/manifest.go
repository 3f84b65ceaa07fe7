package tuf

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ManifestTarget is the TUF target path of the artifact manifest.
const ManifestTarget = "artifacts.json"

// Manifest is the artifacts.json target: the system version a repository
// delivers and the artifacts it is made of.
type Manifest struct {
	// Format is FormatV1 (artifacts.json) or FormatV2 (artifacts-v2.json).
	Format        string             `json:"-"`
	SystemVersion string             `json:"system_version"`
	Artifacts     []ManifestArtifact `json:"artifacts"`
	// Metadata is the v2 manifest's repository metadata, as given.
	Metadata map[string]string `json:"metadata,omitempty"`
}

// ManifestArtifact is one artifact of a Manifest. Target names the TUF target
// holding its content; Length and SHA256 are that target's signed length and
// hash, filled in by Repository.Manifest (zero from ParseManifest).
type ManifestArtifact struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Kind    string `json:"kind"`
	Target  string `json:"target"`
	// Tags are a v2 artifact's tags, as given (nil for v1).
	Tags map[string]string `json:"tags,omitempty"`

	Length int64    `json:"-"`
	SHA256 [32]byte `json:"-"`
}

// ParseManifest parses an artifacts.json document. Unknown fields are
// ignored; system_version and artifacts are required, and every artifact
// needs a non-empty name, version, kind and target. Two artifacts with the
// same (kind, name, version) are an error. Errors are *Error with Check
// "manifest".
func ParseManifest(b []byte) (*Manifest, error) {
	// Pointers tell a missing or null field from an empty one.
	var raw struct {
		SystemVersion *string `json:"system_version"`
		Artifacts     *[]*struct {
			Name    *string `json:"name"`
			Version *string `json:"version"`
			Kind    *string `json:"kind"`
			Target  *string `json:"target"`
		} `json:"artifacts"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return nil, manifestErr("malformed JSON: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, manifestErr("data after the JSON document")
	}
	if raw.SystemVersion == nil || *raw.SystemVersion == "" {
		return nil, manifestErr("system_version missing")
	}
	if raw.Artifacts == nil {
		return nil, manifestErr("artifacts missing")
	}
	m := &Manifest{Format: FormatV1, SystemVersion: *raw.SystemVersion, Artifacts: make([]ManifestArtifact, 0, len(*raw.Artifacts))}
	type key struct{ kind, name, version string }
	seen := map[key]int{}
	for i, a := range *raw.Artifacts {
		if a == nil {
			return nil, manifestErr("artifact %d is null", i)
		}
		for _, f := range []struct {
			name string
			v    *string
		}{{"name", a.Name}, {"version", a.Version}, {"kind", a.Kind}, {"target", a.Target}} {
			if f.v == nil || *f.v == "" {
				return nil, manifestErr("artifact %d: %s missing", i, f.name)
			}
		}
		k := key{*a.Kind, *a.Name, *a.Version}
		if j, dup := seen[k]; dup {
			return nil, manifestErr("artifacts %d and %d are both kind %q, name %q, version %q", j, i, k.kind, k.name, k.version)
		}
		seen[k] = i
		m.Artifacts = append(m.Artifacts, ManifestArtifact{Name: *a.Name, Version: *a.Version, Kind: *a.Kind, Target: *a.Target})
	}
	return m, nil
}

// resolveManifest fills in each artifact's length and hash from the verified
// targets; every artifact must name one, and no two artifacts of a kind may
// share content.
func resolveManifest(m *Manifest, byPath map[string]*resolvedTarget) error {
	type key struct {
		kind string
		sum  [32]byte
	}
	seen := map[key]int{}
	for i := range m.Artifacts {
		a := &m.Artifacts[i]
		t := byPath[a.Target]
		if t == nil {
			return manifestErr("artifact %d (%s %q %s): target %q is not in the repository", i, a.Kind, a.Name, a.Version, a.Target)
		}
		a.Length, a.SHA256 = t.Length, t.SHA256
		k := key{a.Kind, t.SHA256}
		if j, dup := seen[k]; dup {
			return manifestErr("artifacts %d and %d are both kind %q with sha256 %s", j, i, a.Kind, hex.EncodeToString(t.SHA256[:]))
		}
		seen[k] = i
	}
	return nil
}

// clone returns a deep copy, so callers cannot change the repository's.
func (m *Manifest) clone() *Manifest {
	c := *m
	c.Artifacts = append([]ManifestArtifact(nil), m.Artifacts...)
	for i := range c.Artifacts {
		c.Artifacts[i].Tags = cloneTags(c.Artifacts[i].Tags)
	}
	c.Metadata = cloneTags(m.Metadata)
	return &c
}

func cloneTags(m map[string]string) map[string]string {
	if m == nil {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

func (a ManifestArtifact) String() string {
	return fmt.Sprintf("%s %s %s (%s)", a.Kind, a.Name, a.Version, a.Target)
}
