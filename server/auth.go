package server

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/labstack/echo/v4"
	"golang.org/x/time/rate"

	"depot/depot"
	"depot/server/api"
)

// Authentication and authorisation of the operator API. Every operator
// route is in operatorRules with the least role it needs; a route missing
// from the table is refused for everyone (deny by default). authorize is
// installed on the operator route group, so it holds wherever the group is
// mounted.
//
// Identities, tried in this order:
//   - dev mode (no token configured anywhere and the operator listener on
//     loopback): everyone is "anonymous (loopback)" with the admin role;
//   - "Authorization: Bearer <token>": a token of the tokens file or of the
//     catalog, looked up by its SHA-256;
//   - a verified TLS client certificate carrying a URI SAN
//     "depot://role/<viewer|operator|admin>" (see certIdentity).

// routeRule is what a route needs and how it is audited.
type routeRule struct {
	role depot.Role
	// action names the change in the audit log; "" for reads, which are
	// audited only when refused.
	action string
	// status is the route's answer when the change succeeds.
	status int
}

// operatorRules is keyed by "METHOD <echo route path>".
var operatorRules = map[string]routeRule{
	"PUT /v1/system/update/repositories":                    {depot.RoleOperator, "repo.upload", http.StatusOK},
	"GET /v1/system/update/repositories":                    {depot.RoleViewer, "", 0},
	"GET /v1/system/update/repositories/:system_version":    {depot.RoleViewer, "", 0},
	"DELETE /v1/system/update/repositories/:system_version": {depot.RoleOperator, "repo.prune", http.StatusNoContent},
	"POST /v1/system/update/trust-roots":                    {depot.RoleAdmin, "trust_root.add", http.StatusCreated},
	"GET /v1/system/update/trust-roots":                     {depot.RoleViewer, "", 0},
	"GET /v1/system/update/trust-roots/:trust_root_id":      {depot.RoleViewer, "", 0},
	"DELETE /v1/system/update/trust-roots/:trust_root_id":   {depot.RoleAdmin, "trust_root.remove", http.StatusNoContent},
	"GET /v1/sleds":                 {depot.RoleViewer, "", 0},
	"GET /v1/sleds/:id":             {depot.RoleViewer, "", 0},
	"PUT /v1/sleds/:id":             {depot.RoleOperator, "sled.put", http.StatusOK},
	"DELETE /v1/sleds/:id":          {depot.RoleAdmin, "sled.expunge", http.StatusOK},
	"GET /v1/replication/status":    {depot.RoleViewer, "", 0},
	"POST /v1/replication/activate": {depot.RoleOperator, "replication.activate", http.StatusAccepted},
	"GET /v1/audit":                 {depot.RoleViewer, "", 0},
	"GET /v1/tokens":                {depot.RoleAdmin, "", 0},
	"POST /v1/tokens":               {depot.RoleAdmin, "token.create", http.StatusCreated},
	"DELETE /v1/tokens/:name":       {depot.RoleAdmin, "token.revoke", http.StatusNoContent},
}

// DefaultAuthFailureRate is how many failed authentications per second one
// source address may make before it gets 429.
const DefaultAuthFailureRate = 10

// Actor of every caller in dev mode.
const devActor = "anonymous (loopback)"

// Keys of the echo context.
const (
	ctxIdentity = "depot.identity"
	ctxAudit    = "depot.audit"
)

// identity is who made a request.
type identity struct {
	actor string
	role  depot.Role
}

// authorize authenticates the caller, checks the route's role, and audits
// the request: refused ones here, changes in the transaction of the
// change (the handler passes auditOf(c) down), and everything else that
// has an action after the handler.
func (s *Server) authorize(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		r := c.Request()
		if c.Path() == "/v1" || c.Path() == "/v1/*" {
			// The group's catch-all (echo routes unknown paths under the
			// group here so its middleware runs): no route, so 404.
			return next(c)
		}
		src := sourceOf(r)
		rule, known := operatorRules[r.Method+" "+c.Path()]
		id, err := s.identify(r, src)
		// Nothing downstream (logs, handlers) sees the secret.
		r.Header.Del(api.AuthorizationHeader)
		if errors.Is(err, api.ErrAuthRateLimited) {
			return err
		}
		if err == nil && !known {
			err = withMessage(fmt.Errorf("%w: %s %s has no role", api.ErrForbidden, r.Method, c.Path()),
				"this route is not open to any role")
		} else if err == nil && id.role < rule.role {
			err = withMessage(fmt.Errorf("%w: %s needs %s", api.ErrForbidden, c.Path(), rule.role),
				fmt.Sprintf("%s %s needs the %s role; %s has the %s role", r.Method, c.Path(), rule.role, id.actor, id.role))
		}
		if err != nil {
			s.refuse(c, id, rule, src, err)
			return err
		}
		c.Set(ctxIdentity, id)
		if rule.action == "" {
			return next(c)
		}
		e := &depot.AuditEntry{
			Actor: id.actor, Source: src, RequestID: requestIDOf(c),
			Action: rule.action, Target: auditTarget(c), Status: rule.status,
		}
		c.Set(ctxAudit, e)
		herr := next(c)
		if _, ok := e.Recorded(); !ok && s.coord != nil {
			// Nothing changed in the catalog (a failure, a no-op, an
			// activation): record what the request got.
			if herr != nil {
				entry, _ := forError(s.fromEcho(herr, r))
				e.Status, e.ErrorCode = entry.Status, entry.Code
			} else {
				e.Status = c.Response().Status
			}
			if _, aerr := s.coord.Catalog().AppendAudit(c.Request().Context(), e); aerr != nil {
				s.log.Error("append audit record", "request_id", e.RequestID, "action", e.Action, "error", aerr)
			}
		}
		return herr
	}
}

// refuse logs and audits a refused request (never with the presented
// secret) and counts a failed authentication against its source.
func (s *Server) refuse(c echo.Context, id identity, rule routeRule, src string, err error) {
	entry, _ := forError(err)
	if entry.Status == http.StatusUnauthorized {
		s.authFails.fail(src)
		c.Response().Header().Set(api.WWWAuthenticateHeader, `Bearer realm="depot"`)
	}
	action := rule.action
	if action == "" {
		action = "read"
	}
	s.log.Warn("operator request refused", "request_id", requestIDOf(c), "source", src,
		"actor", id.actor, "method", c.Request().Method, "path", c.Path(), "status", entry.Status, "error", err)
	if s.coord == nil {
		return
	}
	e := &depot.AuditEntry{
		Actor: id.actor, Source: src, RequestID: requestIDOf(c), Action: action,
		Target: c.Request().Method + " " + c.Request().URL.Path, Status: entry.Status, ErrorCode: entry.Code,
	}
	if _, aerr := s.coord.Catalog().AppendAudit(c.Request().Context(), e); aerr != nil {
		s.log.Error("append audit record", "request_id", e.RequestID, "action", e.Action, "error", aerr)
	}
}

// identify returns who sent r, or ErrUnauthenticated / ErrAuthRateLimited.
func (s *Server) identify(r *http.Request, src string) (identity, error) {
	if s.authFails.blocked(src) {
		return identity{}, withMessage(api.ErrAuthRateLimited,
			"too many failed authentications from this address; retry after Retry-After seconds")
	}
	open, err := s.devMode(r.Context())
	if err != nil {
		return identity{}, err
	}
	if open {
		return identity{actor: devActor, role: depot.RoleAdmin}, nil
	}
	if h := r.Header.Get(api.AuthorizationHeader); h != "" {
		return s.tokenIdentity(r.Context(), h)
	}
	if id, ok := certIdentity(r); ok {
		return id, nil
	}
	return identity{}, withMessage(fmt.Errorf("%w: no credentials", api.ErrUnauthenticated),
		"the operator API needs Authorization: Bearer <token> (depotctl: --token, DEPOT_TOKEN or the token file)")
}

// tokenIdentity checks an Authorization header's bearer token.
func (s *Server) tokenIdentity(ctx context.Context, header string) (identity, error) {
	scheme, secret, _ := strings.Cut(header, " ")
	secret = strings.TrimSpace(secret)
	if !strings.EqualFold(scheme, "Bearer") || secret == "" {
		return identity{}, withMessage(fmt.Errorf("%w: not a bearer token", api.ErrUnauthenticated),
			"the Authorization header must be: Bearer <token>")
	}
	h := depot.HashToken(secret)
	tok, ok := depot.Token{}, false
	if s.cfg.Tokens != nil {
		tok, ok = s.cfg.Tokens.Lookup(h)
	}
	if !ok && s.coord != nil {
		var err error
		tok, ok, err = s.coord.Catalog().TokenByHash(ctx, h)
		if err != nil {
			return identity{}, fmt.Errorf("look up token: %w", err)
		}
	}
	if ok {
		// The lookup went by hash; compare the stored hash in constant time
		// all the same, so a lookup structure never decides alone.
		stored, err := depot.ParseTokenHash(tok.Hash)
		if err == nil && subtle.ConstantTimeCompare(stored[:], h[:]) == 1 {
			role, rerr := depot.ParseRole(tok.Role)
			if rerr == nil {
				return identity{actor: "token:" + tok.Name, role: role}, nil
			}
		}
	}
	return identity{}, withMessage(fmt.Errorf("%w: unknown or revoked token", api.ErrUnauthenticated),
		"the bearer token is not valid (unknown or revoked)")
}

// devMode reports whether the operator API is open: no tokens file, no
// token in the catalog, and the operator listener on loopback. A tokens
// file, even one emptied or deleted while running, keeps it closed: an
// edit must never open the API. Without tokens on any other address
// everything is refused.
func (s *Server) devMode(ctx context.Context) (bool, error) {
	if s.cfg.Tokens != nil {
		return false, nil
	}
	if s.coord != nil {
		has, err := s.coord.Catalog().HasTokens(ctx)
		if err != nil {
			return false, fmt.Errorf("read tokens: %w", err)
		}
		if has {
			return false, nil
		}
	}
	return IsLoopback(s.operatorAddr()), nil
}

// operatorAddr is where the operator API listens: Config.OperatorAddr, or
// the operator listener's address as Serve bound it.
func (s *Server) operatorAddr() string {
	s.addrMu.Lock()
	defer s.addrMu.Unlock()
	if s.cfg.OperatorAddr != "" {
		return s.cfg.OperatorAddr
	}
	return s.opListenAddr
}

// AuthMode is what GET /status says about the operator API's
// authentication: "bearer tokens", "disabled (loopback)", or "" without
// the coordinator role.
func (s *Server) AuthMode(ctx context.Context) string {
	if s.coord == nil {
		return ""
	}
	// /status answers at once even when the catalog (etcd) does not; an
	// unanswered check means requests are refused, as with tokens.
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if open, err := s.devMode(ctx); err == nil && open {
		return "disabled (loopback)"
	}
	return "bearer tokens"
}

// IsLoopback reports whether a listen address ("host:port") binds only
// loopback: 127.0.0.0/8, ::1 or "localhost". An empty or wildcard host is
// not loopback.
func IsLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// certIdentity reads a role from a verified client certificate: a URI SAN
// "depot://role/<viewer|operator|admin>" on the leaf of the first verified
// chain (never PeerCertificates, which nobody checked). With several role
// SANs the highest wins. The actor is "cert:<subject common name>".
func certIdentity(r *http.Request) (identity, bool) {
	if r.TLS == nil || len(r.TLS.VerifiedChains) == 0 || len(r.TLS.VerifiedChains[0]) == 0 {
		return identity{}, false
	}
	leaf := r.TLS.VerifiedChains[0][0]
	best := depot.RoleNone
	for _, u := range leaf.URIs {
		if u.Scheme != "depot" || u.Host != "role" {
			continue
		}
		if role, err := depot.ParseRole(strings.TrimPrefix(u.Path, "/")); err == nil && role > best {
			best = role
		}
	}
	if best == depot.RoleNone {
		return identity{}, false
	}
	return identity{actor: "cert:" + safeName(leaf.Subject.CommonName), role: best}, true
}

// safeName keeps a peer-chosen name printable and short for logs and the
// audit log.
func safeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if b.Len() >= 64 {
			break
		}
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// sourceOf is the client's IP address (the connection's; forwarding
// headers are not trusted).
func sourceOf(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// auditTarget is the route's path parameter (system version, id, token
// name); for an upload, the file name until the system version is known.
func auditTarget(c echo.Context) string {
	if names := c.ParamNames(); len(names) > 0 {
		return c.Param(names[len(names)-1])
	}
	if f := c.QueryParam("file_name"); f != "" {
		return "file_name=" + safeName(f)
	}
	return ""
}

// auditOf returns the request's audit entry, or nil on routes without an
// action.
func auditOf(c echo.Context) *depot.AuditEntry {
	e, _ := c.Get(ctxAudit).(*depot.AuditEntry)
	return e
}

// failLimiter counts failed authentications per source address. Safe for
// concurrent use.
type failLimiter struct {
	limit rate.Limit
	burst int

	mu sync.Mutex
	m  map[string]*rate.Limiter // guarded by mu
}

// maxTrackedSources bounds failLimiter's map; past it, idle sources are
// forgotten.
const maxTrackedSources = 10000

func newFailLimiter(perSecond float64) *failLimiter {
	if perSecond <= 0 {
		perSecond = DefaultAuthFailureRate
	}
	burst := int(perSecond)
	if burst < 1 {
		burst = 1
	}
	return &failLimiter{limit: rate.Limit(perSecond), burst: burst, m: make(map[string]*rate.Limiter)}
}

// blocked reports whether src has used up its failures for now.
func (l *failLimiter) blocked(src string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[src]
	return ok && lim.Tokens() < 1
}

// fail counts one failed authentication from src.
func (l *failLimiter) fail(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim, ok := l.m[src]
	if !ok {
		if len(l.m) >= maxTrackedSources {
			for k, v := range l.m {
				if v.Tokens() >= float64(l.burst) {
					delete(l.m, k) // idle: a full bucket
				}
			}
		}
		lim = rate.NewLimiter(l.limit, l.burst)
		l.m[src] = lim
	}
	lim.AllowN(time.Now(), 1)
}
