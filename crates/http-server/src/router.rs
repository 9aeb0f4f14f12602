//! The router: sends each request the auth layer admitted, by its [`Route`], to its handler in
//! `handlers`. It wires the handlers to the route table; nothing below it knows of either.
//!
//! An internal route answers 404 unless the caller was admitted for that route's own scope
//! (`Caller::Internal(scope)`), whatever the auth layer's configuration: without the mark the
//! route does not exist. The imports point one way: `router` → `handlers` → `state` →
//! `metrics` → `route`.

use hyper::{Method, Request, Response, body::Incoming};
use percent_encoding::percent_decode_str;

use auth_core::{SessionId, UserId};

use crate::{
    error::ApiError,
    handlers::{self, Caller},
    response::Body,
    route::Route,
    state::AppState,
};

/// The router: Tessera's server asks it for each request the auth layer's rules admitted.
#[derive(Clone, Debug)]
pub(crate) struct Router {
    /// One reference count to bump per request instead of one per field.
    state: std::sync::Arc<AppState>,
}

impl Router {
    pub(crate) fn new(state: AppState) -> Self {
        Self { state: std::sync::Arc::new(state) }
    }

    /// The answer to `request` from `caller`.
    pub(crate) async fn respond(&self, request: Requested, caller: Caller) -> Response<Body> {
        match dispatch(&self.state, request, &caller).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }
}

/// What the router needs of a request: its method and route, and the request itself only for
/// the routes that read a body.
///
/// hyper hands a request's head over as slices of its connection's read buffer, and right
/// after handing it over reads again (to notice a client that hung up) before it polls the
/// answer: a head still held then makes it allocate a fresh 8 KiB buffer, and the head's drop
/// free the old one — two large allocations per request, which take glibc's arena lock and
/// contend across workers. So the head is dropped when the request is handed over, and what
/// the answer needs of it is copied out first (docs/PERFORMANCE.md#request-head).
pub(crate) struct Requested {
    method: Method,
    route: Route,
    /// Boxed: these routes are rare, and the request would size every request's future.
    with_body: Option<Box<Request<Incoming>>>,
}

impl Requested {
    /// The method and route of `request`; the request is kept only if its route reads a body.
    pub(crate) fn new(request: Request<Incoming>) -> Self {
        let method = request.method().clone();
        let route = Route::of(request.uri().path());
        let with_body = route.reads_body().then(|| Box::new(request));
        Self { method, route, with_body }
    }

    /// The route (for the metrics).
    pub(crate) fn route(&self) -> &Route {
        &self.route
    }
}

/// The hot routes (`/auth/verify`, `/api/me`, health) run inline; the rare ones are boxed, so
/// this future — moved and boxed once per request — stays small.
async fn dispatch(state: &AppState, request: Requested, caller: &Caller) -> Result<Response<Body>, ApiError> {
    let Requested { method, route, with_body } = request;
    let is_get = method == Method::GET || method == Method::HEAD;
    // Internal handlers run only for a caller the auth layer marked as internal, whatever the
    // layer's configuration or order: without the mark they do not exist (404).
    if let Some(scope) = route.internal_scope()
        && !matches!(caller, Caller::Internal(granted) if *granted == scope)
    {
        return Err(ApiError::NotFound);
    }
    if let Some(request) = with_body {
        return match route {
            Route::IssueSession if method == Method::POST => Box::pin(handlers::issue_session(state, *request)).await,
            Route::Introspect if method == Method::POST => Box::pin(handlers::introspect(state, *request)).await,
            route => Err(ApiError::MethodNotAllowed { allow: route.methods() }),
        };
    }
    match route {
        Route::Healthz if is_get => Ok(handlers::healthz()),
        Route::Readyz if is_get => Ok(Box::pin(handlers::readyz(state)).await),
        Route::OpenApi if is_get => Ok(handlers::openapi()),
        // Forward-auth proxies send the original request's method: accept them all.
        Route::Verify => handlers::verify(state, caller),
        Route::Me if is_get => handlers::me(caller),
        Route::Logout if method == Method::POST => Box::pin(handlers::logout(state, caller)).await,
        Route::UserSessions(user) if is_get => Box::pin(handlers::list_sessions(state, &user_id(&user)?)).await,
        Route::UserSessions(user) if method == Method::DELETE => {
            Box::pin(handlers::revoke_all(state, &user_id(&user)?)).await
        }
        Route::UserSession(user, session) if method == Method::DELETE => {
            let session = SessionId::parse(&session).ok_or(ApiError::NotFound)?;
            Box::pin(handlers::revoke_session(state, &user_id(&user)?, &session)).await
        }
        Route::Metrics if is_get => Ok(handlers::metrics(state)),
        Route::Unknown => Err(ApiError::NotFound),
        route => Err(ApiError::MethodNotAllowed { allow: route.methods() }),
    }
}

fn user_id(segment: &str) -> Result<UserId, ApiError> {
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::BadRequest("the user id in the path is not UTF-8".to_owned()))?;
    // Listing and revoking name a user who may already have sessions, written by another system
    // for an id the canonical rule refuses: those must stay reachable (issuing is canonical).
    UserId::existing(&decoded).map_err(|error| ApiError::BadRequest(format!("user id: {error}")))
}
