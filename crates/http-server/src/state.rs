//! [`AppState`]: what every handler may use; cheap to clone into each request.

use std::sync::Arc;

use hyper::header::HeaderName;

use auth_core::Authenticator;
use cache_toolkit::CacheClient;

use crate::metrics::HttpMetrics;

#[derive(Clone, Debug)]
pub(crate) struct AppState {
    pub(crate) auth: Authenticator,
    pub(crate) cache: CacheClient,
    /// How the store is described in logs (no credentials; never in a public answer).
    pub(crate) store: Arc<str>,
    /// `(metadata field, header)` pairs `/auth/verify` sends.
    pub(crate) forward_headers: Arc<[(String, HeaderName)]>,
    pub(crate) max_body_bytes: usize,
    /// A request body must arrive within this (`TESSERA_HEADER_READ_TIMEOUT_MS`, as the head).
    pub(crate) body_read_timeout: std::time::Duration,
    pub(crate) metrics: Arc<HttpMetrics>,
    /// `TESSERA_TOKEN_COOKIE`: logout clears it.
    pub(crate) token_cookie: Option<Arc<str>>,
}
