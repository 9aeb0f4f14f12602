//! [`AuthLayer`]: the auth check as a tower layer — Tessera's own stack uses it, and another
//! Rust service can wrap its routes with it. Per request, on the raw path (never decoded or
//! normalized, so `/healthz/../api/me` is not `/healthz`):
//!
//! 1. an exact public path passes untouched;
//! 2. an internal path needs one of the internal keys (`X-Internal-Key`, or `Authorization:
//!    Bearer`), compared in constant time; with no key configured internal paths answer 404;
//!    nothing else (client IP, `X-Forwarded-For`, a query parameter) makes a caller internal;
//! 3. everything else needs a valid bearer token: the [`Principal`] is put in the request's
//!    extensions; a missing or invalid token gets 401, a store that cannot answer 503.
//!
//! Each response carries a [`VerifyOutcome`] extension for metrics.

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use hyper::{HeaderMap, Request, Response, body::Bytes, header::AUTHORIZATION};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use auth_core::{Authenticator, Principal, Verification};
use config::Secret;

use crate::error::ApiError;

/// The header that carries an internal key.
pub const INTERNAL_KEY_HEADER: &str = "x-internal-key";

/// Marks a request that presented a valid internal key.
#[derive(Clone, Copy, Debug)]
pub struct InternalCaller;

/// How the auth check ended, attached to every response it saw.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VerifyOutcome {
    Public,
    Internal,
    InternalRefused,
    Valid,
    /// No token, another scheme, or a malformed token: refused without touching the store.
    Rejected,
    /// The store says the token is not valid (unknown, revoked, corrupt, not listed).
    Invalid,
    Unavailable,
}

impl VerifyOutcome {
    pub fn label(self) -> &'static str {
        match self {
            Self::Public => "public",
            Self::Internal => "internal",
            Self::InternalRefused => "internal_refused",
            Self::Valid => "valid",
            Self::Rejected => "rejected",
            Self::Invalid => "invalid",
            Self::Unavailable => "unavailable",
        }
    }
}

/// The auth check as a [`tower::Layer`].
#[derive(Clone, Debug)]
pub struct AuthLayer {
    rules: Arc<Rules>,
}

#[derive(Clone, Debug)]
struct Rules {
    authenticator: Authenticator,
    public_paths: HashSet<String>,
    internal_keys: Vec<Secret>,
    is_internal: fn(&str) -> bool,
}

fn no_internal_paths(_: &str) -> bool {
    false
}

impl AuthLayer {
    /// Every path needs a bearer token until [`Self::public_paths`] or [`Self::internal`] say otherwise.
    pub fn new(authenticator: Authenticator) -> Self {
        Self {
            rules: Arc::new(Rules {
                authenticator,
                public_paths: HashSet::new(),
                internal_keys: Vec::new(),
                is_internal: no_internal_paths,
            }),
        }
    }

    /// Exact paths served without a token.
    pub fn public_paths<P: Into<String>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        Arc::make_mut(&mut self.rules).public_paths = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Paths for which `is_internal` is true need one of `keys` instead of a token (404 when
    /// `keys` is empty: internal routes are off).
    pub fn internal(mut self, keys: Vec<Secret>, is_internal: fn(&str) -> bool) -> Self {
        let rules = Arc::make_mut(&mut self.rules);
        rules.internal_keys = keys;
        rules.is_internal = is_internal;
        self
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthService { inner, rules: Arc::clone(&self.rules) }
    }
}

/// The service [`AuthLayer`] wraps around an inner service.
#[derive(Clone, Debug)]
pub struct AuthService<S> {
    inner: S,
    rules: Arc<Rules>,
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S, B, ResBody> Service<Request<B>> for AuthService<S>
where
    S: Service<Request<B>, Response = Response<ResBody>> + Clone + Send + 'static,
    S::Future: Send,
    B: Send + 'static,
    ResBody: From<Bytes> + Send + 'static,
{
    type Response = Response<ResBody>;
    type Error = S::Error;
    type Future = BoxFuture<Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(context)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready goes into the future; a fresh clone stays behind.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let rules = Arc::clone(&self.rules);
        Box::pin(async move {
            let path = request.uri().path();
            let outcome = if rules.public_paths.contains(path) {
                VerifyOutcome::Public
            } else if (rules.is_internal)(path) {
                match check_internal_key(&rules.internal_keys, request.headers()) {
                    Ok(()) => {
                        request.extensions_mut().insert(InternalCaller);
                        VerifyOutcome::Internal
                    }
                    Err(error) => {
                        if matches!(error, ApiError::InvalidInternalKey) {
                            let headers = request.headers();
                            let presented = headers.contains_key(INTERNAL_KEY_HEADER)
                                || headers.contains_key(hyper::header::AUTHORIZATION);
                            crate::audit::internal_key_refused(path, presented);
                        }
                        return Ok(refuse(error, VerifyOutcome::InternalRefused));
                    }
                }
            } else {
                // The token is borrowed from the request's headers for the verification only.
                let verification = match bearer_token(request.headers()) {
                    Ok(presented) => rules.authenticator.verify(presented).await,
                    Err(error) => return Ok(refuse(error, VerifyOutcome::Rejected)),
                };
                match verification {
                    Ok(Verification::Valid(principal)) => {
                        request.extensions_mut().insert(principal);
                        VerifyOutcome::Valid
                    }
                    Ok(Verification::Invalid(reason)) => {
                        tracing::debug!(%reason, "token refused");
                        let outcome = match reason {
                            auth_core::InvalidReason::Malformed(_) => VerifyOutcome::Rejected,
                            _ => VerifyOutcome::Invalid,
                        };
                        return Ok(refuse(ApiError::InvalidToken { presented: true }, outcome));
                    }
                    Err(error) => return Ok(refuse(ApiError::from(error), VerifyOutcome::Unavailable)),
                }
            };
            let mut response = inner.call(request).await?;
            response.extensions_mut().insert(outcome);
            Ok(response)
        })
    }
}

fn refuse<B: From<Bytes>>(error: ApiError, outcome: VerifyOutcome) -> Response<B> {
    let mut response = error.into_response();
    response.extensions_mut().insert(outcome);
    response
}

/// The token of the one `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Result<&str, ApiError> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Err(ApiError::InvalidToken { presented: false }) };
    if values.next().is_some() {
        return Err(ApiError::BadRequest("send one Authorization header, not several".to_owned()));
    }
    let text = value.to_str().map_err(|_| ApiError::InvalidToken { presented: true })?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(ApiError::InvalidToken { presented: false });
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() {
        return Err(ApiError::InvalidToken { presented: false });
    }
    Ok(token)
}

fn check_internal_key(keys: &[Secret], headers: &HeaderMap) -> Result<(), ApiError> {
    if keys.is_empty() {
        return Err(ApiError::NotFound);
    }
    let presented = match headers.get(INTERNAL_KEY_HEADER) {
        Some(value) => value.to_str().ok(),
        None => bearer_token(headers).ok(),
    };
    let Some(presented) = presented else { return Err(ApiError::InvalidInternalKey) };
    let mut matched = subtle::Choice::from(0);
    for key in keys {
        matched |= key.expose().as_bytes().ct_eq(presented.as_bytes());
    }
    if bool::from(matched) { Ok(()) } else { Err(ApiError::InvalidInternalKey) }
}

/// The principal the layer put on a request, for handlers behind it.
pub fn principal<B>(request: &Request<B>) -> Option<&Principal> {
    request.extensions().get::<Principal>()
}

#[cfg(test)]
mod tests {
    //! The layer as another service would use it: around a plain tower service, on the
    //! embedded store.

    use std::convert::Infallible;

    use http_body_util::{BodyExt, Full};
    use hyper::StatusCode;
    use tower::ServiceExt;

    use auth_core::{AuthPolicy, MetadataObject, UserId};
    use cache_toolkit::CacheClient;
    use dao::CacheDao;

    use super::*;

    type Body = Full<Bytes>;

    async fn inner(request: Request<Body>) -> Result<Response<Body>, Infallible> {
        let text = match principal(&request) {
            Some(principal) => format!("user {}", principal.user_id()),
            None if request.extensions().get::<InternalCaller>().is_some() => "internal".to_owned(),
            None => "public".to_owned(),
        };
        Ok(Response::new(Body::from(text)))
    }

    async fn call(
        layer: &AuthLayer,
        path: &str,
        authorization: Option<&str>,
    ) -> (StatusCode, String, Option<VerifyOutcome>) {
        let mut builder = Request::get(path);
        if let Some(value) = authorization {
            builder = builder.header(AUTHORIZATION, value);
        }
        let service = layer.layer(tower::service_fn(inner));
        let response = service.oneshot(builder.body(Body::default()).unwrap()).await.unwrap();
        let status = response.status();
        let outcome = response.extensions().get::<VerifyOutcome>().copied();
        let body = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned(), outcome)
    }

    fn is_admin_path(path: &str) -> bool {
        path.starts_with("/admin/")
    }

    #[tokio::test]
    async fn wraps_another_services_routes() {
        let authenticator = Authenticator::new(CacheDao::new(CacheClient::embedded()), AuthPolicy::default());
        let issued = authenticator.issue(UserId::Integer(5), MetadataObject::new(), None).await.unwrap();
        let layer = AuthLayer::new(authenticator)
            .public_paths(["/status"])
            .internal(vec![Secret::new("admin-key-0123456789")], is_admin_path);
        let valid = format!("Bearer {}", issued.token.expose());
        let cases: &[(&str, Option<&str>, StatusCode, &str, VerifyOutcome)] = &[
            ("/orders", Some(&valid), StatusCode::OK, "user 5", VerifyOutcome::Valid),
            ("/orders", None, StatusCode::UNAUTHORIZED, "invalid_token", VerifyOutcome::Rejected),
            (
                "/orders",
                Some("Bearer unknown-token-unknown-token"),
                StatusCode::UNAUTHORIZED,
                "invalid_token",
                VerifyOutcome::Invalid,
            ),
            ("/status", None, StatusCode::OK, "public", VerifyOutcome::Public),
            ("/status/", None, StatusCode::UNAUTHORIZED, "invalid_token", VerifyOutcome::Rejected),
            ("/admin/x", Some("Bearer admin-key-0123456789"), StatusCode::OK, "internal", VerifyOutcome::Internal),
            (
                "/admin/x",
                Some(&valid),
                StatusCode::UNAUTHORIZED,
                "invalid_internal_key",
                VerifyOutcome::InternalRefused,
            ),
        ];
        for (path, authorization, status, body, outcome) in cases {
            let (got_status, got_body, got_outcome) = call(&layer, path, *authorization).await;
            assert_eq!(got_status, *status, "{path} {authorization:?}: {got_body}");
            assert!(got_body.contains(body), "{path}: {got_body}");
            assert_eq!(got_outcome, Some(*outcome), "{path}");
        }
    }
}
