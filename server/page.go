package server

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"

	"github.com/labstack/echo/v4"

	"depot/server/api"
)

// Pagination of the operator API's lists, as omicron's (dropshot's):
// ?limit=N&page_token=T&sort_by=MODE, answered with {items, next_page}.
// next_page is a token for the rest, null on the last page. A token
// carries the sort mode and the key of the last item sent, so pages stay
// consistent while items come and go.

const (
	// defaultPageLimit and maxPageLimit bound ?limit (dropshot's defaults).
	defaultPageLimit = 100
	maxPageLimit     = 10000
)

// pageQuery is a parsed page request.
type pageQuery struct {
	limit int
	sort  sortMode
	after *string // key of the last item already sent; nil on the first page
}

// sortMode is one ?sort_by mode of a list: its name and how it orders
// item keys (ascending for the mode).
type sortMode struct {
	name string
	cmp  func(a, b string) int
}

// pageToken is what a page_token carries, base64url-encoded JSON.
type pageToken struct {
	Sort  string `json:"sort"`
	After string `json:"after"`
}

// pageParam parses limit, page_token and sort_by against the list's
// modes (the first is the default). Any malformed value is 400
// BAD_REQUEST naming the parameter.
func pageParam(c echo.Context, modes []sortMode) (pageQuery, error) {
	q := pageQuery{limit: defaultPageLimit, sort: modes[0]}
	bad := func(param, v, want string) error {
		return withMessage(fmt.Errorf("%w: %s %q", api.ErrBadRequest, param, v),
			fmt.Sprintf("%s=%q is not valid: %s", param, clipParam(v), want))
	}
	if v := c.QueryParam("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPageLimit {
			return q, bad("limit", v, fmt.Sprintf("want an integer from 1 to %d", maxPageLimit))
		}
		q.limit = n
	}
	names := make([]string, len(modes))
	for i, m := range modes {
		names[i] = m.name
	}
	find := func(name string) (sortMode, bool) {
		i := slices.Index(names, name)
		if i < 0 {
			return sortMode{}, false
		}
		return modes[i], true
	}
	sortBy := c.QueryParam("sort_by")
	if sortBy != "" {
		m, ok := find(sortBy)
		if !ok {
			return q, bad("sort_by", sortBy, fmt.Sprintf("want one of %v", names))
		}
		q.sort = m
	}
	if v := c.QueryParam("page_token"); v != "" {
		const want = "pass next_page from the previous answer unchanged"
		raw, err := base64.RawURLEncoding.DecodeString(v)
		var tok pageToken
		if err != nil || json.Unmarshal(raw, &tok) != nil {
			return q, bad("page_token", v, want)
		}
		m, ok := find(tok.Sort)
		if !ok || (sortBy != "" && sortBy != tok.Sort) {
			return q, bad("page_token", v, want+" (and the same sort_by, or none)")
		}
		q.sort, q.after = m, &tok.After
	}
	return q, nil
}

// clipParam shortens a parameter value for a message.
func clipParam(v string) string {
	if len(v) > 80 {
		return v[:77] + "..."
	}
	return v
}

// paginate sorts items by key in q's mode and returns the page after
// q.after, and the token for the next page (nil when this page holds the
// last item). Keys must be unique.
func paginate[T any](items []T, key func(T) string, q pageQuery) ([]T, *string) {
	sorted := slices.Clone(items)
	slices.SortStableFunc(sorted, func(a, b T) int { return q.sort.cmp(key(a), key(b)) })
	start := 0
	if q.after != nil {
		start, _ = slices.BinarySearchFunc(sorted, *q.after, func(it T, after string) int {
			if q.sort.cmp(key(it), after) <= 0 {
				return -1
			}
			return 1
		})
	}
	end := min(start+q.limit, len(sorted))
	page := sorted[start:end]
	if end >= len(sorted) {
		return nonNil(page), nil
	}
	b, _ := json.Marshal(pageToken{Sort: q.sort.name, After: key(page[len(page)-1])})
	tok := base64.RawURLEncoding.EncodeToString(b)
	return page, &tok
}

// reversed returns the descending order of cmp.
func reversed(cmp func(a, b string) int) func(a, b string) int {
	return func(a, b string) int { return cmp(b, a) }
}
