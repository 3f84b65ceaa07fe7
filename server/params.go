package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"depot/server/api"
	"depot/store"
)

// This file parses what requests carry: path and query parameters and
// small JSON bodies. Every parse error is a 4xx whose message says what was
// wrong with the request.

// digestParam parses the :sha256 path parameter: the one place where a hex
// string becomes a store.Digest.
func digestParam(c echo.Context) (store.Digest, error) {
	d, err := store.ParseDigest(c.Param("sha256"))
	if err != nil {
		// ParseDigest's text describes the client's input, so show it.
		return d, withMessage(err, err.Error())
	}
	return d, nil
}

// digestOf parses the path parameter name as a sha256 and returns it in
// its canonical form (INVALID_HASH when it is not one).
func digestOf(c echo.Context, name string) (string, error) {
	d, err := store.ParseDigest(c.Param(name))
	if err != nil {
		return "", withMessage(err, fmt.Sprintf("%s: %v", name, err))
	}
	return d.String(), nil
}

// uuidParam parses the path parameter name as a UUID (8-4-4-4-12 hex
// digits, either case) and returns it in lower case; 400 BAD_REQUEST
// otherwise.
func uuidParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	ok := len(v) == 36
	for i := 0; ok && i < len(v); i++ {
		ch := v[i]
		switch i {
		case 8, 13, 18, 23:
			ok = ch == '-'
		default:
			ok = ch >= '0' && ch <= '9' || ch >= 'a' && ch <= 'f' || ch >= 'A' && ch <= 'F'
		}
	}
	if !ok {
		return "", withMessage(fmt.Errorf("%w: %s is not a UUID", api.ErrBadRequest, name),
			fmt.Sprintf("%s must be a UUID such as 3f2b9c1e-8d4a-4e1b-9f0a-6c2d7e8f9a0b", name))
	}
	return strings.ToLower(v), nil
}

// pathParam returns a path parameter unescaped. echo routes on the escaped
// path when the URL has one that differs from the default encoding (say,
// "%2F" in a segment), and then hands out parameters escaped.
func pathParam(c echo.Context, name string) (string, error) {
	v := c.Param(name)
	if c.Request().URL.RawPath == "" {
		return v, nil
	}
	u, err := url.PathUnescape(v)
	if err != nil {
		return "", withMessage(fmt.Errorf("%w: %s: %v", api.ErrBadRequest, name, err),
			fmt.Sprintf("the %s in the path is not properly escaped", name))
	}
	return u, nil
}

// MaxGeneration is the largest generation accepted: omicron's Generation
// is a u64 that must fit in an i64, and one config above it would put a
// sled ahead of every generation its coordinator can send.
const MaxGeneration = math.MaxInt64

// generationParam parses ?generation=G: nil when absent.
func generationParam(c echo.Context) (*uint64, error) {
	v := c.QueryParam("generation")
	if v == "" {
		return nil, nil
	}
	g, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return nil, withMessage(fmt.Errorf("%w: generation %q: %v", api.ErrBadRequest, v, err),
			fmt.Sprintf("generation=%q is not a non-negative integer", v))
	}
	if err := checkGeneration(g, "generation="); err != nil {
		return nil, err
	}
	return &g, nil
}

// checkGeneration refuses a generation above MaxGeneration; where names
// the field for the message.
func checkGeneration(g uint64, where string) error {
	if g <= MaxGeneration {
		return nil
	}
	return withMessage(fmt.Errorf("%w: %s%d is above 2^63-1", api.ErrBadRequest, where, g),
		fmt.Sprintf("%s%d is out of range: a generation is at most %d (2^63-1)", where, g, uint64(MaxGeneration)))
}

// waitParam parses ?wait=30s: 0 when absent, at most api.MaxWait.
func waitParam(c echo.Context) (time.Duration, error) {
	v := c.QueryParam("wait")
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, withMessage(fmt.Errorf("%w: wait %q", api.ErrBadRequest, v),
			fmt.Sprintf("wait=%q is not a duration such as 30s, 1m or 1500ms", v))
	}
	return min(d, api.MaxWait), nil
}

// decodeJSON decodes the request body, which a limitBody bounds, into v,
// reading it under the stall deadline like an upload. what describes the
// expected body for the message. A body over the limit is 413 TOO_LARGE, a
// stalled one 408 BODY_TIMEOUT; anything that is not one JSON value of v's
// shape is 400 BAD_REQUEST (or INVALID_HASH for a malformed sha256 inside
// it).
func (s *Server) decodeJSON(c echo.Context, v any, what string) error {
	body := s.newBodyReader(c)
	dec := json.NewDecoder(body)
	err := dec.Decode(v)
	if err == nil {
		// One value, nothing after it but white space.
		if _, terr := dec.Token(); terr != io.EOF {
			err = errors.New("data after the JSON value")
		}
	}
	switch {
	case err == nil:
		return nil
	case body.err != nil:
		return body.explain(err)
	case errors.Is(err, store.ErrInvalidDigest):
		return withMessage(err, err.Error())
	case errors.Is(err, io.EOF):
		return withMessage(fmt.Errorf("%w: empty body", api.ErrBadRequest),
			"the body is empty; want "+what)
	}
	return withMessage(fmt.Errorf("%w: decode body: %w", api.ErrBadRequest, err),
		fmt.Sprintf("the body is not %s: %v", what, err))
}

// digestAndGeneration parses the :sha256 path parameter and the optional
// ?generation= of a write (PUT, copy-from-depot).
func digestAndGeneration(c echo.Context) (store.Digest, *uint64, error) {
	d, err := digestParam(c)
	if err != nil {
		return d, nil, err
	}
	gen, err := generationParam(c)
	return d, gen, err
}
