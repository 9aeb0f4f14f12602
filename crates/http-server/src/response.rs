//! JSON responses and the error body every route uses: `{"error": "...", "message": "..."}`.

use http_body_util::Full;
use hyper::{
    Response, StatusCode,
    body::Bytes,
    header::{CONTENT_TYPE, HeaderValue},
};
use serde::Serialize;

pub(crate) type Body = Full<Bytes>;

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    message: &'a str,
}

pub(crate) fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    match simd_json::to_vec(value) {
        Ok(bytes) => with_json_type(status, Bytes::from(bytes)),
        Err(error) => {
            tracing::error!(%error, "cannot serialize a response body");
            with_json_type(
                StatusCode::INTERNAL_SERVER_ERROR,
                Bytes::from_static(br#"{"error":"internal","message":"cannot serialize the response"}"#),
            )
        }
    }
}

pub(crate) fn error(status: StatusCode, error: &str, message: &str) -> Response<Body> {
    json(status, &ErrorBody { error, message })
}

fn with_json_type(status: StatusCode, body: Bytes) -> Response<Body> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
