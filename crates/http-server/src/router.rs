//! The router: sends each request the auth layer admitted, by its [`Route`], to its handler in
//! `handlers`. It wires the handlers to the route table; nothing below it knows of either.

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
    pub(crate) async fn respond(&self, request: Request<Incoming>, caller: Caller) -> Response<Body> {
        match dispatch(&self.state, request, &caller).await {
            Ok(response) => response,
            Err(error) => error.into_response(),
        }
    }
}

/// The hot routes (`/auth/verify`, `/api/me`, health) run inline; the rare ones are boxed, so
/// this future — moved and boxed once per request — stays small.
async fn dispatch(state: &AppState, request: Request<Incoming>, caller: &Caller) -> Result<Response<Body>, ApiError> {
    let method = request.method().clone();
    let is_get = method == Method::GET || method == Method::HEAD;
    let route = Route::of(request.uri().path());
    // Internal handlers run only for a caller the auth layer marked as internal, whatever the
    // layer's configuration or order: without the mark they do not exist (404).
    if route.is_internal() && !matches!(caller, Caller::Internal) {
        return Err(ApiError::NotFound);
    }
    match route {
        Route::Healthz if is_get => Ok(handlers::healthz()),
        Route::Readyz if is_get => Ok(Box::pin(handlers::readyz(state)).await),
        Route::OpenApi if is_get => Ok(handlers::openapi()),
        // Forward-auth proxies send the original request's method: accept them all.
        Route::Verify => handlers::verify(state, caller),
        Route::Me if is_get => handlers::me(caller),
        Route::Logout if method == Method::POST => Box::pin(handlers::logout(state, caller)).await,
        Route::IssueSession if method == Method::POST => Box::pin(handlers::issue_session(state, request)).await,
        Route::UserSessions(user) if is_get => Box::pin(handlers::list_sessions(state, &user_id(&user)?)).await,
        Route::UserSessions(user) if method == Method::DELETE => {
            Box::pin(handlers::revoke_all(state, &user_id(&user)?)).await
        }
        Route::UserSession(user, session) if method == Method::DELETE => {
            let session = SessionId::parse(&session).ok_or(ApiError::NotFound)?;
            Box::pin(handlers::revoke_session(state, &user_id(&user)?, &session)).await
        }
        Route::Introspect if method == Method::POST => Box::pin(handlers::introspect(state, request)).await,
        Route::Metrics if is_get => Ok(handlers::metrics(state)),
        Route::Unknown => Err(ApiError::NotFound),
        route => Err(ApiError::MethodNotAllowed { allow: route.methods() }),
    }
}

fn user_id(segment: &str) -> Result<UserId, ApiError> {
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::BadRequest("the user id in the path is not UTF-8".to_owned()))?;
    UserId::from_path_segment(&decoded).map_err(|error| ApiError::BadRequest(format!("user id: {error}")))
}
