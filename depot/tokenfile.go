package depot

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"
)

// TokenFile is the set of tokens of a --tokens-file, re-read when the file
// changes. Safe for concurrent use.
type TokenFile struct {
	path string
	log  *slog.Logger

	mu     sync.RWMutex
	byHash map[TokenHash]Token // guarded by mu
	names  map[string]bool     // guarded by mu
	sum    [32]byte            // guarded by mu; SHA-256 of the content last applied
	loaded bool                // guarded by mu
}

// OpenTokenFile reads the tokens file at path. Any bad line is an error
// here (the daemon refuses to start with a file it cannot fully read);
// later reloads apply the good lines and log the bad ones.
func OpenTokenFile(path string, log *slog.Logger) (*TokenFile, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &TokenFile{path: path, log: log}
	if err := f.Reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Reload re-reads the file if its content changed. A file that cannot be
// read counts as empty, so no token outlives its removal; bad lines give
// no token. It returns what went wrong, for the caller to log.
func (f *TokenFile) Reload() error {
	data, err := readSmallFile(f.path, MaxTokensFileSize+1)
	if err != nil {
		data = nil
	}
	sum := sha256.Sum256(data)
	f.mu.RLock()
	same := f.loaded && sum == f.sum && err == nil
	f.mu.RUnlock()
	if same {
		return nil
	}
	toks, errs := ParseTokensFile(bytes.NewReader(data))
	if err != nil {
		errs = append([]error{fmt.Errorf("read tokens file %s: %w (no token of the file is accepted until it can be read)", f.path, err)}, errs...)
	}
	byHash := make(map[TokenHash]Token, len(toks))
	names := make(map[string]bool, len(toks))
	for _, t := range toks {
		h, _ := ParseTokenHash(t.Hash) // parsed once already
		byHash[h] = t
		names[t.Name] = true
	}
	f.mu.Lock()
	f.byHash, f.names, f.sum, f.loaded = byHash, names, sum, err == nil
	f.mu.Unlock()
	f.log.Info("tokens file loaded", "path", f.path, "tokens", len(toks), "bad_lines", len(errs))
	return errors.Join(errs...)
}

// Watch re-reads the file every interval until ctx is done, logging what
// a reload found wrong.
func (f *TokenFile) Watch(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := f.Reload(); err != nil {
				f.log.Error("tokens file has errors; the bad lines give no token", "path", f.path, "error", err)
			}
		}
	}
}

// Lookup returns the file's token with this hash.
func (f *TokenFile) Lookup(h TokenHash) (Token, bool) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	t, ok := f.byHash[h]
	return t, ok
}

// Has reports whether the file names a token name.
func (f *TokenFile) Has(name string) bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.names[name]
}

// Len returns the number of tokens the file gives.
func (f *TokenFile) Len() int {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return len(f.byHash)
}

// Tokens returns the file's tokens.
func (f *TokenFile) Tokens() []Token {
	f.mu.RLock()
	defer f.mu.RUnlock()
	out := make([]Token, 0, len(f.byHash))
	for _, t := range f.byHash {
		out = append(out, t)
	}
	return out
}

func readSmallFile(path string, limit int64) ([]byte, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return io.ReadAll(io.LimitReader(fh, limit))
}
