//! Who may reach the internal routes: [`InternalScope`] (what a route needs), [`InternalKeys`]
//! (which keys grant what) and [`internal_scope`], the one rule that maps a path to its scope.
//!
//! Each job has its own credential, so a leaked key can do only its job: a metrics key scrapes
//! `/metrics` and nothing else, an introspection key asks `/internal/introspect` and nothing
//! else, and the administration key (`TESSERA_INTERNAL_KEY`) issues, lists and revokes — and,
//! so that deployments with one key keep working, may also scrape and introspect.
//!
//! [`is_internal_path`] is `internal_scope(path).is_some()`, and [`InternalKeys::granting`]
//! yields a scope's own keys followed by the administration keys. The sample keys shown in the
//! documentation and examples, which a `prod` server refuses, and the minimum key lengths are
//! defined here too (validation in `validate.rs` applies them).

use crate::Secret;

/// What an internal route needs of its caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InternalScope {
    /// `GET /metrics`: `TESSERA_METRICS_KEY` or the administration key.
    Metrics,
    /// `POST /internal/introspect`: `TESSERA_INTROSPECTION_KEY` or the administration key.
    Introspection,
    /// Every other `/internal/…` route (issue, list, revoke): the administration key only.
    Administration,
}

impl InternalScope {
    /// Every scope, in declaration order: a scope's place in it is `scope as usize`.
    pub const ALL: [Self; 3] = [Self::Metrics, Self::Introspection, Self::Administration];

    /// The scope's label in metrics and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Metrics => "metrics",
            Self::Introspection => "introspection",
            Self::Administration => "administration",
        }
    }

    /// The setting whose keys grant this scope (besides the administration key).
    pub fn setting(self) -> &'static str {
        match self {
            Self::Metrics => "TESSERA_METRICS_KEY",
            Self::Introspection => "TESSERA_INTROSPECTION_KEY",
            Self::Administration => "TESSERA_INTERNAL_KEY",
        }
    }
}

/// Paths served only to callers presenting an internal key, and the scope each needs:
/// `/metrics`, `/internal/introspect`, and the rest of `/internal/…`. The server's auth layer
/// and router use this same rule, so settings can refuse to open them.
pub fn internal_scope(path: &str) -> Option<InternalScope> {
    match path {
        "/metrics" => Some(InternalScope::Metrics),
        "/internal/introspect" => Some(InternalScope::Introspection),
        _ if path.starts_with("/internal/") => Some(InternalScope::Administration),
        _ => None,
    }
}

/// Whether `path` is internal (needs a key of some [`InternalScope`]).
pub fn is_internal_path(path: &str) -> bool {
    internal_scope(path).is_some()
}

/// The keys of each job; several per job while a key is rotated. All empty: internal routes off.
#[derive(Clone, Debug, Default)]
pub struct InternalKeys {
    /// `TESSERA_INTERNAL_KEY`: every internal route.
    pub administration: Vec<Secret>,
    /// `TESSERA_INTROSPECTION_KEY`: `/internal/introspect` only.
    pub introspection: Vec<Secret>,
    /// `TESSERA_METRICS_KEY`: `/metrics` only.
    pub metrics: Vec<Secret>,
}

impl InternalKeys {
    /// Every key with one administration key: what a service with a single key configures.
    pub fn administration_only(keys: Vec<Secret>) -> Self {
        Self { administration: keys, ..Self::default() }
    }

    /// Whether no key at all is configured (internal routes answer 404).
    pub fn is_empty(&self) -> bool {
        self.administration.is_empty() && self.introspection.is_empty() && self.metrics.is_empty()
    }

    /// The keys that grant `scope`: its own, and the administration keys.
    pub fn granting(&self, scope: InternalScope) -> impl Iterator<Item = &Secret> {
        let own: &[Secret] = match scope {
            InternalScope::Metrics => &self.metrics,
            InternalScope::Introspection => &self.introspection,
            InternalScope::Administration => &[],
        };
        own.iter().chain(&self.administration)
    }
}

/// Keys shown in this repository's documentation and examples: anyone can read them, so a
/// production server refuses them.
pub(crate) const SAMPLE_KEYS: &[&str] = &[
    "dev-internal-key-0123456789",
    "admin-key-0123456789",
    "test-internal-key-0123456789",
    "dev-metrics-key-0123456789abcdef0123",
    "dev-introspection-key-0123456789abcd",
];

/// The shortest key accepted outside production, and in production.
pub(crate) const MIN_KEY_LEN: usize = 16;
pub(crate) const MIN_PRODUCTION_KEY_LEN: usize = 32;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_internal_path_has_its_scope() {
        let cases = [
            ("/metrics", Some(InternalScope::Metrics)),
            ("/internal/introspect", Some(InternalScope::Introspection)),
            ("/internal/sessions", Some(InternalScope::Administration)),
            ("/internal/users/42/sessions", Some(InternalScope::Administration)),
            ("/internal/introspect/x", Some(InternalScope::Administration)),
            ("/metrics/", None),
            ("/healthz", None),
            ("/internal", None),
        ];
        for (path, scope) in cases {
            assert_eq!(internal_scope(path), scope, "{path}");
        }
    }

    #[test]
    fn a_job_key_grants_only_its_job_and_the_administration_key_all() {
        let keys = InternalKeys {
            administration: vec![Secret::new("admin")],
            introspection: vec![Secret::new("introspect")],
            metrics: vec![Secret::new("scrape")],
        };
        let granting = |scope| keys.granting(scope).map(|key| key.expose().to_owned()).collect::<Vec<_>>();
        assert_eq!(granting(InternalScope::Metrics), ["scrape", "admin"]);
        assert_eq!(granting(InternalScope::Introspection), ["introspect", "admin"]);
        assert_eq!(granting(InternalScope::Administration), ["admin"]);
    }
}
