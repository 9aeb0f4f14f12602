//! Building responses: JSON bodies and the error shape `{"error": "...", "message": "..."}`.
//! Generic over the body type (anything built from `Bytes`), so the public auth layer can
//! answer inside another service's stack.

use http_body_util::Full;
use hyper::{
    Response, StatusCode,
    body::Bytes,
    header::{CONTENT_TYPE, HeaderValue},
};
use serde::Serialize;

use crate::wire::ErrorBody;

/// The body type of Tessera's own routes.
pub(crate) type Body = Full<Bytes>;

pub(crate) fn json<T: Serialize, B: From<Bytes>>(status: StatusCode, value: &T) -> Response<B> {
    match simd_json::to_vec(value) {
        Ok(bytes) => raw_json(status, Bytes::from(bytes)),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a response body");
            raw_json(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(br#"{"error":"internal","message":"cannot serialize the response"}"#),
            )
        }
    }
}

/// A body that is already JSON text (e.g. stored metadata, passed through untouched).
pub(crate) fn raw_json<B: From<Bytes>>(status: StatusCode, body: Bytes) -> Response<B> {
    let mut response = Response::new(B::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

pub(crate) fn error<B: From<Bytes>>(status: StatusCode, error: &str, message: &str) -> Response<B> {
    json(status, &ErrorBody { error, message })
}

pub(crate) fn empty<B: From<Bytes>>(status: StatusCode) -> Response<B> {
    let mut response = Response::new(B::from(Bytes::new()));
    *response.status_mut() = status;
    response
}
