//! The route handlers. Authentication has already happened (the auth layer's rules,
//! `crate::middleware`): a handler behind a protected route is handed the [`Caller`] they
//! admitted.

use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::{
    Request, Response, StatusCode,
    body::{Bytes, Incoming},
    header::{CONTENT_TYPE, HeaderName, HeaderValue},
};
use simd_json::prelude::ValueAsScalar;

use auth_core::{IssueOptions, Principal, SessionId, UserId};

use crate::{
    audit,
    error::ApiError,
    introspection, openapi,
    response::{self, Body},
    state::AppState,
    wire,
};

/// A `HeaderName` made once: inserting a custom name given as `&str` copies it every time.
pub(crate) const USER_ID_HEADER: HeaderName = HeaderName::from_static("x-auth-user-id");

pub(crate) fn healthz() -> Response<Body> {
    response::json(StatusCode::OK, &wire::Health { status: "ok" })
}

/// Public (anyone may probe it): the answer says ready or not, never where the store is or
/// why it failed; the log line has both.
pub(crate) async fn readyz(state: &AppState) -> Response<Body> {
    match state.cache.ping().await {
        Ok(_) => response::json(StatusCode::OK, &wire::Ready { status: "ready" }),
        Err(error) => {
            tracing::warn!(store = %state.store, %error, "readiness check failed");
            response::json(
                StatusCode::SERVICE_UNAVAILABLE,
                &wire::NotReady {
                    status: "unavailable",
                    error: "store_unavailable",
                    message: "the session store cannot answer",
                },
            )
        }
    }
}

/// The OpenAPI document, as compiled in.
pub(crate) fn openapi() -> Response<Body> {
    response::raw_json(StatusCode::OK, Bytes::from_static(openapi::DOCUMENT.as_bytes()))
}

/// Who is asking, as the auth layer's rules admitted the request
/// ([`crate::middleware::Rules::admit`]).
#[derive(Debug)]
pub(crate) enum Caller {
    /// A public path: nobody in particular.
    Public,
    /// An internal path, with a key that grants its scope.
    Internal(config::InternalScope),
    /// The holder of a valid token.
    User(Principal),
}

fn principal(caller: &Caller) -> Result<&Principal, ApiError> {
    match caller {
        Caller::User(principal) => Ok(principal),
        Caller::Public | Caller::Internal(_) => Err(ApiError::InvalidToken { presented: false }),
    }
}

/// Forward-auth: 200 with `X-Auth-User-Id` and the configured metadata headers.
pub(crate) fn verify(state: &AppState, caller: &Caller) -> Result<Response<Body>, ApiError> {
    let principal = principal(caller)?;
    let mut response = response::empty(StatusCode::OK);
    let headers = response.headers_mut();
    if let Ok(value) = principal.user_id().with_key_part(|id| HeaderValue::from_bytes(id.as_bytes())) {
        headers.insert(USER_ID_HEADER, value);
    }
    // Every configured header is sent, empty when the session has no such field (or it cannot
    // be a header value): a gateway that copies response headers onto the request (Caddy's
    // copy_headers, Traefik's authResponseHeaders) then replaces whatever the client sent,
    // and Caddy 2.6 would otherwise copy its unexpanded placeholder text.
    for (field, header) in state.forward_headers.iter() {
        let value = match principal.field(field) {
            None => HeaderValue::from_static(""),
            Some(value) => {
                let text = match value.as_str() {
                    Some(text) => text.to_owned(),
                    None => simd_json::to_string(value).unwrap_or_default(),
                };
                HeaderValue::from_bytes(text.as_bytes()).unwrap_or_else(|_| {
                    tracing::warn!(field = field.as_str(), "metadata field cannot be sent as a header; sent empty");
                    HeaderValue::from_static("")
                })
            }
        };
        headers.insert(header.clone(), value);
    }
    Ok(response)
}

/// The caller's metadata, exactly as stored.
pub(crate) fn me(caller: &Caller) -> Result<Response<Body>, ApiError> {
    let principal = principal(caller)?;
    Ok(response::raw_json(StatusCode::OK, Bytes::copy_from_slice(principal.metadata_json().as_bytes())))
}

pub(crate) async fn logout(state: &AppState, caller: &Caller) -> Result<Response<Body>, ApiError> {
    let principal = principal(caller)?;
    let removed = state.auth.logout(principal.token().expose()).await?;
    audit::session_ended("logout", principal.user_id(), &principal.session_id(), removed);
    let mut response = response::empty(StatusCode::NO_CONTENT);
    if let Some(cookie) = &state.token_cookie {
        // Expired at once, with the attributes the browser needs to match the app's cookie
        // (`__Host-` cookies demand Secure and Path=/ and no Domain).
        let clear = format!("{cookie}=; Max-Age=0; Path=/; HttpOnly; Secure; SameSite=Lax");
        if let Ok(value) = HeaderValue::from_str(&clear) {
            response.headers_mut().insert(hyper::header::SET_COOKIE, value);
        }
    }
    Ok(response)
}

pub(crate) async fn issue_session(state: &AppState, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let body: wire::IssueSessionRequest = read_json(state, request).await?;
    let user_id = body.user_id.0;
    let ttl = body.ttl_seconds.map(|seconds| Duration::from_secs(seconds.0.get()));
    let issued =
        state.auth.issue(user_id.clone(), IssueOptions { metadata: body.metadata.unwrap_or_default(), ttl }).await?;
    audit::issued(&user_id, &issued.session_id);
    Ok(response::json(StatusCode::CREATED, &wire::IssuedSession::of(&issued)))
}

pub(crate) async fn list_sessions(state: &AppState, user_id: &UserId) -> Result<Response<Body>, ApiError> {
    let sessions = state.auth.list_sessions(user_id).await?;
    Ok(response::json(StatusCode::OK, &wire::Sessions::of(user_id, &sessions)))
}

pub(crate) async fn revoke_all(state: &AppState, user_id: &UserId) -> Result<Response<Body>, ApiError> {
    let revoked = state.auth.revoke_all(user_id).await?;
    audit::revoked_all(user_id, revoked);
    Ok(response::json(StatusCode::OK, &wire::Revoked { revoked }))
}

pub(crate) async fn revoke_session(
    state: &AppState,
    user_id: &UserId,
    session_id: &SessionId,
) -> Result<Response<Body>, ApiError> {
    let removed = state.auth.revoke_session(user_id, session_id).await?;
    audit::session_ended("revoke", user_id, session_id, removed);
    if removed { Ok(response::empty(StatusCode::NO_CONTENT)) } else { Err(ApiError::NotFound) }
}

/// RFC 7662: `token` as a form field or in a JSON object.
pub(crate) async fn introspect(state: &AppState, request: Request<Incoming>) -> Result<Response<Body>, ApiError> {
    let is_json = content_type_is(&request, "application/json");
    let is_form = content_type_is(&request, "application/x-www-form-urlencoded");
    let token = if is_json {
        read_json::<wire::IntrospectionRequest>(state, request).await?.token
    } else if is_form {
        let bytes = read_body(state, request).await?;
        let token = form_urlencoded::parse(&bytes).find(|(name, _)| name == "token").map(|(_, value)| value);
        token.ok_or_else(|| ApiError::BadRequest("missing field `token`".to_owned()))?.into_owned()
    } else {
        return Err(ApiError::UnsupportedMediaType);
    };
    Ok(response::json(StatusCode::OK, &introspection::describe(&state.auth, &token).await?))
}

pub(crate) fn metrics(state: &AppState) -> Response<Body> {
    let text = state.metrics.render(
        &state.cache.metrics().snapshot(),
        state.cache.embedded_stats(),
        state.cache.primary_pools(),
        state.cache.primary_gate_closed(),
    );
    let mut response = Response::new(Body::from(text));
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    response
}

fn content_type_is<B>(request: &Request<B>, expected: &str) -> bool {
    request
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .is_some_and(|value| value.trim().eq_ignore_ascii_case(expected))
}

async fn read_body(state: &AppState, request: Request<Incoming>) -> Result<Bytes, ApiError> {
    let (limit, timeout) = (state.max_body_bytes, state.body_read_timeout);
    // Bounded like the head: a client trickling its body cannot hold a connection and a task.
    let read = tokio::time::timeout(timeout, Limited::new(request.into_body(), limit).collect());
    match read.await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(error)) if error.is::<http_body_util::LengthLimitError>() => Err(ApiError::PayloadTooLarge { limit }),
        Ok(Err(error)) => Err(ApiError::BadRequest(format!("cannot read the body: {error}"))),
        Err(_) => Err(ApiError::BodyTimeout { timeout }),
    }
}

/// A JSON request body (`Content-Type: application/json`, at most the body limit) as the wire
/// type `T`.
async fn read_json<T: serde::de::DeserializeOwned>(
    state: &AppState,
    request: Request<Incoming>,
) -> Result<T, ApiError> {
    if !content_type_is(&request, "application/json") {
        return Err(ApiError::UnsupportedMediaType);
    }
    let mut bytes = read_body(state, request).await?.to_vec();
    wire::read_request(&mut bytes).map_err(|wire::BadRequestBody(message)| ApiError::BadRequest(message))
}
