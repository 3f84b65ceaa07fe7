package remote

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"depot/depot"
	"depot/server/api"
	"depot/server/client"
	"depot/store"
)

// answer serves every request with the error code.
func answer(t *testing.T, status int, code string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(api.ErrorCodeHeader, code)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(api.ErrorBody{RequestID: "r1", ErrorCode: code, Message: "m"})
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestDomainErrors: what the coordinator and copy jobs match with
// errors.Is survives the wire, next to the api sentinel and the
// *client.APIError.
func TestDomainErrors(t *testing.T) {
	ctx := context.Background()
	var d store.Digest
	for _, c := range []struct {
		name   string
		status int
		code   string
		call   func(url string) error
		want   error
	}{
		{"PutConfig CONFIG_GENERATION", 409, api.CodeConfigGeneration, func(u string) error {
			return NewSledClient(u, nil).PutConfig(ctx, depot.Config{Generation: 1})
		}, depot.ErrConfigGeneration},
		{"CopyFromDepot TOO_MANY_COPIES", 429, api.CodeTooManyCopies, func(u string) error {
			return NewSledClient(u, nil).CopyFromDepot(ctx, d, 1, "http://127.0.0.1:1")
		}, depot.ErrTooManyCopies},
		{"WaitCopy NOT_FOUND", 404, api.CodeNotFound, func(u string) error {
			_, err := NewSledClient(u, nil).WaitCopy(ctx, d, time.Second)
			return err
		}, depot.ErrCopyNotFound},
		{"PutArtifact HASH_MISMATCH", 400, api.CodeHashMismatch, func(u string) error {
			return NewSledClient(u, nil).PutArtifact(ctx, d, 1, http.NoBody, 0)
		}, store.ErrHashMismatch},
		{"Fetch NOT_FOUND", 404, api.CodeNotFound, func(u string) error {
			_, _, err := Peer{}.Fetch(ctx, u, d)
			return err
		}, store.ErrNotFound},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.call(answer(t, c.status, c.code))
			// A sled's answer is an *APIError; a copy source's is a
			// *SourceError, which keeps only its status and code.
			var ae *client.APIError
			var se *client.SourceError
			var code, text string
			switch {
			case errors.As(err, &ae):
				code, text = ae.Code, ae.Error()
			case errors.As(err, &se):
				code, text = se.Code, se.Error()
			}
			if !errors.Is(err, c.want) || !errors.Is(err, api.ErrForCode(c.code)) || code != c.code {
				t.Fatalf("err = %v: want it to match %v, the api sentinel of %s and carry the code", err, c.want, c.code)
			}
			if err.Error() != text {
				t.Errorf("text %q, want the wire error's %q", err, text)
			}
		})
	}
}
