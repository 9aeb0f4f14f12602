//! [`ApiError`]: every error a route or the middleware answers with, mapped to a status code,
//! headers and a JSON body `{"error": "...", "message": "..."}` in exactly one place
//! ([`ApiError::into_response`]), which also logs the cause chain of server-side failures.

use hyper::{
    Response, StatusCode,
    header::{ALLOW, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE},
};

use crate::response;

/// Seconds a client should wait before retrying when the store cannot answer.
const RETRY_AFTER_SECONDS: &str = "1";

#[derive(Debug)]
pub(crate) enum ApiError {
    /// No usable bearer token (none, another scheme, malformed, unknown, revoked).
    InvalidToken {
        presented: bool,
    },
    /// An internal route without a valid internal key.
    InvalidInternalKey,
    BadRequest(String),
    NotFound,
    /// A route asked with a method it does not take; `allow` lists those it takes.
    MethodNotAllowed {
        allow: &'static str,
    },
    PayloadTooLarge {
        limit: usize,
    },
    /// The body did not arrive within the read timeout (a client trickling it).
    BodyTimeout {
        timeout: std::time::Duration,
    },
    UnsupportedMediaType,
    /// The store could not answer: fail closed.
    Unavailable(Box<dyn std::error::Error + Send + Sync>),
}

impl ApiError {
    pub(crate) fn into_response<B: From<hyper::body::Bytes>>(self) -> Response<B> {
        let (status, code, message) = match &self {
            Self::InvalidToken { .. } => {
                (StatusCode::UNAUTHORIZED, "invalid_token", "a valid bearer token is required".to_owned())
            }
            Self::InvalidInternalKey => {
                (StatusCode::UNAUTHORIZED, "invalid_internal_key", "a valid internal key is required".to_owned())
            }
            Self::BadRequest(message) => (StatusCode::BAD_REQUEST, "invalid_request", message.clone()),
            Self::NotFound => (StatusCode::NOT_FOUND, "not_found", "no such route".to_owned()),
            Self::MethodNotAllowed { .. } => (
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this route does not take that method".to_owned(),
            ),
            Self::PayloadTooLarge { limit } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body exceeds {limit} bytes"))
            }
            Self::BodyTimeout { timeout } => (
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!("the body did not arrive within {} ms", timeout.as_millis()),
            ),
            Self::UnsupportedMediaType => (
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send application/json or application/x-www-form-urlencoded".to_owned(),
            ),
            Self::Unavailable(cause) => {
                tracing::warn!(error = %error_chain(cause.as_ref()), "store unavailable; answering 503");
                (
                    StatusCode::SERVICE_UNAVAILABLE,
                    "store_unavailable",
                    "the session store cannot answer; retry shortly".to_owned(),
                )
            }
        };
        let mut response: Response<B> = response::error(status, code, &message);
        let headers = response.headers_mut();
        match self {
            Self::InvalidToken { presented: true } => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            }
            Self::InvalidToken { presented: false } => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unavailable(_) => {
                headers.insert(RETRY_AFTER, HeaderValue::from_static(RETRY_AFTER_SECONDS));
            }
            Self::MethodNotAllowed { allow } => {
                headers.insert(ALLOW, HeaderValue::from_static(allow));
            }
            _ => {}
        }
        response
    }
}

impl From<auth_core::AuthError> for ApiError {
    fn from(error: auth_core::AuthError) -> Self {
        match error {
            auth_core::AuthError::Unavailable(cause) => Self::Unavailable(Box::new(cause)),
            auth_core::AuthError::InvalidInput(message) => Self::BadRequest(message),
        }
    }
}

/// `outer: inner: innermost`, for one log line.
pub(crate) fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
