package client

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"depot/server/api"
)

// Audit returns audit records with seq > since, oldest first, each as the
// server stored it (verify them with package depot/auditchain as they
// are). limit <= 0 means the server's default. With wait > 0 and nothing
// after since yet, the server answers when a record is appended or when
// wait ends.
func (c *Client) Audit(ctx context.Context, since uint64, limit int, wait time.Duration) (api.AuditPage, error) {
	q := url.Values{}
	if since > 0 {
		q.Set("since", strconv.FormatUint(since, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	if wait > 0 {
		q.Set("wait", wait.String())
	}
	var page api.AuditPage
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/audit", query: q, wait: wait,
		want: []int{http.StatusOK}, onOK: decodeInto(&page)})
	return page, err
}

// Tokens returns the operator tokens (admin role), without secrets.
func (c *Client) Tokens(ctx context.Context) ([]api.Token, error) {
	var res api.List[api.Token]
	err := c.do(ctx, call{method: http.MethodGet, path: "/v1/tokens", want: []int{http.StatusOK}, onOK: decodeInto(&res)})
	return res.Items, err
}

// CreateToken creates a token (admin role) and returns it with its
// secret, which the server does not keep. Errors: api.ErrTokenExists,
// api.ErrBadRequest (name or role).
func (c *Client) CreateToken(ctx context.Context, name, role string) (api.TokenCreated, error) {
	var res api.TokenCreated
	err := c.do(ctx, call{method: http.MethodPost, path: "/v1/tokens", json: api.TokenCreateRequest{Name: name, Role: role},
		want: []int{http.StatusCreated}, onOK: decodeInto(&res)})
	return res, err
}

// RevokeToken revokes a token of the catalog (admin role).
func (c *Client) RevokeToken(ctx context.Context, name string) error {
	return c.do(ctx, call{method: http.MethodDelete, path: "/v1/tokens/" + url.PathEscape(name), want: []int{http.StatusNoContent}})
}
