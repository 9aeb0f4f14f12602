//! The stored format of a `get_or_load` key: one JSON envelope per key.
//!
//! - a value: `{"v":<value>,"d":<load time, ms>,"x":<expiry, unix ms>}`
//! - the "missing" placeholder: `{"m":1,"x":<expiry, unix ms>}`
//!
//! The value is always nested under `v`, so no value — not even one that looks like the
//! placeholder, or `null` — can be read back as the placeholder. `d` and `x` feed the early
//! refresh (XFetch). Unknown fields are refused: a key holding anything else (a plain
//! `set_json` value, another program's data) is bad data, never silently taken for ours.

use serde::{Deserialize, Deserializer, Serialize, de::DeserializeOwned};

/// What one key holds, decoded.
#[derive(Debug, PartialEq)]
pub(crate) enum Envelope<T> {
    /// A real value, how long its load took and when it expires.
    Value { value: T, load_time_ms: u64, expires_at_ms: u64 },
    /// The loader said the key does not exist; cached until `expires_at_ms`.
    Missing { expires_at_ms: u64 },
}

#[derive(Serialize)]
struct StoredValue<'a, T> {
    v: &'a T,
    d: u64,
    x: u64,
}

#[derive(Serialize)]
struct StoredMissing {
    m: u8,
    x: u64,
}

/// Every field either shape may have; which ones are present decides the shape.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[serde(bound(deserialize = "T: DeserializeOwned"))]
struct AnyStored<T> {
    /// `Some` whenever the field is present, even as `null` (a value of `Option<_>` or `()`).
    #[serde(default, deserialize_with = "present")]
    v: Option<T>,
    d: Option<u64>,
    m: Option<u8>,
    x: u64,
}

fn present<'de, D: Deserializer<'de>, T: Deserialize<'de>>(deserializer: D) -> Result<Option<T>, D::Error> {
    T::deserialize(deserializer).map(Some)
}

/// Why a stored text is not an envelope.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotAnEnvelope {
    #[error("not a get_or_load envelope: {0}")]
    Json(#[from] simd_json::Error),
    #[error("not a get_or_load envelope: {0}")]
    Shape(&'static str),
}

pub(crate) fn encode_value<T: Serialize>(
    value: &T,
    load_time_ms: u64,
    expires_at_ms: u64,
) -> Result<String, simd_json::Error> {
    crate::json::encode(&StoredValue { v: value, d: load_time_ms, x: expires_at_ms })
}

pub(crate) fn encode_missing(expires_at_ms: u64) -> Result<String, simd_json::Error> {
    crate::json::encode(&StoredMissing { m: 1, x: expires_at_ms })
}

pub(crate) fn decode<T: DeserializeOwned>(text: String) -> Result<Envelope<T>, NotAnEnvelope> {
    let mut bytes = text.into_bytes();
    let stored: AnyStored<T> = crate::json::decode(&mut bytes)?;
    match stored {
        AnyStored { v: Some(value), d: Some(load_time_ms), m: None, x } => {
            Ok(Envelope::Value { value, load_time_ms, expires_at_ms: x })
        }
        AnyStored { v: None, d: None, m: Some(1), x } => Ok(Envelope::Missing { expires_at_ms: x }),
        AnyStored { v: Some(_), d: None, .. } => Err(NotAnEnvelope::Shape("a value without its load time `d`")),
        AnyStored { m: Some(1), .. } => Err(NotAnEnvelope::Shape("a placeholder with value fields")),
        AnyStored { m: Some(_), .. } => Err(NotAnEnvelope::Shape("`m` must be 1")),
        AnyStored { .. } => Err(NotAnEnvelope::Shape("neither a value `v` nor a placeholder `m`")),
    }
}
