package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"depot/server/api"
)

// registry speaks the distribution registry's blob API, the peer that
// scripts/bench runs beside depotd: an upload is POST
// /v2/<name>/blobs/uploads/ then PUT <Location>&digest=sha256:<hex> with
// the whole body (a monolithic upload); a download is GET
// /v2/<name>/blobs/sha256:<hex>.
type registry struct {
	base string
	name string
	hc   *http.Client
}

func (r registry) put(ctx context.Context, d api.Digest, body []byte) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, r.base+"/v2/"+r.name+"/blobs/uploads/", nil)
	if err != nil {
		return err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return fmt.Errorf("start upload: %s", resp.Status)
	}
	loc, err := url.Parse(r.base)
	if err != nil {
		return err
	}
	if loc, err = loc.Parse(resp.Header.Get("Location")); err != nil {
		return fmt.Errorf("upload location: %w", err)
	}
	q := loc.Query()
	q.Set("digest", "sha256:"+d.String())
	loc.RawQuery = q.Encode()
	req, err = http.NewRequestWithContext(ctx, http.MethodPut, loc.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	resp, err = r.hc.Do(req)
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("finish upload: %s", resp.Status)
	}
	return nil
}

func (r registry) get(ctx context.Context, d api.Digest) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.base+"/v2/"+r.name+"/blobs/sha256:"+d.String(), nil)
	if err != nil {
		return err
	}
	resp, err := r.hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		io.Copy(io.Discard, resp.Body)
		return fmt.Errorf("get blob: %s", resp.Status)
	}
	h := sha256.New()
	if _, err := io.Copy(h, resp.Body); err != nil {
		return err
	}
	if api.Digest(h.Sum(nil)) != d {
		return fmt.Errorf("blob %s: wrong bytes", d)
	}
	return nil
}
