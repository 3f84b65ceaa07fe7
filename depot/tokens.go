package depot

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"depot/depot/authtoken"
	"depot/store"
)

// Operator tokens. A token is "depot_" followed by 43 base64url characters
// (32 random bytes); only its SHA-256 is ever stored, in the catalog's
// "tokens" bucket (name → Token) with an index "token_hashes" (hash →
// name), or in a tokens file (see ParseTokensFile). Tokens are high-entropy,
// so an unsalted SHA-256 is enough: the hash reveals nothing useful, and
// lookups go by hash.
var (
	bucketTokens      = []byte("tokens")
	bucketTokenHashes = []byte("token_hashes")
)

// Errors of the token store.
var (
	// ErrTokenExists: a token with that name exists (in the catalog or in
	// the tokens file).
	ErrTokenExists = errors.New("token exists")
	// ErrTokenNotFound: no token with that name in the catalog.
	ErrTokenNotFound = errors.New("token not found")
	// ErrInvalidToken: a token request with a bad name or role.
	ErrInvalidToken = errors.New("invalid token request")
)

// Role is what an identity may do on the operator API (ordered; see
// package authtoken).
type Role = authtoken.Role

// Roles, lowest first. RoleNone may do nothing.
const (
	RoleNone     = authtoken.None
	RoleViewer   = authtoken.Viewer
	RoleOperator = authtoken.Operator
	RoleAdmin    = authtoken.Admin
)

// ParseRole parses "viewer", "operator" or "admin"; ErrInvalidToken
// otherwise.
func ParseRole(s string) (Role, error) {
	r, err := authtoken.ParseRole(s)
	if err != nil {
		return r, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	return r, nil
}

// TokenHash is the SHA-256 of a token's secret.
type TokenHash = authtoken.Hash

// HashToken returns the hash a token is stored and looked up under.
func HashToken(secret string) TokenHash { return authtoken.HashSecret(secret) }

// ParseTokenHash parses "sha256:<64 hex>".
func ParseTokenHash(s string) (TokenHash, error) { return authtoken.ParseHash(s) }

// Token is one operator token, without its secret.
type Token struct {
	Name        string    `json:"name"`
	Role        string    `json:"role"`
	Hash        string    `json:"hash"`   // "sha256:<hex>"
	Source      string    `json:"source"` // "api" or "file"
	TimeCreated time.Time `json:"time_created,omitzero"`
	CreatedBy   string    `json:"created_by,omitempty"`
}

// validTokenName: 1-64 characters of [A-Za-z0-9._-], so names are safe in
// logs, audit records and the tokens file.
func validTokenName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w: token name must be 1 to 64 characters", ErrInvalidToken)
	}
	for i := 0; i < len(name); i++ {
		switch c := name[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("%w: a token name may hold only letters, digits, '.', '_' and '-'", ErrInvalidToken)
		}
	}
	return nil
}

// CreateToken makes a token with a fresh secret, records its hash (and
// e's audit record) and returns the secret, which is not kept anywhere.
// reserved reports names taken elsewhere (the tokens file); nil means none.
func (c *Catalog) CreateToken(ctx context.Context, name string, role Role, reserved func(string) bool, e *AuditEntry) (string, Token, error) {
	if err := validTokenName(name); err != nil {
		return "", Token{}, err
	}
	if role == RoleNone {
		return "", Token{}, fmt.Errorf("%w: role must be viewer, operator or admin", ErrInvalidToken)
	}
	if reserved != nil && reserved(name) {
		return "", Token{}, fmt.Errorf("%w: %q is a token of the tokens file", ErrTokenExists, name)
	}
	secret := authtoken.NewSecret()
	h := HashToken(secret)
	tok := Token{Name: name, Role: role.String(), Hash: h.String(), Source: "api", TimeCreated: time.Now().UTC()}
	if e != nil {
		tok.CreatedBy = e.Actor
	}
	err := c.kv.update(ctx, func(tx kvTx) error {
		b := tx.Bucket(bucketTokens)
		if b.Get([]byte(name)) != nil {
			return fmt.Errorf("%w: %q", ErrTokenExists, name)
		}
		v, err := json.Marshal(tok)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(name), v); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTokenHashes).Put(h[:], []byte(name)); err != nil {
			return err
		}
		return c.appendAudit(tx, e)
	})
	if err != nil {
		return "", Token{}, err
	}
	return secret, tok, nil
}

// RevokeToken deletes a token of the catalog; it stops working at once.
func (c *Catalog) RevokeToken(ctx context.Context, name string, e *AuditEntry) error {
	return c.kv.update(ctx, func(tx kvTx) error {
		b := tx.Bucket(bucketTokens)
		v := b.Get([]byte(name))
		if v == nil {
			return fmt.Errorf("%w: %q", ErrTokenNotFound, name)
		}
		var tok Token
		if err := json.Unmarshal(v, &tok); err != nil {
			return fmt.Errorf("decode token %q: %w", name, err)
		}
		h, err := ParseTokenHash(tok.Hash)
		if err != nil {
			return err
		}
		if err := tx.Bucket(bucketTokenHashes).Delete(h[:]); err != nil {
			return err
		}
		if err := b.Delete([]byte(name)); err != nil {
			return err
		}
		return c.appendAudit(tx, e)
	})
}

// Tokens returns the catalog's tokens, sorted by name.
func (c *Catalog) Tokens(ctx context.Context) ([]Token, error) {
	var out []Token
	err := c.kv.view(ctx, func(tx kvTx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var t Token
			if err := json.Unmarshal(v, &t); err != nil {
				return fmt.Errorf("decode token %q: %w", k, err)
			}
			out = append(out, t)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// HasTokens reports whether the catalog holds any token.
func (c *Catalog) HasTokens(ctx context.Context) (bool, error) {
	var any bool
	err := c.kv.view(ctx, func(tx kvTx) error {
		k, _ := tx.Bucket(bucketTokens).First()
		any = k != nil
		return nil
	})
	return any, err
}

// TokenByHash returns the catalog's token with this hash.
func (c *Catalog) TokenByHash(ctx context.Context, h TokenHash) (Token, bool, error) {
	var tok Token
	var found bool
	err := c.kv.view(ctx, func(tx kvTx) error {
		name := tx.Bucket(bucketTokenHashes).Get(h[:])
		if name == nil {
			return nil
		}
		v := tx.Bucket(bucketTokens).Get(name)
		if v == nil {
			return nil
		}
		found = true
		return json.Unmarshal(v, &tok)
	})
	return tok, found, err
}

// MaxTokensFileSize bounds a tokens file (about 10,000 tokens).
const MaxTokensFileSize = 1 << 20

// ParseTokensFile reads a tokens file: one token a line, three fields
// separated by spaces or tabs,
//
//	NAME ROLE sha256:<64 hex digits of SHA-256(token)>
//
// Blank lines and lines starting with # are ignored. It returns the
// well-formed tokens and one error per bad line (names repeated, bad
// roles or hashes); a bad line gives no token, so a typo never leaves a
// removed token working.
func ParseTokensFile(r io.Reader) ([]Token, []error) {
	var parsed []Token
	var lines []int
	var errs []error
	count := map[string]int{}
	sc := bufio.NewScanner(io.LimitReader(r, MaxTokensFileSize+1))
	n, read := 0, 0
	for sc.Scan() {
		n++
		line := sc.Bytes()
		read += len(line) + 1
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		f := strings.Fields(string(line))
		if len(f) != 3 {
			errs = append(errs, fmt.Errorf("line %d: want NAME ROLE sha256:HEX, found %d fields", n, len(f)))
			continue
		}
		if err := validTokenName(f[0]); err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		role, err := ParseRole(f[1])
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", n, err))
			continue
		}
		h, err := ParseTokenHash(f[2])
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w (the file holds hashes, never tokens)", n, err))
			continue
		}
		count[f[0]]++
		parsed = append(parsed, Token{Name: f[0], Role: role.String(), Hash: h.String(), Source: "file"})
		lines = append(lines, n)
	}
	if err := sc.Err(); err != nil {
		errs = append(errs, fmt.Errorf("read tokens file: %w", err))
	}
	if read > MaxTokensFileSize {
		errs = append(errs, fmt.Errorf("tokens file is over %d bytes; the rest is ignored", MaxTokensFileSize))
	}
	// A name on two lines keeps neither: which one was meant is unknown.
	var out []Token
	for i, t := range parsed {
		if count[t.Name] > 1 {
			errs = append(errs, fmt.Errorf("line %d: token name %q appears more than once; every line with it is ignored", lines[i], t.Name))
			continue
		}
		out = append(out, t)
	}
	return out, errs
}

// CatalogHasTokensAt reports, without opening the catalog for writing,
// whether the catalog file at path holds any token; a missing file holds
// none. depotd asks before it binds a non-loopback operator listener.
func CatalogHasTokensAt(path string) (bool, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: time.Second})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return false, fmt.Errorf("open catalog %s: %w", path, store.ErrLocked)
	}
	if err != nil {
		return false, fmt.Errorf("open catalog %s: %w", path, err)
	}
	defer db.Close()
	var any bool
	err = db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketTokens); b != nil {
			k, _ := b.Cursor().First()
			any = k != nil
		}
		return nil
	})
	return any, err
}
