package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"depot/depot"
	"depot/server"
)

// checkOperatorAuth refuses, before anything is bound, an operator API on
// a non-loopback address with no token configured: neither --tokens-file
// nor a token in the catalog.
func checkOperatorAuth(o options) error {
	if !o.coordinator || o.tokensFile != "" || server.IsLoopback(o.operatorListen) {
		return nil
	}
	plaintext := o.net.tlsCert == "" && o.net.operatorTLSCert == ""
	if plaintext && !o.net.insecurePlaintext {
		// Refused, more fundamentally, as plain HTTP off loopback when the
		// listeners open: a token must never cross the network in clear.
		return nil
	}
	if o.cat.isEtcd() {
		// Checked once the catalog is open (operatorAuth).
		return nil
	}
	has, err := depot.CatalogHasTokensAt(o.cat.path(o.data))
	if err != nil {
		return fmt.Errorf("read tokens from the catalog: %w", err)
	}
	if !has {
		return errNoTokens(o.operatorListen)
	}
	return nil
}

func errNoTokens(addr string) error {
	return fmt.Errorf("the operator API would listen on %s, which is not loopback, with no token configured: "+
		"give --tokens-file (lines \"NAME ROLE sha256:HEX\"; depotctl tokens file-line makes one), or listen on 127.0.0.1", addr)
}

// tokensFilePoll is how often the tokens file is checked for changes.
const tokensFilePoll = 250 * time.Millisecond

// operatorAuth reads --tokens-file (and keeps re-reading it until ctx is
// done) and decides how the operator API authenticates: with tokens from
// the file or the catalog; with none on a loopback operator listener, it
// is open (dev mode, with a warning); with none elsewhere, depotd refuses
// to start.
func operatorAuth(ctx context.Context, o options, log *slog.Logger, cat *depot.Catalog) (*depot.TokenFile, error) {
	var tokens *depot.TokenFile
	if o.tokensFile != "" {
		var err error
		tokens, err = depot.OpenTokenFile(o.tokensFile, log)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file: %w", err)
		}
		go tokens.Watch(ctx, tokensFilePoll)
	}
	inCatalog, err := cat.HasTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("read tokens from the catalog: %w", err)
	}
	if (tokens != nil && tokens.Len() > 0) || inCatalog {
		return tokens, nil
	}
	if !server.IsLoopback(o.operatorListen) {
		return nil, errNoTokens(o.operatorListen)
	}
	if tokens != nil {
		log.Warn("the tokens file holds no token: every operator request is refused until one is added", "path", o.tokensFile)
		return tokens, nil
	}
	log.Warn("operator API authentication disabled: no token is configured and the operator listener is on loopback (dev mode)",
		"operator-listen", o.operatorListen)
	return tokens, nil
}
