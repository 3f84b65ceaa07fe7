package transport

import (
	"crypto/tls"
	"net/http"
	"net/url"
	"slices"
)

// Role is what a client certificate allows its holder to do.
type Role string

// Roles of the rack.
const (
	// RoleCoordinator may mutate a sled: config, PUT, copy-from, DELETE,
	// scrub.
	RoleCoordinator Role = "coordinator"
	// RoleSled is a rack member: it may read from other sleds' depot
	// listeners.
	RoleSled Role = "sled"
	// RoleOperator is a person's or automation's certificate for the
	// operator API.
	RoleOperator Role = "operator"
)

// RoleURIScheme and RoleURIHost form the URI SAN of a role:
// depot://role/NAME.
const (
	RoleURIScheme = "depot"
	RoleURIHost   = "role"
)

// RoleURI returns the URI SAN that grants role.
func RoleURI(role Role) *url.URL {
	return &url.URL{Scheme: RoleURIScheme, Host: RoleURIHost, Path: "/" + string(role)}
}

// RolesOf returns the roles of the verified client certificate of cs, in
// certificate order; none without a verified chain. Only the leaf of the
// first verified chain counts: every chain ends at a trusted root, and the
// leaf is the same in all of them.
func RolesOf(cs *tls.ConnectionState) []Role {
	if cs == nil || len(cs.VerifiedChains) == 0 || len(cs.VerifiedChains[0]) == 0 {
		return nil
	}
	var roles []Role
	for _, u := range cs.VerifiedChains[0][0].URIs {
		if u.Scheme == RoleURIScheme && u.Host == RoleURIHost && len(u.Path) > 1 && u.RawQuery == "" && u.Fragment == "" {
			roles = append(roles, Role(u.Path[1:]))
		}
	}
	return roles
}

// HasRole reports whether r came over TLS with a verified client
// certificate that carries role.
func HasRole(r *http.Request, role Role) bool {
	return slices.Contains(RolesOf(r.TLS), role)
}

// Verified reports whether r came with a client certificate that verified
// against the listener's client CA (any role, or none).
func Verified(r *http.Request) bool {
	return r.TLS != nil && len(r.TLS.VerifiedChains) > 0
}
