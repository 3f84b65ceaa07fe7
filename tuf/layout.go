package tuf

import (
	"strings"
)

// layout maps a scanned archive onto a TUF repository: metadata files by base
// name, target files by path under targets/.
type layout struct {
	prefix  string            // "" or "dir/": the optional single top-level directory
	meta    map[string]*entry // "timestamp.json", "3.root.json", ...
	targets map[string]*entry // "a/b.bin", "<hex>.b.bin", ...
}

// findLayout accepts metadata/ and targets/ at the top level, or under one
// top-level directory that holds every file (tufaceous uses "repo/"). Files
// elsewhere, and metadata in subdirectories of metadata/, are ignored.
func findLayout(a *archive) (*layout, error) {
	prefix, ok := "", false
	for _, e := range a.entries {
		if strings.HasPrefix(e.name, "metadata/") {
			ok = true
			break
		}
	}
	if !ok && len(a.entries) > 0 {
		top, _, _ := strings.Cut(a.entries[0].name, "/")
		prefix = top + "/"
		for _, e := range a.entries {
			if !strings.HasPrefix(e.name, prefix) {
				prefix = ""
				break
			}
			if strings.HasPrefix(e.name, prefix+"metadata/") {
				ok = true
			}
		}
	}
	if !ok {
		return nil, layoutErr("", "no metadata/ directory at the top level or under a single top-level directory")
	}
	l := &layout{prefix: prefix, meta: map[string]*entry{}, targets: map[string]*entry{}}
	for _, e := range a.entries {
		rel, found := strings.CutPrefix(e.name, prefix)
		if !found {
			continue
		}
		if base, ok := strings.CutPrefix(rel, "metadata/"); ok && !strings.Contains(base, "/") && e.held {
			l.meta[base] = e
		} else if p, ok := strings.CutPrefix(rel, "targets/"); ok {
			l.targets[p] = e
		}
	}
	return l, nil
}
