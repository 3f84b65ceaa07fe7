package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"depot/depot"
	"depot/store"
)

// catalogOptions say where the coordinator's catalog lives: a bbolt file
// (one coordinator) or an etcd cluster (several).
type catalogOptions struct {
	catalog     string
	etcdCA      string
	etcdCert    string
	etcdKey     string
	etcdPrefix  string
	etcdTTL     time.Duration
	etcdTimeout time.Duration
	sledID      string
}

func (c *catalogOptions) register(fs *flag.FlagSet) {
	c.registerWhere(fs)
	fs.DurationVar(&c.etcdTimeout, "etcd-timeout", 5*time.Second, "bound on one catalog transaction on etcd, retries included; past it the request answers 503 CATALOG_UNAVAILABLE")
	fs.DurationVar(&c.etcdTTL, "coordinator-ttl", 10*time.Second, "lease of a coordinator on etcd: when it dies, another leads replication and adopts its uploads within this `time`")
	fs.StringVar(&c.sledID, "sled-id", "", "this daemon's own sled id in the registry (the id its --sled entry has on the other coordinators); with it, replication drives this sled locally and other sleds copy from its registered depot URL")
}

// registerWhere registers the flags that say where the catalog is (also
// used by depotd catalog export|import).
func (c *catalogOptions) registerWhere(fs *flag.FlagSet) {
	fs.StringVar(&c.catalog, "catalog", "", "coordinator catalog: a bbolt `file` (default <data>/catalog.db), or etcd://host:port[,host:port...] for a catalog several coordinators share")
	fs.StringVar(&c.etcdCA, "etcd-ca", "", "PEM `file` of the CA etcd's server certificates are verified against (with it, etcd is reached over https)")
	fs.StringVar(&c.etcdCert, "etcd-cert", "", "PEM client certificate `file` presented to etcd (with --etcd-key)")
	fs.StringVar(&c.etcdKey, "etcd-key", "", "PEM client key `file` for --etcd-cert")
	fs.StringVar(&c.etcdPrefix, "etcd-prefix", "/depot/", "key `prefix` of this rack's catalog in etcd (several racks may share one cluster)")
}

func (c catalogOptions) isEtcd() bool { return strings.HasPrefix(c.catalog, "etcd://") }

// validate checks the flags without touching anything.
func (c catalogOptions) validate() error {
	if !c.isEtcd() {
		if c.etcdCA != "" || c.etcdCert != "" || c.etcdKey != "" {
			return errors.New("--etcd-ca, --etcd-cert and --etcd-key need --catalog etcd://...")
		}
		return nil
	}
	if (c.etcdCert == "") != (c.etcdKey == "") {
		return errors.New("--etcd-cert and --etcd-key go together")
	}
	_, err := c.endpoints()
	return err
}

// endpoints parses etcd://h1:p1,h2:p2 into client URLs.
func (c catalogOptions) endpoints() ([]string, error) {
	scheme := "http"
	if c.etcdCA != "" || c.etcdCert != "" {
		scheme = "https"
	}
	var out []string
	for _, hp := range strings.Split(strings.TrimPrefix(c.catalog, "etcd://"), ",") {
		host, port, err := net.SplitHostPort(hp)
		if err != nil || host == "" || port == "" || strings.ContainsAny(hp, "/?#@") {
			return nil, fmt.Errorf("--catalog: %q is not host:port (etcd://host:port[,host:port...])", hp)
		}
		out = append(out, scheme+"://"+net.JoinHostPort(host, port))
	}
	return out, nil
}

func (c catalogOptions) tlsConfig() (*tls.Config, error) {
	if c.etcdCA == "" && c.etcdCert == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.etcdCA != "" {
		pem, err := os.ReadFile(c.etcdCA)
		if err != nil {
			return nil, fmt.Errorf("--etcd-ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("--etcd-ca %s: no PEM certificate in it", c.etcdCA)
		}
		cfg.RootCAs = pool
	}
	if c.etcdCert != "" {
		pair, err := tls.LoadX509KeyPair(c.etcdCert, c.etcdKey)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cert/--etcd-key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// etcdOptions are the etcd flags as the catalog takes them.
func (c catalogOptions) etcdOptions() (depot.EtcdOptions, error) {
	eps, err := c.endpoints()
	if err != nil {
		return depot.EtcdOptions{}, err
	}
	tc, err := c.tlsConfig()
	if err != nil {
		return depot.EtcdOptions{}, err
	}
	return depot.EtcdOptions{Endpoints: eps, Prefix: c.etcdPrefix, TLS: tc}, nil
}

// open opens the catalog the flags name; data is the --data folder.
func (c catalogOptions) open(ctx context.Context, data string, log *slog.Logger) (*depot.Catalog, error) {
	if c.isEtcd() {
		opts, err := c.etcdOptions()
		if err != nil {
			return nil, err
		}
		opts.Logger, opts.Timeout = log, c.etcdTimeout
		cat, err := depot.OpenEtcdCatalog(ctx, opts)
		if err != nil {
			return nil, fmt.Errorf("open catalog: %w", err)
		}
		return cat, nil
	}
	path := c.path(data)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("create catalog folder: %w", err)
	}
	cat, err := depot.OpenCatalog(path, 0)
	if errors.Is(err, store.ErrLocked) {
		return nil, fmt.Errorf("another depotd is using the catalog %s (%w)", path, err)
	}
	return cat, err
}

// path is the bbolt catalog's file.
func (c catalogOptions) path(data string) string {
	if c.catalog != "" {
		return c.catalog
	}
	return filepath.Join(data, "catalog.db")
}
