//! The router: a tower service that sends each request, by its [`Route`], to its handler in
//! `handlers`. It wires the handlers to the route table; nothing below it knows of either.

use hyper::{Method, Request, Response, body::Incoming};
use percent_encoding::percent_decode_str;

use auth_core::{SessionId, UserId};

use crate::{error::ApiError, handlers, middleware::InternalCaller, response::Body, route::Route, state::AppState};

/// The router as a tower service, to sit behind [`crate::AuthLayer`].
#[derive(Clone, Debug)]
pub(crate) struct Router {
    /// One reference count to bump per request instead of one per field.
    state: std::sync::Arc<AppState>,
}

impl Router {
    pub(crate) fn new(state: AppState) -> Self {
        Self { state: std::sync::Arc::new(state) }
    }
}

impl tower::Service<Request<Incoming>> for Router {
    type Response = Response<Body>;
    type Error = std::convert::Infallible;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Response<Body>, Self::Error>> + Send>>;

    fn poll_ready(&mut self, _: &mut std::task::Context<'_>) -> std::task::Poll<Result<(), Self::Error>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Incoming>) -> Self::Future {
        let state = std::sync::Arc::clone(&self.state);
        Box::pin(async move {
            Ok(match dispatch(&state, request).await {
                Ok(response) => response,
                Err(error) => error.into_response(),
            })
        })
    }
}

/// The hot routes (`/auth/verify`, `/api/me`, health) run inline; the rare ones are boxed, so
/// this future — moved and boxed once per request — stays small.
async fn dispatch(state: &AppState, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let method = request.method().clone();
    let is_get = method == Method::GET || method == Method::HEAD;
    let route = Route::of(request.uri().path());
    // Internal handlers run only for a caller the auth layer marked as internal, whatever the
    // layer's configuration or order: without the mark they do not exist (404).
    if route.is_internal() && request.extensions().get::<InternalCaller>().is_none() {
        return Err(ApiError::NotFound);
    }
    match route {
        Route::Healthz if is_get => Ok(handlers::healthz()),
        Route::Readyz if is_get => Ok(Box::pin(handlers::readyz(state)).await),
        Route::OpenApi if is_get => Ok(handlers::openapi()),
        // Forward-auth proxies send the original request's method: accept them all.
        Route::Verify => handing_on_extensions(handlers::verify(state, &request), request),
        Route::Me if is_get => handing_on_extensions(handlers::me(&request), request),
        Route::Logout if method == Method::POST => Box::pin(handlers::logout(state, &request)).await,
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

/// A hot route's response takes over the request's extensions (the auth layer's principal), so
/// the layer's outcome goes into a map that exists instead of a new one: two allocations fewer
/// per verification.
fn handing_on_extensions(
    response: Result<Response<Body>, ApiError>,
    request: Request<Incoming>,
) -> Result<Response<Body>, ApiError> {
    response.map(|mut response| {
        if response.extensions().is_empty() {
            *response.extensions_mut() = request.into_parts().0.extensions;
        }
        response
    })
}

fn user_id(segment: &str) -> Result<UserId, ApiError> {
    let decoded = percent_decode_str(segment)
        .decode_utf8()
        .map_err(|_| ApiError::BadRequest("the user id in the path is not UTF-8".to_owned()))?;
    UserId::from_path_segment(&decoded).map_err(|error| ApiError::BadRequest(format!("user id: {error}")))
}
