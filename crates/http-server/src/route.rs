//! The route table: [`Route::of`] parses a raw path, and each route says its name (the
//! [`RouteName`] of its metrics and logs), the methods it takes and whether it is internal. Used by the router, the metrics and the
//! logs alike; it knows nothing of handlers or of the router.

use config::InternalScope;

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

    /// What the route is called in metrics and logs (never the raw path).
    pub(crate) fn name(&self) -> RouteName {
        match self {
            Self::Healthz => RouteName::Healthz,
            Self::Readyz => RouteName::Readyz,
            Self::OpenApi => RouteName::OpenApi,
            Self::Verify => RouteName::Verify,
            Self::Me => RouteName::Me,
            Self::Logout => RouteName::Logout,
            Self::IssueSession => RouteName::IssueSession,
            Self::UserSessions(_) => RouteName::UserSessions,
            Self::UserSession(_, _) => RouteName::UserSession,
            Self::Introspect => RouteName::Introspect,
            Self::Metrics => RouteName::Metrics,
            Self::Unknown => RouteName::Unknown,
        }
    }

    /// The routes whose handler reads the request's body (the others need only its head).
    pub(crate) fn reads_body(&self) -> bool {
        matches!(self, Self::IssueSession | Self::Introspect)
    }

    /// The routes only internal callers reach.
    #[cfg(test)]
    pub(crate) fn is_internal(&self) -> bool {
        self.internal_scope().is_some()
    }

    /// The scope of key an internal route needs (as `config::internal_scope` says of its
    /// path, the one rule, which settings also use to refuse making such a path public);
    /// `None` for the others.
    pub(crate) fn internal_scope(&self) -> Option<InternalScope> {
        match self {
            Self::Metrics => Some(InternalScope::Metrics),
            Self::Introspect => Some(InternalScope::Introspection),
            Self::IssueSession | Self::UserSessions(_) | Self::UserSession(_, _) => Some(InternalScope::Administration),
            Self::Healthz | Self::Readyz | Self::OpenApi | Self::Verify | Self::Me | Self::Logout | Self::Unknown => {
                None
            }
        }
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

/// A route without its path parameters: the label of its metrics and log lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RouteName {
    Healthz,
    Readyz,
    OpenApi,
    Verify,
    Me,
    Logout,
    IssueSession,
    UserSessions,
    UserSession,
    Introspect,
    Metrics,
    Unknown,
}

impl RouteName {
    /// Every name, in declaration order: a name's place in it is `name as usize`.
    pub(crate) const ALL: [Self; 12] = [
        Self::Healthz,
        Self::Readyz,
        Self::OpenApi,
        Self::Verify,
        Self::Me,
        Self::Logout,
        Self::IssueSession,
        Self::UserSessions,
        Self::UserSession,
        Self::Introspect,
        Self::Metrics,
        Self::Unknown,
    ];

    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Healthz => "healthz",
            Self::Readyz => "readyz",
            Self::OpenApi => "openapi",
            Self::Verify => "auth_verify",
            Self::Me => "api_me",
            Self::Logout => "api_logout",
            Self::IssueSession => "internal_issue_session",
            Self::UserSessions => "internal_user_sessions",
            Self::UserSession => "internal_user_session",
            Self::Introspect => "internal_introspect",
            Self::Metrics => "metrics",
            Self::Unknown => "unknown",
        }
    }
}

#[cfg(test)]
mod tests {
    use config::is_internal_path;

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
            assert_eq!(Route::of(path).internal_scope(), config::internal_scope(path), "{path}: the same scope");
        }
    }

    #[test]
    fn route_names_are_listed_once_in_declaration_order() {
        let labels: std::collections::BTreeSet<&str> = RouteName::ALL.iter().map(|name| name.label()).collect();
        assert_eq!(labels.len(), RouteName::ALL.len(), "two names share a label");
        for (index, name) in RouteName::ALL.iter().enumerate() {
            assert_eq!(*name as usize, index, "{name:?} is out of place in RouteName::ALL");
        }
    }
}
