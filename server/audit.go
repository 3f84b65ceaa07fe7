package server

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"depot/depot"
	"depot/server/api"
)

// defaultAuditPage is GET /v1/audit's page size without ?limit.
const defaultAuditPage = 100

// getAudit: GET /v1/audit?since=SEQ&limit=N&wait=30s. Records with seq >
// since, oldest first, each exactly as stored with its hash. With wait,
// and nothing after since yet, it long-polls until a record is appended.
func (s *Server) getAudit(c echo.Context) error {
	since, err := uintParam(c, "since", 0)
	if err != nil {
		return err
	}
	limit, err := uintParam(c, "limit", defaultAuditPage)
	if err != nil {
		return err
	}
	if limit < 1 || limit > depot.MaxAuditPage {
		return withMessage(fmt.Errorf("%w: limit %d", api.ErrBadRequest, limit),
			fmt.Sprintf("limit must be between 1 and %d", depot.MaxAuditPage))
	}
	wait, err := waitParam(c)
	if err != nil {
		return err
	}
	cat := s.coord.Catalog()
	// Take the change channel before reading, so no append is missed.
	changes := cat.AuditChanges()
	recs, head, err := cat.Audit(c.Request().Context(), since, int(limit))
	if err == nil && len(recs) == 0 && wait > 0 {
		ctx, cancel := s.longPoll(c)
		defer cancel()
		timer := time.NewTimer(wait)
		defer timer.Stop()
		select {
		case <-changes:
			recs, head, err = cat.Audit(ctx, since, int(limit))
		case <-timer.C:
		case <-ctx.Done():
		}
	}
	if err != nil {
		return err
	}
	page := api.AuditPage{Items: make([]json.RawMessage, len(recs)), HeadSeq: head}
	for i, r := range recs {
		page.Items[i] = r.Line
	}
	return c.JSON(http.StatusOK, page)
}

// uintParam parses a non-negative integer query parameter.
func uintParam(c echo.Context, name string, def uint64) (uint64, error) {
	v := c.QueryParam(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, withMessage(fmt.Errorf("%w: %s %q", api.ErrBadRequest, name, v),
			fmt.Sprintf("%s=%q is not a non-negative integer", name, v))
	}
	return n, nil
}
