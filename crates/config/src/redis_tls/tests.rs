//! The TLS settings: read and decoded at load when the URL asks for TLS, refused when they
//! would do nothing, and every file problem named with its setting and path, never its contents.

#![allow(clippy::result_large_err, reason = "figment::Jail closures must return figment::Error, which is large")]

use figment::Jail;

use crate::{ConfigError, Settings, TrustedRoots};

/// PEM framing around arbitrary bytes: this module decodes PEM, it does not judge X.509.
const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----\nMIIBAAEC\n-----END CERTIFICATE-----\n";
const PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1ieXRlcw==\n-----END PRIVATE KEY-----\n";

fn load(jail: &mut Jail, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    jail.clear_env();
    jail.set_env("APP_ENV", "test");
    for (name, value) in env {
        jail.set_env(name, value);
    }
    Settings::load()
}

#[test]
fn rediss_reads_the_ca_and_the_client_identity() {
    Jail::expect_with(|jail| {
        jail.create_file("ca.pem", &format!("{CERTIFICATE}{CERTIFICATE}"))?;
        jail.create_file("client.pem", CERTIFICATE)?;
        jail.create_file("client.key", PRIVATE_KEY)?;
        let settings = load(
            jail,
            &[
                ("REDIS_URL", "rediss://cache.internal:6380"),
                ("TESSERA_REDIS_CA_FILE", "ca.pem"),
                ("TESSERA_REDIS_CERT_FILE", "client.pem"),
                ("TESSERA_REDIS_KEY_FILE", "client.key"),
            ],
        )
        .map_err(|error| error.to_string())?;
        let tls = settings.redis.tls.as_ref().expect("rediss:// turns TLS on");
        let TrustedRoots::CaFile { path, certificates } = &tls.trusted_roots else { panic!("{tls:?}") };
        assert_eq!((path.to_str(), certificates.len()), (Some("ca.pem"), 2));
        let identity = tls.client_identity.as_ref().expect("cert and key given");
        assert_eq!(identity.certificates.len(), 1);
        let debug = format!("{settings:?}");
        assert!(
            debug.contains("[redacted]") && !debug.contains("115, 101, 99") && !debug.contains("7365637265"),
            "the key leaked: {debug}"
        );
        Ok(())
    });
}

#[test]
fn tls_without_files_trusts_the_system_roots_for_every_tls_scheme() {
    Jail::expect_with(|jail| {
        for url in ["rediss://h", "rediss-cluster://h:7000", "rediss-sentinel://h/0?sentinelServiceName=s"] {
            let settings = load(jail, &[("REDIS_URL", url)]).map_err(|error| error.to_string())?;
            let tls = settings.redis.tls.expect("TLS on");
            assert!(matches!(tls.trusted_roots, TrustedRoots::System), "{url}");
            assert!(tls.client_identity.is_none(), "{url}");
        }
        let plain = load(jail, &[("REDIS_URL", "redis://h")]).map_err(|error| error.to_string())?;
        assert!(plain.redis.tls.is_none());
        Ok(())
    });
}

#[test]
fn bad_tls_settings_name_the_setting_and_the_path_in_one_line() {
    Jail::expect_with(|jail| {
        jail.create_file("ca.pem", CERTIFICATE)?;
        jail.create_file("client.pem", CERTIFICATE)?;
        jail.create_file("client.key", PRIVATE_KEY)?;
        jail.create_file("notes.txt", "secret-content of a file that is not PEM\n")?;
        jail.create_file("broken.pem", "-----BEGIN CERTIFICATE-----\nsecret-content\n")?;
        type Case<'a> = (&'a [(&'a str, &'a str)], &'a str, &'a str);
        let cases: &[Case<'_>] = &[
            (&[("REDIS_URL", "redis://h"), ("TESSERA_REDIS_CA_FILE", "ca.pem")], "TESSERA_REDIS_CA_FILE", "TLS is off"),
            (&[("REDIS_HOST", "h"), ("TESSERA_REDIS_KEY_FILE", "client.key")], "TESSERA_REDIS_KEY_FILE", "TLS is off"),
            (
                &[("REDIS_URL", "redis-cluster://h"), ("TESSERA_REDIS_CERT_FILE", "client.pem")],
                "TESSERA_REDIS_CERT_FILE",
                "TLS is off",
            ),
            (
                &[("REDIS_URL", "rediss://h"), ("TESSERA_REDIS_CERT_FILE", "client.pem")],
                "TESSERA_REDIS_CERT_FILE",
                "without TESSERA_REDIS_KEY_FILE",
            ),
            (
                &[("REDIS_URL", "rediss://h"), ("TESSERA_REDIS_KEY_FILE", "client.key")],
                "TESSERA_REDIS_KEY_FILE",
                "without TESSERA_REDIS_CERT_FILE",
            ),
            (
                &[("REDIS_URL", "rediss://h"), ("TESSERA_REDIS_CA_FILE", "absent.pem")],
                "TESSERA_REDIS_CA_FILE",
                "cannot read absent.pem",
            ),
            (
                &[("REDIS_URL", "rediss://h"), ("TESSERA_REDIS_CA_FILE", "notes.txt")],
                "TESSERA_REDIS_CA_FILE",
                "notes.txt holds no PEM certificate",
            ),
            (
                &[("REDIS_URL", "rediss://h"), ("TESSERA_REDIS_CA_FILE", "broken.pem")],
                "TESSERA_REDIS_CA_FILE",
                "broken.pem is not a valid PEM file",
            ),
            (
                &[
                    ("REDIS_URL", "rediss://h"),
                    ("TESSERA_REDIS_CERT_FILE", "client.pem"),
                    ("TESSERA_REDIS_KEY_FILE", "client.pem"),
                ],
                "TESSERA_REDIS_KEY_FILE",
                "client.pem holds no PEM private key",
            ),
        ];
        for (env, setting, problem) in cases {
            let error = load(jail, env).expect_err("refused");
            let text = error.to_string();
            assert_eq!(error.setting, *setting, "{env:?}: {text}");
            assert!(text.contains(problem) && text.contains("from environment"), "{env:?}: {text}");
            assert_eq!(text.lines().count(), 1, "{text}");
            assert!(!text.contains("secret-content"), "file contents leaked: {text}");
        }
        Ok(())
    });
}
