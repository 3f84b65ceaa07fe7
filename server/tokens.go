package server

import (
	"fmt"
	"net/http"
	"sort"
	"time"

	"github.com/labstack/echo/v4"

	"depot/depot"
	"depot/server/api"
)

// listTokens: GET /v1/tokens, the tokens of the catalog and of the tokens
// file, without secrets or hashes.
func (s *Server) listTokens(c echo.Context) error {
	toks, err := s.coord.Catalog().Tokens(c.Request().Context())
	if err != nil {
		return err
	}
	if s.cfg.Tokens != nil {
		toks = append(toks, s.cfg.Tokens.Tokens()...)
	}
	sort.Slice(toks, func(i, j int) bool { return toks[i].Name < toks[j].Name })
	return c.JSON(http.StatusOK, api.List[api.Token]{Items: convert(nonNil(toks), wireToken)})
}

// createToken: POST /v1/tokens {"name","role"} → 201 with the secret,
// shown this once.
func (s *Server) createToken(c echo.Context) error {
	var body api.TokenCreateRequest
	if err := s.decodeJSON(c, &body, `{"name": "ci-upload", "role": "operator"}`); err != nil {
		return err
	}
	role, err := depot.ParseRole(body.Role)
	if err != nil {
		return err
	}
	if e := auditOf(c); e != nil {
		e.Target = body.Name
	}
	secret, tok, err := s.coord.Catalog().CreateToken(c.Request().Context(), body.Name, role, s.fileHasToken, auditOf(c))
	if err != nil {
		return err
	}
	return c.JSON(http.StatusCreated, api.TokenCreated{Token: wireToken(tok), Secret: secret})
}

// revokeToken: DELETE /v1/tokens/{name}, 204; the token stops working at
// once. Tokens of the tokens file are removed by editing the file.
func (s *Server) revokeToken(c echo.Context) error {
	name, err := pathParam(c, "name")
	if err != nil {
		return err
	}
	if s.fileHasToken(name) {
		return withMessage(fmt.Errorf("%w: %q is a token of the tokens file", depot.ErrInvalidToken, name),
			fmt.Sprintf("token %q comes from the tokens file: remove its line there (the file is re-read within a second)", name))
	}
	if err := s.coord.Catalog().RevokeToken(c.Request().Context(), name, auditOf(c)); err != nil {
		return err
	}
	return c.NoContent(http.StatusNoContent)
}

func (s *Server) fileHasToken(name string) bool {
	return s.cfg.Tokens != nil && s.cfg.Tokens.Has(name)
}

func wireToken(t depot.Token) api.Token {
	out := api.Token{Name: t.Name, Role: t.Role, Source: t.Source, CreatedBy: t.CreatedBy}
	if !t.TimeCreated.IsZero() {
		out.TimeCreated = t.TimeCreated.UTC().Format(time.RFC3339Nano)
	}
	return out
}
