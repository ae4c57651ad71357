// Package certs owns the edge's certificates and TLS policy: one serving path
// ([Manager.GetCertificate]) in front of three ways to get certificates — ACME (any RFC 8555
// CA, Let's Encrypt by default, HTTP-01 and TLS-ALPN-01), a local self-signed CA, and
// operator-provided files reloaded on change.
//
// The classic failure of self-hosted TLS is a certificate that expires unnoticed, so every
// renewal failure is visible (corpintel_cert_renewal_failures_total, [Manager.Status]) and
// the expiry metric corpintel_cert_expiry_timestamp_seconds is measured by a [Prober] on the
// certificate the listener actually serves, read from a real handshake, never from a file.
//
// Everything time-dependent runs on an injected [Clock]; [Manager.Run] is the only loop
// (renewals, file polling, OCSP, session ticket key rotation).
//
// State lives in one directory (certificates, keys, the ACME account): files are 0600,
// written atomically (temp + fsync + rename), and the directory is locked against a second
// writer for the Manager's lifetime.
package certs
