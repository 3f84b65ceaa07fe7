/*
Package transport is what depotd's listeners and outbound calls need to be
safe on a rack network: TLS configurations whose certificates and trust
roots reload from their files without a restart, the roles a client
certificate carries, a per-listener connection cap, and the loopback test
behind "plaintext only on loopback".

# Basics

A Reloader reads a certificate, its key and the CA bundles from files, and
serves them through tls.Config values whose callbacks always see the newest
verified set:

	r, err := transport.NewReloader(transport.Files{Cert: "sled.crt", Key: "sled.key", ClientCA: "ca.crt", CA: "ca.crt"}, log)
	go r.Watch(ctx, time.Second)              // re-read on change; r.Reload() on SIGHUP
	ln = tls.NewListener(ln, r.ServerConfig(tls.RequireAndVerifyClientCert)) // mTLS
	tc := tls.Client(conn, r.ClientConfig(host)) // outbound: verify host against CA, present the client pair

Connections already open keep the certificate they were made with; new
handshakes get the new one. A file set that fails to load (a key that does
not match its certificate, a bundle without a certificate) is logged and not
swapped in: the last good set keeps serving.

A role is written in a certificate as a URI SAN depot://role/NAME
(coordinator, sled, operator). Roles are read only from a verified chain
(tls.ConnectionState.VerifiedChains), never from the unverified peer
certificates.

# Caveats

Reload is by polling (content hashes, so an unchanged file costs a read and
a hash, and a rename-into-place is seen like an edit) rather than inotify:
it works for bind mounts and symlink swaps alike, at the price of up to one
interval of delay.
*/
package transport
