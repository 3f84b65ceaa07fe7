package tuf

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"regexp"
)

// ManifestV2Target is the TUF target path of a tufaceous v2 manifest: every
// artifact its own target, described by a map of tags, no composites.
const ManifestV2Target = "artifacts-v2.json"

// Manifest formats.
const (
	FormatV1 = "tufaceous-v1" // artifacts.json
	FormatV2 = "tufaceous-v2" // artifacts-v2.json
)

// VersionRE is the syntax of an artifact version in tufaceous repositories.
var VersionRE = regexp.MustCompile(`^[a-zA-Z0-9._+-]{1,63}$`)

// ParseManifestV2 parses an artifacts-v2.json document: system_version,
// artifacts (target_name, version, tags) and metadata. Every artifact needs
// a target name, a version and a "kind" tag; its Kind is derived from its
// tags (DeriveKind) and its Name is its zone name for zones, else its
// target name. Unknown fields are ignored. Errors are *Error with Check
// "manifest".
func ParseManifestV2(b []byte) (*Manifest, error) {
	var raw struct {
		SystemVersion *string `json:"system_version"`
		Artifacts     []*struct {
			TargetName *string            `json:"target_name"`
			Version    *string            `json:"version"`
			Tags       *map[string]string `json:"tags"`
		} `json:"artifacts"`
		Metadata map[string]string `json:"metadata"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		return nil, manifestErr("%s: malformed JSON: %w", ManifestV2Target, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, manifestErr("%s: data after the JSON document", ManifestV2Target)
	}
	if raw.SystemVersion == nil || *raw.SystemVersion == "" {
		return nil, manifestErr("%s: system_version missing", ManifestV2Target)
	}
	m := &Manifest{Format: FormatV2, SystemVersion: *raw.SystemVersion, Metadata: raw.Metadata,
		Artifacts: make([]ManifestArtifact, 0, len(raw.Artifacts))}
	type key struct{ kind, name, version string }
	seen := map[key]int{}
	for i, a := range raw.Artifacts {
		switch {
		case a == nil:
			return nil, manifestErr("%s: artifact %d is null", ManifestV2Target, i)
		case a.TargetName == nil || *a.TargetName == "":
			return nil, manifestErr("%s: artifact %d: target_name missing", ManifestV2Target, i)
		case a.Version == nil || *a.Version == "":
			return nil, manifestErr("%s: artifact %d: version missing", ManifestV2Target, i)
		case a.Tags == nil || (*a.Tags)["kind"] == "":
			return nil, manifestErr("%s: artifact %d: tags need a \"kind\"", ManifestV2Target, i)
		}
		tags := *a.Tags
		kind := DeriveKind(tags)
		name := *a.TargetName
		if tags["kind"] == "zone" && tags["zone_name"] != "" {
			name = tags["zone_name"]
		}
		k := key{kind, name, *a.Version}
		if j, dup := seen[k]; dup {
			return nil, manifestErr("%s: artifacts %d and %d are both kind %q, name %q, version %q", ManifestV2Target, j, i, k.kind, k.name, k.version)
		}
		seen[k] = i
		m.Artifacts = append(m.Artifacts, ManifestArtifact{
			Name: name, Version: *a.Version, Kind: kind, Target: *a.TargetName, Tags: tags,
		})
	}
	return m, nil
}

// DeriveKind names the artifact kind its tufaceous v2 tags describe, in the
// vocabulary of the kinds Nexus derives from v1 repositories where one
// exists: os_phase_1 → "<board>_host_phase_1" / "<board>_trampoline_phase_1",
// os_phase_2 → "host_phase_2" / "trampoline_phase_2", rot → "rot_image_a" /
// "rot_image_b", zone → "zone"; sp, rot_bootloader, installinator_document,
// measurement_corpus and unknown kinds keep their "kind" tag.
func DeriveKind(tags map[string]string) string {
	variant := func() string {
		if tags["os_variant"] == "recovery" {
			return "trampoline"
		}
		return "host"
	}
	switch k := tags["kind"]; k {
	case "os_phase_1":
		if b := tags["os_board"]; b != "" {
			return b + "_" + variant() + "_phase_1"
		}
		return variant() + "_phase_1"
	case "os_phase_2":
		return variant() + "_phase_2"
	case "rot":
		if s := tags["rot_slot"]; s == "a" || s == "b" {
			return "rot_image_" + s
		}
		return "rot"
	default:
		return k
	}
}
