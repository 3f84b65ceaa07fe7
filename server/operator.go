package server

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"depot/depot"
	"depot/depot/semver"
	"depot/server/api"
)

// operatorRoutes mounts the operator API (DESIGN.md §3) on the operator
// listener. Without the coordinator role each route answers 404
// NOT_COORDINATOR.
func (s *Server) operatorRoutes(e *echo.Echo) {
	const repos = "/system/update/repositories"
	const roots = "/system/update/trust-roots"
	// Every operator route is in this group. requireCoordinator and then
	// authorize (auth.go) run before any of a body is read; authorize
	// refuses routes missing from its table.
	g := e.Group("/v1", s.requireCoordinator, s.authorize)
	g.PUT(repos, s.uploadRepo, s.limitBody(s.cfg.MaxRepoSize, "--max-repo-size"), s.writeSlot)
	g.GET(repos, s.listRepos)
	g.GET(repos+"/:system_version", s.getRepo)
	g.DELETE(repos+"/:system_version", s.deleteRepo)
	g.POST(roots, s.addTrustRoot, s.limitBody(maxTrustRootBody, ""))
	g.GET(roots, s.listTrustRoots)
	g.GET(roots+"/:trust_root_id", s.getTrustRoot)
	g.DELETE(roots+"/:trust_root_id", s.deleteTrustRoot)
	g.GET("/sleds", s.listSleds)
	g.GET("/sleds/:id", s.getSled)
	g.PUT("/sleds/:id", s.putSled, s.limitBody(maxSmallJSONBody, ""))
	g.DELETE("/sleds/:id", s.expungeSled)
	g.GET("/replication/status", s.replicationStatus)
	g.POST("/replication/activate", s.activateReplication)
	g.GET("/audit", s.getAudit)
	g.GET("/tokens", s.listTokens)
	g.POST("/tokens", s.createToken, s.limitBody(maxSmallJSONBody, ""))
	g.DELETE("/tokens/:name", s.revokeToken)
}

// requireCoordinator answers 404 NOT_COORDINATOR, before any of the body
// is read, on a daemon without the coordinator role.
func (s *Server) requireCoordinator(next echo.HandlerFunc) echo.HandlerFunc {
	return func(c echo.Context) error {
		if s.coord == nil {
			return notCoordinator(nil)
		}
		return next(c)
	}
}

func notCoordinator(cause error) error {
	err := depot.ErrNotCoordinator
	if cause != nil {
		err = fmt.Errorf("%w: %w", depot.ErrNotCoordinator, cause)
	}
	return withMessage(err,
		"this daemon runs with --coordinator=false, so it serves no operator API (/v1); send this request to the rack's coordinator")
}

// uploadRepo streams a repository archive into the upload saga:
// PUT /v1/system/update/repositories?file_name=NAME[&system_version=V].
func (s *Server) uploadRepo(c echo.Context) error {
	fileName := c.QueryParam("file_name")
	if fileName == "" {
		return withMessage(fmt.Errorf("%w: no file_name", api.ErrBadRequest),
			"file_name is required: PUT /v1/system/update/repositories?file_name=repo.zip")
	}
	r := c.Request()
	body := s.newBodyReader(c)
	audit := auditOf(c)
	res, err := s.coord.Upload(r.Context(), fileName, c.QueryParam("system_version"), body, r.ContentLength, audit)
	c.Set(ctxBytesIn, body.n)
	if err != nil {
		return body.explain(err)
	}
	if audit != nil {
		audit.Target = res.Repo.SystemVersion // for an archive already recorded, which changes nothing
	}
	return c.JSON(http.StatusOK, wireUploadResult(res))
}

// Sort modes of the operator API's lists (the first is the default).
var (
	repoSorts = []sortMode{
		{"version_ascending", semver.CompareStrings},
		{"version_descending", reversed(semver.CompareStrings)},
	}
	idSorts = []sortMode{{"id_ascending", strings.Compare}}
)

// listRepos: GET /v1/system/update/repositories, paginated.
func (s *Server) listRepos(c echo.Context) error {
	q, err := pageParam(c, repoSorts)
	if err != nil {
		return err
	}
	repos, err := s.coord.Catalog().Repos(c.Request().Context())
	if err != nil {
		return err
	}
	page, next := paginate(repos, func(r depot.Repo) string { return r.SystemVersion }, q)
	return c.JSON(http.StatusOK, api.Page[api.Repo]{Items: convert(page, wireRepo), NextPage: next})
}

// getRepo: GET /v1/system/update/repositories/{system_version}?wait=30s.
// With wait it long-polls: it answers as soon as the repository's progress
// differs from what it was when the request came, or when the wait ends.
func (s *Server) getRepo(c echo.Context) error {
	sv, err := pathParam(c, "system_version")
	if err != nil {
		return err
	}
	wait, err := waitParam(c)
	if err != nil {
		return err
	}
	until, err := untilParam(c)
	if err != nil {
		return err
	}
	// Take the change channel before reading, so no change is missed.
	changes := s.coord.Changes()
	p, err := s.progress(c.Request().Context(), sv)
	if err != nil || wait <= 0 || (until >= 0 && stateRank(p.State) >= until) {
		// until: a client waiting for a state that was reached between
		// two of its polls is told at once, not at the next change.
		return s.writeProgress(c, p, err)
	}
	ctx, cancel := s.longPoll(c)
	defer cancel()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-changes:
		case <-timer.C:
			return s.writeProgress(c, p, nil)
		case <-ctx.Done():
			return s.writeProgress(c, p, nil)
		}
		changes = s.coord.Changes()
		np, err := s.progress(ctx, sv)
		if err != nil || !sameProgress(p, np) {
			return s.writeProgress(c, np, err) // a deleted repository is a change too
		}
		p = np
	}
}

// stateRank orders repository states: replicating < durable < complete.
func stateRank(state string) int {
	switch state {
	case depot.RepoComplete:
		return 2
	case depot.RepoDurable:
		return 1
	case depot.RepoReplicating:
		return 0
	}
	return -1
}

// untilParam parses ?until=durable|complete (or replicating); -1 if absent.
func untilParam(c echo.Context) (int, error) {
	v := c.QueryParam("until")
	if v == "" {
		return -1, nil
	}
	if r := stateRank(v); r >= 0 {
		return r, nil
	}
	return 0, withMessage(fmt.Errorf("%w: until %q", api.ErrBadRequest, v),
		fmt.Sprintf("until=%q is not a repository state: use durable or complete", v))
}

func (s *Server) progress(ctx context.Context, systemVersion string) (depot.RepoProgress, error) {
	repo, err := s.coord.Catalog().Repo(ctx, systemVersion)
	if err != nil {
		return depot.RepoProgress{}, err
	}
	p := s.rep.Progress(repo)
	p.Artifacts = nonNil(p.Artifacts)
	p.Repo.Artifacts = nonNil(p.Repo.Artifacts)
	return p, nil
}

func (s *Server) writeProgress(c echo.Context, p depot.RepoProgress, err error) error {
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, wireRepoProgress(p))
}

// sameProgress reports whether a long-poll has nothing new to tell: the
// same state, sled count and holders of every artifact.
func sameProgress(a, b depot.RepoProgress) bool {
	if a.State != b.State || a.InService != b.InService || a.MinReplication != b.MinReplication ||
		a.Hash != b.Hash || len(a.Artifacts) != len(b.Artifacts) {
		return false
	}
	for i := range a.Artifacts {
		if a.Artifacts[i].Hash != b.Artifacts[i].Hash || !slices.Equal(a.Artifacts[i].Sleds, b.Artifacts[i].Sleds) {
			return false
		}
	}
	return true
}

// deleteRepo: DELETE /v1/system/update/repositories/{system_version}, 204.
func (s *Server) deleteRepo(c echo.Context) error {
	sv, err := pathParam(c, "system_version")
	if err != nil {
		return err
	}
	if _, err := s.coord.DeleteRepo(c.Request().Context(), sv, auditOf(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// addTrustRoot: POST /v1/system/update/trust-roots with a root.json body;
// 201 with the record, also when the document was already trusted (the
// existing record: omicron's document declares 201 only).
func (s *Server) addTrustRoot(c echo.Context) error {
	body := s.newBodyReader(c)
	doc, err := io.ReadAll(body)
	if err != nil {
		return body.explain(err)
	}
	if !json.Valid(doc) {
		return withMessage(fmt.Errorf("%w: trust root is not JSON", api.ErrBadRequest),
			"the body is not JSON; send a TUF root.json document")
	}
	root, _, err := s.coord.AddTrustRoot(c.Request().Context(), doc, "api", auditOf(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, wireTrustRoot(root))
}

// listTrustRoots: GET /v1/system/update/trust-roots, paginated.
func (s *Server) listTrustRoots(c echo.Context) error {
	q, err := pageParam(c, idSorts)
	if err != nil {
		return err
	}
	roots, err := s.coord.Catalog().TrustRoots(c.Request().Context())
	if err != nil {
		return err
	}
	page, next := paginate(roots, func(r depot.TrustRoot) string { return r.ID }, q)
	return c.JSON(http.StatusOK, api.Page[api.TrustRoot]{Items: convert(page, wireTrustRoot), NextPage: next})
}

// getTrustRoot: GET /v1/system/update/trust-roots/{trust_root_id}.
func (s *Server) getTrustRoot(c echo.Context) error {
	id, err := uuidParam(c, "trust_root_id")
	if err != nil {
		return err
	}
	root, err := s.coord.Catalog().TrustRoot(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, wireTrustRoot(root))
}

// deleteTrustRoot: DELETE /v1/system/update/trust-roots/{trust_root_id},
// 204.
func (s *Server) deleteTrustRoot(c echo.Context) error {
	id, err := uuidParam(c, "trust_root_id")
	if err != nil {
		return err
	}
	if err := s.coord.Catalog().DeleteTrustRoot(c.Request().Context(), id, auditOf(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

// listSleds: GET /v1/sleds, paginated.
func (s *Server) listSleds(c echo.Context) error {
	q, err := pageParam(c, idSorts)
	if err != nil {
		return err
	}
	sleds, err := s.coord.Catalog().Sleds(c.Request().Context())
	if err != nil {
		return err
	}
	page, next := paginate(sleds, func(r depot.SledRecord) string { return r.ID }, q)
	return c.JSON(http.StatusOK, api.Page[api.SledRecord]{Items: convert(page, wireSledRecord), NextPage: next})
}

// getSled: GET /v1/sleds/{id}.
func (s *Server) getSled(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	rec, err := s.coord.Catalog().Sled(c.Request().Context(), id)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, wireSledRecord(rec))
}

// putSled: PUT /v1/sleds/{id} with {"control_url", "depot_url"}; the
// record as stored, then an activation brings the sled up to date.
func (s *Server) putSled(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	var body api.SledPut
	if err := s.decodeJSON(c, &body, `{"control_url": "http://host:port", "depot_url": "http://host:port"}`); err != nil {
		return err
	}
	rec, err := s.coord.Catalog().PutSled(c.Request().Context(), depot.SledRecord{ID: id, ControlURL: body.ControlURL, DepotURL: body.DepotURL}, auditOf(c))
	if err != nil {
		return err
	}
	s.rep.Activate()
	return c.JSON(http.StatusOK, wireSledRecord(rec))
}

// expungeSled: DELETE /v1/sleds/{id}; the expunged record.
func (s *Server) expungeSled(c echo.Context) error {
	id, err := pathParam(c, "id")
	if err != nil {
		return err
	}
	if id == depot.LocalSledID {
		return fmt.Errorf("%w: %q is the coordinator's own sled, which is always a member and cannot be expunged", depot.ErrInvalidSled, id)
	}
	rec, err := s.coord.Catalog().ExpungeSled(c.Request().Context(), id, auditOf(c))
	if err != nil {
		return err
	}
	s.rep.Activate()
	return c.JSON(http.StatusOK, wireSledRecord(rec))
}

// replicationStatus: GET /v1/replication/status?wait=30s. With wait it
// long-polls: it answers at the first change of the catalog or of
// replication, or when the wait ends.
func (s *Server) replicationStatus(c echo.Context) error {
	wait, err := waitParam(c)
	if err != nil {
		return err
	}
	if wait > 0 {
		changes := s.coord.Changes()
		ctx, cancel := s.longPoll(c)
		defer cancel()
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-changes:
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	st := s.rep.Status(c.Request().Context())
	st.Sleds = nonNil(st.Sleds)
	st.Recent = nonNil(st.Recent)
	return c.JSON(http.StatusOK, wireReplicationStatus(st))
}

// activateReplication: POST /v1/replication/activate, 202.
func (s *Server) activateReplication(c echo.Context) error {
	s.rep.Activate()
	return c.JSON(http.StatusAccepted, api.Empty{})
}

// nonNil returns s, or an empty slice for nil, so JSON says [] not null.
func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
