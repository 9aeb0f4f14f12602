//! [`AuthLayer`]: the auth check as a tower layer — Tessera's own server builds one and asks its
//! rules directly, and another Rust service can wrap its routes with it. Per request, on the raw
//! path (never decoded or normalized, so `/healthz/../api/me` is not `/healthz`):
//!
//! 1. an exact public path passes untouched;
//! 2. an internal path needs a key that grants the path's [`InternalScope`] (`X-Internal-Key`,
//!    or `Authorization: Bearer`): SHA-256 digests of the presented and the configured keys
//!    compared in constant time, every key every time, so neither which key matched nor any
//!    key's length shows in the timing; with no key configured internal paths answer 404;
//!    nothing else (client IP, `X-Forwarded-For`, a query parameter) makes a caller internal.
//!    Refusals are counted (`VerifyOutcome::InternalRefused`) and their audit line is written
//!    at most once a second, with the count of those left out;
//! 3. everything else needs a valid bearer token — from `Authorization: Bearer`, or, when the
//!    request has no `Authorization` header and a token cookie is configured
//!    ([`AuthLayer::token_cookie`]), from that cookie: the [`Principal`] is put in the request's
//!    extensions; a missing or invalid token gets 401, a store that cannot answer 503.
//!
//! A refusal is a [`Rejection`] saying why; by default it becomes Tessera's JSON answer
//! (`{"error": "...", "message": "..."}` with `WWW-Authenticate` or `Retry-After`), and
//! [`AuthLayer::on_rejection`] lets a service answer in its own shape. Each response carries a
//! [`VerifyOutcome`] extension for metrics.
//!
//! [`AuthLayer::internal_scoped`] gives each scope its own keys; [`AuthLayer::internal`] takes
//! one set of keys granting every internal path. Keys are held as SHA-256 digests
//! (`KeyDigests`), and `RefusalLog` is the once-a-second limit on refusal audit lines. The
//! decision itself is `Rules`: `presented` settles what needs no I/O and finds the bearer
//! token, `verify_bearer` verifies it. [`AuthService`] calls `admit`, which composes the two;
//! Tessera's own server calls them itself, with no tower boxing or extensions on the way
//! (docs/PERFORMANCE.md#request-path).

use std::{
    collections::HashSet,
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
};

use std::sync::atomic::{AtomicU64, Ordering};

use hyper::{HeaderMap, Request, Response, body::Bytes, header::AUTHORIZATION};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower::{Layer, Service};

use auth_core::{AuthError, Authenticator, Principal, Verification};
use cache_toolkit::CacheError;
use config::{InternalKeys, InternalScope, Secret};

use crate::error::ApiError;

/// The header that carries an internal key.
pub const INTERNAL_KEY_HEADER: &str = "x-internal-key";

/// Marks a request that presented a valid internal key for its path's scope.
#[derive(Clone, Copy, Debug)]
pub struct InternalCaller {
    /// The scope the key was checked for (the path's).
    pub scope: InternalScope,
}

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
    /// Every outcome, in declaration order: an outcome's place in it is `outcome as usize`.
    pub const ALL: [Self; 7] = [
        Self::Public,
        Self::Internal,
        Self::InternalRefused,
        Self::Valid,
        Self::Rejected,
        Self::Invalid,
        Self::Unavailable,
    ];

    /// The outcome's label in metrics.
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

/// Why [`AuthLayer`] refused a request: what [`AuthLayer::on_rejection`] is handed.
/// [`Rejection::into_response`] is the default answer.
#[derive(Debug)]
#[non_exhaustive]
pub enum Rejection {
    /// No bearer token: no `Authorization` header, another scheme, or an empty token.
    /// Default: 401 with `WWW-Authenticate: Bearer`.
    MissingToken,
    /// A token was presented but is not valid: malformed, unknown, expired, revoked, corrupt.
    /// Default: 401 with `WWW-Authenticate: Bearer error="invalid_token"`.
    InvalidToken,
    /// The store could not answer, so nobody is let through (fail closed).
    /// Default: 503 with `Retry-After`.
    StoreUnavailable(CacheError),
    /// An internal path without a key that grants its scope (no key, a wrong key, or the key
    /// of another job). Default: 401.
    InternalKeyRefused,
    /// An internal path while no internal key is configured: internal routes are off.
    /// Default: 404.
    InternalRoutesOff,
    /// The request itself is malformed (several `Authorization` headers). Default: 400.
    BadRequest(String),
}

impl Rejection {
    /// The status code of the default answer.
    pub fn status(&self) -> hyper::StatusCode {
        match self {
            Self::MissingToken | Self::InvalidToken | Self::InternalKeyRefused => hyper::StatusCode::UNAUTHORIZED,
            Self::StoreUnavailable(_) => hyper::StatusCode::SERVICE_UNAVAILABLE,
            Self::InternalRoutesOff => hyper::StatusCode::NOT_FOUND,
            Self::BadRequest(_) => hyper::StatusCode::BAD_REQUEST,
        }
    }

    /// Tessera's own answer: `{"error": "...", "message": "..."}` with the status of
    /// [`Self::status`], `WWW-Authenticate` on a 401 for a token, `Retry-After` on a 503.
    pub fn into_response<B: From<Bytes>>(self) -> Response<B> {
        ApiError::from(self).into_response()
    }
}

impl From<AuthError> for Rejection {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::Unavailable(cause) => Self::StoreUnavailable(cause),
            AuthError::InvalidInput(message) => Self::BadRequest(message),
        }
    }
}

impl From<Rejection> for ApiError {
    fn from(rejection: Rejection) -> Self {
        match rejection {
            Rejection::MissingToken => Self::InvalidToken { presented: false },
            Rejection::InvalidToken => Self::InvalidToken { presented: true },
            Rejection::StoreUnavailable(cause) => Self::Unavailable(Box::new(cause)),
            Rejection::InternalKeyRefused => Self::InvalidInternalKey,
            Rejection::InternalRoutesOff => Self::NotFound,
            Rejection::BadRequest(message) => Self::BadRequest(message),
        }
    }
}

/// Which paths are internal (see [`AuthLayer::internal`]).
type ScopeOf = dyn Fn(&str) -> Option<InternalScope> + Send + Sync;

/// A service's own answer to a refused request (see [`AuthLayer::on_rejection`]).
type OnRejection = dyn Fn(Rejection) -> Response<Bytes> + Send + Sync;

/// The auth check as a [`tower::Layer`]: it puts the caller's [`Principal`] in the extensions
/// of each request it lets through (so axum's `Extension<Principal>` finds it).
///
/// ```
/// use std::convert::Infallible;
///
/// use http_server::prelude::*;
/// use tower::{Layer, ServiceExt};
///
/// # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
/// let tessera = Tessera::embedded().await?;
/// let layer = tessera
///     .auth_layer()
///     .public_paths(["/status"])
///     .internal(vec![Secret::new("admin-key-0123456789")], |path| path.starts_with("/admin/"))
///     .on_rejection(|rejection| {
///         // Plain text instead of Tessera's JSON, with the same status code.
///         let mut response = Response::new(Bytes::from(format!("refused: {rejection:?}")));
///         *response.status_mut() = rejection.status();
///         response
///     });
/// // Any tower service; here one that greets the caller.
/// let service = layer.layer(tower::service_fn(|request: hyper::Request<()>| async move {
///     let user = principal(&request).map(|principal| principal.user_id().to_string());
///     Ok::<_, Infallible>(Response::new(Bytes::from(format!("hello {user:?}"))))
/// }));
///
/// let issued = tessera.authenticator().issue(UserId::Integer(7), IssueOptions::default()).await?;
/// let request = hyper::Request::get("/orders")
///     .header("authorization", format!("Bearer {}", issued.token.expose()))
///     .body(())?;
/// let response = service.clone().oneshot(request).await?;
/// assert_eq!(response.body(), &Bytes::from("hello Some(\"7\")"));
///
/// let response = service.oneshot(hyper::Request::get("/orders").body(())?).await?;
/// assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
/// assert_eq!(response.body(), &Bytes::from("refused: MissingToken"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// # }).unwrap();
/// ```
#[derive(Clone, Debug)]
pub struct AuthLayer {
    rules: Arc<Rules>,
}

#[derive(Clone)]
pub(crate) struct Rules {
    authenticator: Authenticator,
    public_paths: HashSet<String>,
    internal_keys: Arc<KeyDigests>,
    scope_of: Arc<ScopeOf>,
    on_rejection: Option<Arc<OnRejection>>,
    refusal_log: Arc<RefusalLog>,
    token_cookie: Option<Arc<str>>,
}

impl std::fmt::Debug for Rules {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Rules")
            .field("authenticator", &self.authenticator)
            .field("public_paths", &self.public_paths)
            .field("internal_keys", &format_args!("{} keys", self.internal_keys.keys.len()))
            .field("on_rejection", &self.on_rejection.as_ref().map(|_| "custom"))
            .finish_non_exhaustive()
    }
}

fn no_internal_paths(_: &str) -> Option<InternalScope> {
    None
}

impl AuthLayer {
    /// Every path needs a bearer token until [`Self::public_paths`] or [`Self::internal`] say otherwise.
    pub fn new(authenticator: Authenticator) -> Self {
        Self {
            rules: Arc::new(Rules {
                authenticator,
                public_paths: HashSet::new(),
                internal_keys: Arc::new(KeyDigests::of(&InternalKeys::default())),
                scope_of: Arc::new(no_internal_paths),
                on_rejection: None,
                refusal_log: Arc::new(RefusalLog::default()),
                token_cookie: None,
            }),
        }
    }

    /// Exact paths served without a token.
    pub fn public_paths<P: Into<String>>(mut self, paths: impl IntoIterator<Item = P>) -> Self {
        Arc::make_mut(&mut self.rules).public_paths = paths.into_iter().map(Into::into).collect();
        self
    }

    /// Paths for which `is_internal` is true need one of `keys` instead of a token (404 when
    /// `keys` is empty: internal routes are off); every key grants every such path. It is
    /// asked once per request not on a public path, with the raw path: keep it cheap.
    pub fn internal(self, keys: Vec<Secret>, is_internal: impl Fn(&str) -> bool + Send + Sync + 'static) -> Self {
        let scope_of = move |path: &str| is_internal(path).then_some(InternalScope::Administration);
        self.internal_scoped(&InternalKeys::administration_only(keys), scope_of)
    }

    /// Paths to which `scope_of` gives a scope need a key of `keys` that grants it
    /// ([`InternalKeys::granting`]: the scope's own keys, or an administration key) instead of
    /// a token; 404 when no key at all is configured. Tessera's server passes
    /// `config::internal_scope`.
    pub fn internal_scoped(
        mut self,
        keys: &InternalKeys,
        scope_of: impl Fn(&str) -> Option<InternalScope> + Send + Sync + 'static,
    ) -> Self {
        let rules = Arc::make_mut(&mut self.rules);
        rules.internal_keys = Arc::new(KeyDigests::of(keys));
        rules.scope_of = Arc::new(scope_of);
        self
    }

    /// Reads the token from the cookie `name` when a request has no `Authorization` header
    /// (browser apps keep their session in a cookie); with both, the header wins. Internal keys
    /// are never read from a cookie. Of several cookies of that name the first counts (the
    /// browser sends the one with the longest path first).
    pub fn token_cookie(mut self, name: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.rules).token_cookie = Some(Arc::from(name.into()));
        self
    }

    /// Answers refused requests with `respond` instead of Tessera's JSON
    /// ([`Rejection::into_response`], which `respond` may still call for some cases). Its body
    /// becomes the service's body type through `From<Bytes>`.
    pub fn on_rejection(mut self, respond: impl Fn(Rejection) -> Response<Bytes> + Send + Sync + 'static) -> Self {
        Arc::make_mut(&mut self.rules).on_rejection = Some(Arc::new(respond));
        self
    }
}

impl AuthLayer {
    /// The layer's rules, for Tessera's own server, which asks them directly
    /// ([`Rules::presented`], then [`Rules::verify_bearer`]) instead of going through
    /// [`AuthService`].
    pub(crate) fn rules(&self) -> Arc<Rules> {
        Arc::clone(&self.rules)
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
            let outcome = match rules.admit(request.uri().path(), request.headers()).await {
                Admission::Public => VerifyOutcome::Public,
                Admission::Internal(scope) => {
                    request.extensions_mut().insert(InternalCaller { scope });
                    VerifyOutcome::Internal
                }
                Admission::Valid(principal) => {
                    request.extensions_mut().insert(principal);
                    VerifyOutcome::Valid
                }
                Admission::Refused(rejection, outcome) => return Ok(rules.refuse(rejection, outcome)),
            };
            let mut response = inner.call(request).await?;
            response.extensions_mut().insert(outcome);
            Ok(response)
        })
    }
}

/// What the layer decided for a request, before any service behind it sees it.
pub(crate) enum Admission {
    /// A public path.
    Public,
    /// An internal path, and the caller gave a key that grants its scope.
    Internal(InternalScope),
    /// A valid token: whose it is.
    Valid(Principal),
    /// Refused: why, and the outcome to count.
    Refused(Rejection, VerifyOutcome),
}

/// What a request presents, as far as it is decided without I/O.
pub(crate) enum Presented<'a> {
    /// The path's rule or the internal key decided.
    Decided(Admission),
    /// A bearer token, still to be verified.
    Bearer(&'a str),
}

impl Rules {
    /// Decides for a request to `path` with `headers`: the path's rule, the internal key, or
    /// the bearer token. (Not the whole request: its body type need not be `Sync`.)
    pub(crate) async fn admit(&self, path: &str, headers: &HeaderMap) -> Admission {
        match self.presented(path, headers) {
            Presented::Decided(admission) => admission,
            Presented::Bearer(token) => self.verify_bearer(token).await,
        }
    }

    /// What can be decided for a request to `path` with `headers` without I/O: the path's rule
    /// and the internal key decide; a bearer token is found, to be verified.
    pub(crate) fn presented<'a>(&self, path: &str, headers: &'a HeaderMap) -> Presented<'a> {
        if self.public_paths.contains(path) {
            return Presented::Decided(Admission::Public);
        }
        if let Some(scope) = (self.scope_of)(path) {
            return Presented::Decided(match self.internal_keys.check(scope, headers) {
                Ok(()) => Admission::Internal(scope),
                Err(rejection) => {
                    if matches!(rejection, Rejection::InternalKeyRefused) {
                        let presented = headers.contains_key(INTERNAL_KEY_HEADER)
                            || headers.contains_key(hyper::header::AUTHORIZATION);
                        if let Some(suppressed) = self.refusal_log.may_log() {
                            crate::audit::internal_key_refused(path, scope, presented, suppressed);
                        }
                    }
                    Admission::Refused(rejection, VerifyOutcome::InternalRefused)
                }
            });
        }
        let presented = match (&self.token_cookie, headers.contains_key(AUTHORIZATION)) {
            (Some(cookie), false) => cookie_token(headers, cookie).ok_or(Rejection::MissingToken),
            _ => bearer_token(headers),
        };
        match presented {
            Ok(token) => Presented::Bearer(token),
            Err(rejection) => Presented::Decided(Admission::Refused(rejection, VerifyOutcome::Rejected)),
        }
    }

    /// Decides for a request that presented the bearer `token`.
    pub(crate) async fn verify_bearer(&self, token: &str) -> Admission {
        match self.authenticator.verify(token).await {
            Ok(Verification::Valid(principal)) => Admission::Valid(principal),
            Ok(Verification::Invalid(reason)) => {
                tracing::debug!(%reason, "token refused");
                let outcome = match reason {
                    auth_core::InvalidReason::Malformed(_) => VerifyOutcome::Rejected,
                    _ => VerifyOutcome::Invalid,
                };
                Admission::Refused(Rejection::InvalidToken, outcome)
            }
            Err(error) => Admission::Refused(Rejection::from(error), VerifyOutcome::Unavailable),
        }
    }

    /// The answer to a refused request: the service's own, or Tessera's; marked with its outcome.
    fn refuse<B: From<Bytes>>(&self, rejection: Rejection, outcome: VerifyOutcome) -> Response<B> {
        let mut response = self.refusal(rejection);
        response.extensions_mut().insert(outcome);
        response
    }

    /// The answer to a refused request: the service's own, or Tessera's.
    pub(crate) fn refusal<B: From<Bytes>>(&self, rejection: Rejection) -> Response<B> {
        match &self.on_rejection {
            Some(respond) => respond(rejection).map(B::from),
            None => rejection.into_response(),
        }
    }
}

/// The token of the one `Authorization: Bearer <token>` header.
fn bearer_token(headers: &HeaderMap) -> Result<&str, Rejection> {
    let mut values = headers.get_all(AUTHORIZATION).iter();
    let Some(value) = values.next() else { return Err(Rejection::MissingToken) };
    if values.next().is_some() {
        return Err(Rejection::BadRequest("send one Authorization header, not several".to_owned()));
    }
    let text = value.to_str().map_err(|_| Rejection::InvalidToken)?;
    let (scheme, token) = text.split_once(' ').unwrap_or((text, ""));
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Rejection::MissingToken);
    }
    let token = token.trim_start_matches(' ');
    if token.is_empty() {
        return Err(Rejection::MissingToken);
    }
    Ok(token)
}

/// The value of the first cookie named `name` in the request's `Cookie` headers (RFC 6265:
/// `a=b; c=d`, a value optionally in double quotes); `None` when there is none, or the header
/// is not text. An empty value is no token.
fn cookie_token<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(hyper::header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|line| line.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(cookie, _)| *cookie == name)
        .map(|(_, value)| value.trim().trim_matches('"'))
        .filter(|value| !value.is_empty())
}

/// The configured internal keys as SHA-256 digests, each with the scopes it grants. Comparing
/// digests (always 32 bytes) instead of the keys keeps a key's length out of the timing.
struct KeyDigests {
    keys: Vec<([u8; 32], [bool; 3])>,
}

impl KeyDigests {
    fn of(keys: &InternalKeys) -> Self {
        let mut digests: Vec<([u8; 32], [bool; 3])> = Vec::new();
        for scope in InternalScope::ALL {
            let index = scope as usize;
            for key in keys.granting(scope) {
                let digest: [u8; 32] = Sha256::digest(key.expose().as_bytes()).into();
                match digests.iter_mut().find(|(known, _)| *known == digest) {
                    Some((_, grants)) => grants[index] = true,
                    None => {
                        let mut grants = [false; 3];
                        grants[index] = true;
                        digests.push((digest, grants));
                    }
                }
            }
        }
        Self { keys: digests }
    }

    /// Whether `headers` present a key that grants `scope`. Every configured key is compared,
    /// whichever matches.
    fn check(&self, scope: InternalScope, headers: &HeaderMap) -> Result<(), Rejection> {
        if self.keys.is_empty() {
            return Err(Rejection::InternalRoutesOff);
        }
        let presented = match headers.get(INTERNAL_KEY_HEADER) {
            Some(value) => Some(value.as_bytes()),
            None => bearer_token(headers).ok().map(str::as_bytes),
        };
        let Some(presented) = presented else { return Err(Rejection::InternalKeyRefused) };
        let presented: [u8; 32] = Sha256::digest(presented).into();
        let index = scope as usize;
        let mut matched = subtle::Choice::from(0);
        for (digest, grants) in &self.keys {
            matched |= digest.ct_eq(&presented) & subtle::Choice::from(u8::from(grants[index]));
        }
        if bool::from(matched) { Ok(()) } else { Err(Rejection::InternalKeyRefused) }
    }
}

/// At most one audit line a second for refused internal keys: a client hammering an internal
/// path with wrong keys must not flood the log (the metric still counts every refusal).
#[derive(Debug, Default)]
struct RefusalLog {
    /// The second (since the Unix epoch) of the last line written.
    last_second: AtomicU64,
    /// Refusals not logged since that line.
    suppressed: AtomicU64,
}

impl RefusalLog {
    /// `Some(refusals left out since the last line)` when this refusal may be logged.
    fn may_log(&self) -> Option<u64> {
        let now =
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_secs());
        let last = self.last_second.load(Ordering::Relaxed);
        if last != now && self.last_second.compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed).is_ok() {
            Some(self.suppressed.swap(0, Ordering::Relaxed))
        } else {
            self.suppressed.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
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

    use auth_core::{AuthPolicy, IssueOptions, UserId};
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

    #[tokio::test]
    async fn wraps_another_services_routes() {
        let authenticator = Authenticator::new(CacheDao::new(CacheClient::embedded()), AuthPolicy::default());
        let issued = authenticator.issue(UserId::Integer(5), IssueOptions::default()).await.unwrap();
        let layer = AuthLayer::new(authenticator)
            .public_paths(["/status"])
            .internal(vec![Secret::new("admin-key-0123456789")], |path| path.starts_with("/admin/"));
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

    /// Each job's key reaches its own scope only; the administration key reaches all; a key of
    /// any length, or none, is refused the same way.
    #[tokio::test]
    async fn a_key_reaches_only_the_scopes_it_grants() {
        let authenticator = Authenticator::new(CacheDao::new(CacheClient::embedded()), AuthPolicy::default());
        let keys = InternalKeys {
            administration: vec![Secret::new("administration-key-0123456789")],
            introspection: vec![Secret::new("introspection-key-0123456789")],
            metrics: vec![Secret::new("metrics-key-0123456789"), Secret::new("metrics-key-rotated-0123")],
        };
        let layer = AuthLayer::new(authenticator).internal_scoped(&keys, config::internal_scope);
        let allowed = |key: &str, path: &str| match key {
            "administration-key-0123456789" => true,
            "introspection-key-0123456789" => path == "/internal/introspect",
            "metrics-key-0123456789" | "metrics-key-rotated-0123" => path == "/metrics",
            _ => false,
        };
        let presented = [
            "administration-key-0123456789",
            "introspection-key-0123456789",
            "metrics-key-0123456789",
            "metrics-key-rotated-0123",
            "administration-key-012345678",
            "administration-key-0123456789x",
            "x",
        ];
        for path in ["/metrics", "/internal/introspect", "/internal/sessions", "/internal/users/1/sessions"] {
            for key in presented {
                let (status, body, outcome) = call(&layer, path, Some(&format!("Bearer {key}"))).await;
                if allowed(key, path) {
                    assert_eq!((status, outcome), (StatusCode::OK, Some(VerifyOutcome::Internal)), "{key} on {path}");
                } else {
                    assert_eq!(status, StatusCode::UNAUTHORIZED, "{key} on {path}: {body}");
                    assert_eq!(outcome, Some(VerifyOutcome::InternalRefused), "{key} on {path}");
                }
            }
        }
    }

    /// With a token cookie configured, a request without `Authorization` is verified by its
    /// cookie; with both, the header decides; a malformed `Cookie` header is no token; a cookie
    /// never carries an internal key.
    #[tokio::test]
    async fn a_token_cookie_stands_in_for_a_missing_authorization_header() {
        let authenticator = Authenticator::new(CacheDao::new(CacheClient::embedded()), AuthPolicy::default());
        let issued = authenticator.issue(UserId::Integer(9), IssueOptions::default()).await.unwrap();
        let token = issued.token.expose().to_owned();
        let layer = AuthLayer::new(authenticator)
            .internal(vec![Secret::new("admin-key-0123456789")], |path| path.starts_with("/admin/"))
            .token_cookie("__Host-session");
        let valid_bearer = format!("Bearer {token}");
        let cookie = format!("theme=dark; __Host-session={token}; other=1");
        let quoted = format!("__Host-session=\"{token}\"");
        /// Path, `Authorization`, `Cookie` bytes, the status expected, why.
        type Case<'a> = (&'a str, Option<&'a str>, Vec<u8>, StatusCode, &'a str);
        let cases: Vec<Case<'_>> = vec![
            ("/orders", None, cookie.clone().into_bytes(), StatusCode::OK, "the cookie"),
            ("/orders", None, quoted.into_bytes(), StatusCode::OK, "a quoted cookie value"),
            (
                "/orders",
                Some("Bearer unknown-token-unknown-token"),
                cookie.clone().into_bytes(),
                StatusCode::UNAUTHORIZED,
                "the header wins",
            ),
            ("/orders", Some(&valid_bearer), b"__Host-session=garbage".to_vec(), StatusCode::OK, "the header wins"),
            ("/orders", None, b"session=; __Host-session=".to_vec(), StatusCode::UNAUTHORIZED, "an empty value"),
            ("/orders", None, b";;==; =x; ;\t".to_vec(), StatusCode::UNAUTHORIZED, "a malformed header"),
            ("/orders", None, vec![0xff, 0xfe, b'='], StatusCode::UNAUTHORIZED, "not text"),
            ("/orders", None, b"__host-session=abc".to_vec(), StatusCode::UNAUTHORIZED, "names are case-sensitive"),
            (
                "/admin/x",
                None,
                b"__Host-session=admin-key-0123456789".to_vec(),
                StatusCode::UNAUTHORIZED,
                "no key from a cookie",
            ),
        ];
        for (path, authorization, cookie, status, why) in cases {
            let mut builder = Request::get(path);
            if let Some(value) = authorization {
                builder = builder.header(AUTHORIZATION, value);
            }
            builder = builder.header(hyper::header::COOKIE, hyper::header::HeaderValue::from_bytes(&cookie).unwrap());
            let service = layer.clone().layer(tower::service_fn(inner));
            let response = service.oneshot(builder.body(Body::default()).unwrap()).await.unwrap();
            assert_eq!(response.status(), status, "{why}");
        }
    }

    /// One audit line a second at most, however many refusals; the next line says how many
    /// were left out.
    #[test]
    fn refusal_lines_are_rate_limited() {
        let log = RefusalLog::default();
        assert_eq!(log.may_log(), Some(0), "the first refusal is logged");
        let logged = (0..1_000).filter_map(|_| log.may_log()).count();
        assert!(logged <= 1, "{logged} lines for 1,000 refusals within about a second");
        log.last_second.store(0, Ordering::Relaxed);
        let suppressed = log.may_log().expect("a new second logs again");
        assert!(suppressed >= 999, "the line counts what was left out: {suppressed}");
    }

    /// The service's own answer replaces Tessera's JSON for every kind of refusal, with the
    /// reason it was handed; the outcome for metrics stays, and valid tokens still pass.
    #[tokio::test]
    async fn on_rejection_answers_in_the_services_shape() {
        let authenticator = Authenticator::new(CacheDao::new(CacheClient::embedded()), AuthPolicy::default());
        let issued = authenticator.issue(UserId::Integer(7), IssueOptions::default()).await.unwrap();
        let admin_prefix = String::from("/admin/");
        let respond = |rejection: Rejection| {
            let status = match &rejection {
                Rejection::InternalRoutesOff => StatusCode::IM_A_TEAPOT,
                other => other.status(),
            };
            let mut response = Response::new(Bytes::from(format!("custom {rejection:?}")));
            *response.status_mut() = status;
            response
        };
        let layer = AuthLayer::new(authenticator.clone())
            .internal(vec![Secret::new("admin-key-0123456789")], move |path| path.starts_with(&admin_prefix))
            .on_rejection(respond);
        let valid = format!("Bearer {}", issued.token.expose());
        let cases: &[(&str, Option<&str>, StatusCode, &str, VerifyOutcome)] = &[
            ("/orders", Some(&valid), StatusCode::OK, "user 7", VerifyOutcome::Valid),
            ("/orders", None, StatusCode::UNAUTHORIZED, "custom MissingToken", VerifyOutcome::Rejected),
            ("/orders", Some("Basic abc"), StatusCode::UNAUTHORIZED, "custom MissingToken", VerifyOutcome::Rejected),
            (
                "/orders",
                Some("Bearer unknown-token-unknown-token"),
                StatusCode::UNAUTHORIZED,
                "custom InvalidToken",
                VerifyOutcome::Invalid,
            ),
            (
                "/admin/x",
                Some(&valid),
                StatusCode::UNAUTHORIZED,
                "custom InternalKeyRefused",
                VerifyOutcome::InternalRefused,
            ),
        ];
        for (path, authorization, status, body, outcome) in cases {
            let (got_status, got_body, got_outcome) = call(&layer, path, *authorization).await;
            assert_eq!(got_status, *status, "{path} {authorization:?}: {got_body}");
            assert_eq!(got_body, *body, "{path} {authorization:?}");
            assert_eq!(got_outcome, Some(*outcome), "{path}");
        }

        let two_headers = Request::get("/orders")
            .header(AUTHORIZATION, valid.as_str())
            .header(AUTHORIZATION, valid.as_str())
            .body(Body::default())
            .unwrap();
        let response = layer.layer(tower::service_fn(inner)).oneshot(two_headers).await.unwrap();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        assert!(body.starts_with(b"custom BadRequest("), "{body:?}");

        let internal_off =
            AuthLayer::new(authenticator).internal(Vec::new(), |path| path == "/metrics").on_rejection(respond);
        let (status, body, outcome) = call(&internal_off, "/metrics", Some(&valid)).await;
        assert_eq!((status, body.as_str()), (StatusCode::IM_A_TEAPOT, "custom InternalRoutesOff"));
        assert_eq!(outcome, Some(VerifyOutcome::InternalRefused));
    }

    /// Without `on_rejection` each reason keeps Tessera's answer: status, code and header.
    #[test]
    fn default_rejection_answers() {
        let cases = [
            (Rejection::MissingToken, StatusCode::UNAUTHORIZED, Some("Bearer")),
            (Rejection::InvalidToken, StatusCode::UNAUTHORIZED, Some("Bearer error=\"invalid_token\"")),
            (Rejection::InternalKeyRefused, StatusCode::UNAUTHORIZED, None),
            (Rejection::InternalRoutesOff, StatusCode::NOT_FOUND, None),
            (Rejection::BadRequest("two headers".to_owned()), StatusCode::BAD_REQUEST, None),
        ];
        for (rejection, status, www_authenticate) in cases {
            assert_eq!(rejection.status(), status, "{rejection:?}");
            let response: Response<Body> = rejection.into_response();
            assert_eq!(response.status(), status);
            let header = response.headers().get(hyper::header::WWW_AUTHENTICATE).map(|value| value.to_str().unwrap());
            assert_eq!(header, www_authenticate, "{status}");
        }
    }
}
