//! The rustls client configuration for `rediss://`: roots (the system's, or only the private CA
//! of `TESSERA_REDIS_CA_FILE`), an optional client certificate, and host-name verification that
//! cannot be turned off, on rustls' `ring` crypto provider. Also turns a failed handshake into
//! words an operator can act on (`handshake_problem`), read from the rustls error's name in
//! fred's error text, since fred hands that error over only as a string.
//!
//! Cluster nodes are verified against the address the cluster announces for them (fred's
//! `TlsHostMapping::None`): their IP, or the host name Redis 7 announces with
//! `cluster-announce-hostname`. Rewriting announced IPs to the seed's host name would accept a
//! certificate for a name the node was never reached by; the certificates must name the
//! addresses the cluster gives out instead.

use std::sync::Arc;

use fred::types::config::{TlsConfig, TlsConnector, TlsHostMapping};
use rustls::{ClientConfig, RootCertStore, crypto::ring};

use config::{RedisTls, TrustedRoots};

/// The fred TLS configuration for these settings, or why it cannot be built (one line).
pub(crate) fn tls_config(tls: &RedisTls) -> Result<TlsConfig, String> {
    let builder = ClientConfig::builder_with_provider(Arc::new(ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|error| format!("no TLS protocol version available: {error}"))?
        .with_root_certificates(trusted_roots(&tls.trusted_roots)?);
    let client_config = match &tls.client_identity {
        None => builder.with_no_client_auth(),
        Some(identity) => {
            builder.with_client_auth_cert(identity.certificates.clone(), identity.key.clone_key()).map_err(|error| {
                format!(
                    "the client certificate {} or its key {} is unusable: {error}",
                    identity.cert_path.display(),
                    identity.key_path.display()
                )
            })?
        }
    };
    Ok(TlsConfig { connector: TlsConnector::from(client_config), hostnames: TlsHostMapping::None })
}

fn trusted_roots(roots: &TrustedRoots) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match roots {
        TrustedRoots::CaFile { path, certificates } => {
            for certificate in certificates {
                store.add(certificate.clone()).map_err(|error| {
                    format!("TESSERA_REDIS_CA_FILE {} holds a certificate rustls refuses: {error}", path.display())
                })?;
            }
        }
        TrustedRoots::System => {
            // A trust store with a few unreadable entries is still usable; an empty one is not.
            let system = rustls_native_certs::load_native_certs();
            let (added, _ignored) = store.add_parsable_certificates(system.certs);
            if added == 0 {
                let why = system.errors.first().map(ToString::to_string).unwrap_or_else(|| "it is empty".to_owned());
                return Err(format!(
                    "no system CA certificates could be loaded ({why}); set TESSERA_REDIS_CA_FILE to the CA that signs \
                     the redis server's certificate"
                ));
            }
        }
    }
    Ok(store)
}

/// What went wrong in a failed TLS handshake, in words an operator can act on, read from fred's
/// text of the rustls error (fred flattens it into a string); `None` when the failure was not
/// about TLS (connection refused, a wrong password).
pub(crate) fn handshake_problem(details: &str) -> Option<&'static str> {
    const PROBLEMS: &[(&str, &str)] = &[
        ("UnknownIssuer", "the server's certificate is not signed by a trusted CA (check TESSERA_REDIS_CA_FILE)"),
        (
            "NotValidForName",
            "the server's certificate does not name the host connected to (host-name verification is always on)",
        ),
        ("Expired", "the server's certificate has expired"),
        ("NotValidYet", "the server's certificate is not valid yet"),
        ("BadSignature", "the server's certificate has a bad signature"),
        (
            "CertificateRequired",
            "the server requires a client certificate (TESSERA_REDIS_CERT_FILE and TESSERA_REDIS_KEY_FILE)",
        ),
        ("BadCertificate", "the server refused the client certificate"),
        ("UnknownCA", "the server does not trust the client certificate's CA"),
        ("InvalidCertificate", "the server's certificate is invalid"),
        ("InvalidContentType", "the server does not speak TLS on this port"),
        ("CorruptMessage", "the server does not speak TLS on this port"),
    ];
    PROBLEMS.iter().find(|(marker, _)| details.contains(marker)).map(|(_, problem)| *problem)
}
