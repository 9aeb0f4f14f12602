//! Certificates for the TLS tests, made fresh by each test with the `openssl` command line
//! (present wherever Debian's redis-server is): a CA, a server certificate from it for
//! `localhost` and `127.0.0.1`, one for `localhost` only, a client certificate, and a second,
//! unrelated CA. EC P-256 keys: fast to make, and both rustls and Redis's OpenSSL take them.
//!
//! The files live in a temporary directory removed on drop.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

/// The files of one test's certificates.
#[derive(Debug)]
pub struct TestCertificates {
    dir: PathBuf,
}

/// A certificate and its private key, as paths.
#[derive(Debug, Clone)]
pub struct CertificateFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCertificates {
    /// Makes every certificate the TLS tests use in a new temporary directory.
    pub fn create() -> Self {
        let dir =
            std::env::temp_dir().join(format!("tessera-test-tls-{}-{}", std::process::id(), crate::ports::free_port()));
        std::fs::create_dir_all(&dir).unwrap();
        let certificates = Self { dir };
        certificates.self_signed_ca("ca", "Tessera Test CA");
        certificates.self_signed_ca("other-ca", "Unrelated Test CA");
        certificates.signed(
            "server",
            "localhost",
            "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth",
        );
        certificates.signed("localhost-only", "localhost", "subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth");
        certificates.signed("client", "tessera-client", "extendedKeyUsage=clientAuth");
        certificates
    }

    /// The CA that signed every certificate here.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.crt")
    }

    /// A CA that signed none of them.
    pub fn other_ca(&self) -> PathBuf {
        self.dir.join("other-ca.crt")
    }

    /// Valid for `localhost` and `127.0.0.1`, usable as server and as client certificate
    /// (Redis presents it when it connects out: replication, sentinel to primary).
    pub fn server(&self) -> CertificateFiles {
        self.pair("server")
    }

    /// Valid for the DNS name `localhost` only: connecting to `127.0.0.1` must be refused.
    pub fn localhost_only_server(&self) -> CertificateFiles {
        self.pair("localhost-only")
    }

    pub fn client(&self) -> CertificateFiles {
        self.pair("client")
    }

    /// A file in this directory, for tests that need a broken one.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn pair(&self, name: &str) -> CertificateFiles {
        CertificateFiles { cert: self.dir.join(format!("{name}.crt")), key: self.dir.join(format!("{name}.key")) }
    }

    fn self_signed_ca(&self, name: &str, common_name: &str) {
        let mut args = key_and_request("-x509", name, &format!("{name}.crt"), common_name);
        args.extend(
            [
                "-days",
                "2",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ]
            .map(str::to_owned),
        );
        openssl(&self.dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
    }

    fn signed(&self, name: &str, common_name: &str, extensions: &str) {
        std::fs::write(self.dir.join(format!("{name}.ext")), format!("basicConstraints=CA:FALSE\n{extensions}\n"))
            .unwrap();
        let args = key_and_request("-new", name, &format!("{name}.csr"), common_name);
        openssl(&self.dir, &args.iter().map(String::as_str).collect::<Vec<_>>());
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                &format!("{name}.crt"),
                "-days",
                "2",
                "-extfile",
                &format!("{name}.ext"),
            ],
        );
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new P-256 key, unencrypted: the arguments shared by every `openssl req` here.
const NEW_KEY: [&str; 5] = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
/// `openssl req MODE` with a new key written to `NAME.key`, the certificate or request to
/// `output`, for `/CN=common_name`.
fn key_and_request(mode: &str, name: &str, output: &str, common_name: &str) -> Vec<String> {
    let mut args = vec!["req".to_owned(), mode.to_owned()];
    args.extend(NEW_KEY.map(str::to_owned));
    args.extend(["-keyout".to_owned(), format!("{name}.key"), "-out".to_owned(), output.to_owned()]);
    args.extend(["-subj".to_owned(), format!("/CN={common_name}")]);
    args
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|error| panic!("cannot run openssl (install the openssl package): {error}"));
    assert!(output.status.success(), "openssl {} failed: {}", args.join(" "), String::from_utf8_lossy(&output.stderr));
}
