//! Request routing and the handlers: `GET /healthz` (liveness) and `GET /readyz` (the store
//! answers PING).

use hyper::{Method, Request, Response, StatusCode};
use serde::Serialize;

use cache_toolkit::CacheClient;

use crate::response::{self, Body};

/// What every handler may use; cheap to clone into each connection.
#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) cache: CacheClient,
    pub(crate) store: std::sync::Arc<str>,
}

pub(crate) async fn route<B>(state: AppState, request: Request<B>) -> Response<Body> {
    match (request.method(), request.uri().path()) {
        (&Method::GET | &Method::HEAD, "/healthz") => healthz(),
        (&Method::GET | &Method::HEAD, "/readyz") => readyz(&state).await,
        (_, "/healthz" | "/readyz") => {
            response::error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", "use GET on this route")
        }
        _ => response::error(StatusCode::NOT_FOUND, "not_found", "no such route"),
    }
}

#[derive(Serialize)]
struct Health<'a> {
    status: &'a str,
}

fn healthz() -> Response<Body> {
    response::json(StatusCode::OK, &Health { status: "ok" })
}

#[derive(Serialize)]
struct Ready<'a> {
    status: &'a str,
    store: &'a str,
    latency_ms: f64,
}

#[derive(Serialize)]
struct NotReady<'a> {
    status: &'a str,
    error: &'a str,
    message: String,
    store: &'a str,
}

async fn readyz(state: &AppState) -> Response<Body> {
    match state.cache.ping().await {
        Ok(latency) => response::json(
            StatusCode::OK,
            &Ready { status: "ready", store: &state.store, latency_ms: latency.as_secs_f64() * 1_000.0 },
        ),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            response::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &NotReady {
                    status: "unavailable",
                    error: "store_unavailable",
                    message: error.to_string(),
                    store: &state.store,
                },
            )
        }
    }
}
