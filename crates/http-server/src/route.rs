//! The route table: [`Route::of`] parses a raw path, and each route says its metrics label,
//! the methods it takes and whether it is internal. Used by the router, the metrics and the
//! logs alike; it knows nothing of handlers or of the router.

/// Which paths are internal (need the internal key): `/internal/…` and `/metrics`; the one rule
/// in `config`, which also refuses settings that would make them public.
pub(crate) use config::is_internal_path;

/// Every route, parsed from the raw path (no decoding of `/`, no normalization).
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Healthz,
    Readyz,
    OpenApi,
    Verify,
    Me,
    Logout,
    IssueSession,
    UserSessions(String),
    UserSession(String, String),
    Introspect,
    Metrics,
    Unknown,
}

impl Route {
    pub(crate) fn of(path: &str) -> Self {
        match path {
            "/healthz" => return Self::Healthz,
            "/readyz" => return Self::Readyz,
            "/openapi.json" => return Self::OpenApi,
            "/auth/verify" => return Self::Verify,
            "/api/me" => return Self::Me,
            "/api/logout" => return Self::Logout,
            "/internal/sessions" => return Self::IssueSession,
            "/internal/introspect" => return Self::Introspect,
            "/metrics" => return Self::Metrics,
            _ => {}
        }
        let Some(rest) = path.strip_prefix("/internal/users/") else { return Self::Unknown };
        let segments: Vec<&str> = rest.split('/').collect();
        match segments.as_slice() {
            [user, "sessions"] if !user.is_empty() => Self::UserSessions((*user).to_owned()),
            [user, "sessions", session] if !user.is_empty() && !session.is_empty() => {
                Self::UserSession((*user).to_owned(), (*session).to_owned())
            }
            _ => Self::Unknown,
        }
    }

    /// Every route's metrics label, in [`Self::index`] order (never the raw path).
    pub(crate) const LABELS: [&'static str; 12] = [
        "healthz",
        "readyz",
        "openapi",
        "auth_verify",
        "api_me",
        "api_logout",
        "internal_issue_session",
        "internal_user_sessions",
        "internal_user_session",
        "internal_introspect",
        "metrics",
        "unknown",
    ];

    pub(crate) fn index(&self) -> usize {
        match self {
            Self::Healthz => 0,
            Self::Readyz => 1,
            Self::OpenApi => 2,
            Self::Verify => 3,
            Self::Me => 4,
            Self::Logout => 5,
            Self::IssueSession => 6,
            Self::UserSessions(_) => 7,
            Self::UserSession(_, _) => 8,
            Self::Introspect => 9,
            Self::Metrics => 10,
            Self::Unknown => 11,
        }
    }

    /// The routes only internal callers reach.
    pub(crate) fn is_internal(&self) -> bool {
        matches!(
            self,
            Self::IssueSession | Self::UserSessions(_) | Self::UserSession(_, _) | Self::Introspect | Self::Metrics
        )
    }

    pub(crate) fn label(&self) -> &'static str {
        Self::LABELS[self.index()]
    }

    /// The methods the router serves on this route, as the `Allow` header of a 405 lists them
    /// (`/auth/verify` takes every method; an unknown route none).
    pub(crate) fn methods(&self) -> &'static str {
        match self {
            Self::Healthz | Self::Readyz | Self::OpenApi | Self::Me | Self::Metrics => "GET, HEAD",
            Self::Verify => "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS, TRACE",
            Self::Logout | Self::IssueSession | Self::Introspect => "POST",
            Self::UserSessions(_) => "GET, HEAD, DELETE",
            Self::UserSession(_, _) => "DELETE",
            Self::Unknown => "",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_paths_map_to_routes_exactly() {
        let cases = [
            ("/healthz", Route::Healthz),
            ("/healthz/", Route::Unknown),
            ("//healthz", Route::Unknown),
            ("/healthz/../api/me", Route::Unknown),
            ("/%2e%2e/api/me", Route::Unknown),
            ("/API/me", Route::Unknown),
            ("/api/me/", Route::Unknown),
            ("/api/me", Route::Me),
            ("/internal/users/42/sessions", Route::UserSessions("42".to_owned())),
            ("/internal/users/a%2Fb/sessions", Route::UserSessions("a%2Fb".to_owned())),
            ("/internal/users/42/sessions/abc", Route::UserSession("42".to_owned(), "abc".to_owned())),
            ("/internal/users//sessions", Route::Unknown),
            ("/internal/users/42/sessions/abc/x", Route::Unknown),
        ];
        for (path, route) in cases {
            assert_eq!(Route::of(path), route, "{path}");
        }
        assert!(is_internal_path("/internal/x") && is_internal_path("/metrics") && !is_internal_path("/metrics/"));
    }

    /// The auth layer asks `is_internal_path`, the router `Route::is_internal`: they must agree
    /// on every route, or a route could be reachable without the mark the router demands.
    #[test]
    fn internal_routes_are_exactly_the_internal_paths() {
        let paths = [
            "/healthz",
            "/readyz",
            "/openapi.json",
            "/auth/verify",
            "/api/me",
            "/api/logout",
            "/internal/sessions",
            "/internal/introspect",
            "/internal/users/42/sessions",
            "/internal/users/42/sessions/abc",
            "/metrics",
        ];
        for path in paths {
            assert_eq!(Route::of(path).is_internal(), is_internal_path(path), "{path}");
        }
    }
}
