//! TLS to Redis: the PEM files named by `TESSERA_REDIS_CA_FILE`, `TESSERA_REDIS_CERT_FILE` and
//! `TESSERA_REDIS_KEY_FILE`, read and decoded once at load so a missing or garbled file stops
//! start-up with the setting and the path named — never later, on the first reconnection.
//!
//! This module only decodes PEM into DER; whether a certificate is a valid X.509 one, and
//! whether the server's certificate is trusted, is for the TLS library `infra` hands them to.
//! Error texts name the path, never the file's contents, and a client identity's `Debug` shows
//! the key as `[redacted]`. Any of the three files set while the URL is not a `rediss…` one is
//! an error at load (`validate.rs`), not a file silently unused.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls_pki_types::{
    CertificateDer, PrivateKeyDer,
    pem::{self, PemObject},
};

/// TLS is on (the URL's scheme is `rediss`, `rediss-cluster` or `rediss-sentinel`): what to
/// trust and, optionally, who we are. The server's certificate is always checked against the
/// host name Tessera connects to; there is no setting to turn that off.
#[derive(Clone, Debug)]
pub struct RedisTls {
    /// The certificate authorities that may sign the server's certificate.
    pub trusted_roots: TrustedRoots,
    /// A client certificate, for servers started with `--tls-auth-clients yes`.
    pub client_identity: Option<ClientIdentity>,
}

/// Which certificate authorities the server's certificate must chain to.
#[derive(Clone, Debug)]
pub enum TrustedRoots {
    /// The operating system's trust store (what a public CA or a managed Redis needs).
    System,
    /// Only the certificates of `TESSERA_REDIS_CA_FILE` (a private CA); the system's are not
    /// trusted as well, so a certificate from any public CA is refused.
    CaFile { path: PathBuf, certificates: Vec<CertificateDer<'static>> },
}

/// A client certificate chain and its private key.
#[derive(Clone)]
pub struct ClientIdentity {
    pub cert_path: PathBuf,
    /// The client's certificate first, then any intermediates, as in the file.
    pub certificates: Vec<CertificateDer<'static>>,
    pub key_path: PathBuf,
    /// Shared because `PrivateKeyDer` is not `Clone` (it is copied only on purpose, with
    /// `clone_key`).
    pub key: Arc<PrivateKeyDer<'static>>,
}

impl fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientIdentity")
            .field("cert_path", &self.cert_path)
            .field("certificates", &self.certificates.len())
            .field("key_path", &self.key_path)
            .field("key", &"[redacted]")
            .finish()
    }
}

/// Every certificate in a PEM file; at least one.
pub(crate) fn read_certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certificates = CertificateDer::pem_file_iter(path)
        .map_err(|error| pem_problem(path, &error))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| pem_problem(path, &error))?;
    if certificates.is_empty() {
        return Err(format!("{} holds no PEM certificate (-----BEGIN CERTIFICATE-----)", path.display()));
    }
    Ok(certificates)
}

/// The first private key in a PEM file (PKCS#8, PKCS#1 or SEC1).
pub(crate) fn read_private_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|error| match error {
        pem::Error::NoItemsFound => {
            format!("{} holds no PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)", path.display())
        }
        other => pem_problem(path, &other),
    })
}

/// One line, naming the path; the PEM error's own text may quote a line of the file, so only
/// I/O errors are passed through.
fn pem_problem(path: &Path, error: &pem::Error) -> String {
    match error {
        pem::Error::Io(io) => format!("cannot read {}: {io}", path.display()),
        pem::Error::NoItemsFound => format!("{} holds no PEM item", path.display()),
        _ => format!("{} is not a valid PEM file", path.display()),
    }
}

#[cfg(test)]
mod tests;
