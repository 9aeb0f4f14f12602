//! The JSON shapes on the wire. Only this crate serializes for clients; domain types are
//! converted here. `docs/openapi.json` documents each one; in tests the answers also
//! deserialize, so the document's examples can be read back into them (unknown fields
//! refused). The request bodies ([`IssueSessionRequest`], [`IntrospectionRequest`]) are typed
//! too: [`read_request`] turns a body into one, or into one line saying what is wrong with it.

use std::{fmt, num::NonZeroU64, time::SystemTime};

use serde::{Deserialize, Deserializer, Serialize, de};

use auth_core::{IssuedToken, MetadataObject, MetadataValue, Session, UserId};

/// `POST /internal/sessions`: who the token is for, what to store with it and for how long.
/// Fields it does not know are ignored (the document allows them).
#[derive(Debug, Deserialize)]
pub(crate) struct IssueSessionRequest {
    pub(crate) user_id: RequestUserId,
    /// `null` or absent is `{}`.
    #[serde(default, deserialize_with = "metadata_object")]
    pub(crate) metadata: Option<MetadataObject>,
    /// `null` or absent is the configured lifetime.
    #[serde(default)]
    pub(crate) ttl_seconds: Option<TtlSeconds>,
}

/// `POST /internal/introspect` as JSON (RFC 7662 sends it as a form; both are taken).
#[derive(Debug, Deserialize)]
pub(crate) struct IntrospectionRequest {
    #[serde(deserialize_with = "token_text")]
    pub(crate) token: String,
}

/// A user id as a request body gives it: a string (validated as [`UserId::text`], the canonical
/// rule) or an integer of at most 64 bits — written `42` or, as JSON Schema's `integer` allows,
/// `42.0`; `42.5`, `null`, arrays and objects are refused.
#[derive(Debug)]
pub(crate) struct RequestUserId(pub(crate) UserId);

impl<'de> Deserialize<'de> for RequestUserId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct UserIdVisitor;

        impl de::Visitor<'_> for UserIdVisitor {
            type Value = RequestUserId;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("`user_id` as a string or an integer")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
                UserId::text(text).map(RequestUserId).map_err(|error| E::custom(format_args!("`user_id`: {error}")))
            }

            fn visit_i64<E: de::Error>(self, number: i64) -> Result<Self::Value, E> {
                Ok(RequestUserId(UserId::Integer(i128::from(number))))
            }

            fn visit_u64<E: de::Error>(self, number: u64) -> Result<Self::Value, E> {
                Ok(RequestUserId(UserId::Integer(i128::from(number))))
            }

            fn visit_f64<E: de::Error>(self, number: f64) -> Result<Self::Value, E> {
                match whole_number(number) {
                    Some(value) if i64::try_from(value).is_ok() || u64::try_from(value).is_ok() => {
                        Ok(RequestUserId(UserId::Integer(value)))
                    }
                    _ => Err(E::invalid_type(not_whole(number), &self)),
                }
            }

            /// Said as JSON says it (serde's default would be "unit value").
            fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
                Err(E::invalid_type(de::Unexpected::Other("null"), &self))
            }
        }

        deserializer.deserialize_any(UserIdVisitor)
    }
}

/// A token's lifetime as a request gives it: a positive number of seconds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TtlSeconds(pub(crate) NonZeroU64);

impl<'de> Deserialize<'de> for TtlSeconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SecondsVisitor;

        impl de::Visitor<'_> for SecondsVisitor {
            type Value = TtlSeconds;

            fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
                formatter.write_str("`ttl_seconds` as a positive integer")
            }

            fn visit_u64<E: de::Error>(self, seconds: u64) -> Result<Self::Value, E> {
                NonZeroU64::new(seconds)
                    .map(TtlSeconds)
                    .ok_or_else(|| E::invalid_value(de::Unexpected::Unsigned(0), &self))
            }

            fn visit_i64<E: de::Error>(self, seconds: i64) -> Result<Self::Value, E> {
                match u64::try_from(seconds) {
                    Ok(seconds) => self.visit_u64(seconds),
                    Err(_) => Err(E::invalid_value(de::Unexpected::Signed(seconds), &self)),
                }
            }

            /// `1800.0` is an integer to JSON Schema, so to this API; `1800.5` is not.
            fn visit_f64<E: de::Error>(self, seconds: f64) -> Result<Self::Value, E> {
                match whole_number(seconds).and_then(|value| u64::try_from(value).ok()) {
                    Some(seconds) => self.visit_u64(seconds),
                    None => Err(E::invalid_type(not_whole(seconds), &self)),
                }
            }
        }

        deserializer.deserialize_any(SecondsVisitor)
    }
}

/// A JSON number with a zero fraction (`34098.0`) as the integer it is; `None` for a
/// fraction, an infinity or NaN, or beyond what an `f64` holds exactly (2^53).
fn whole_number(number: f64) -> Option<i128> {
    const EXACT: f64 = 9_007_199_254_740_992.0;
    (number.is_finite() && number.fract() == 0.0 && number.abs() <= EXACT).then_some(number as i128)
}

/// How a number that is not a whole one is named in a refusal: by value when short, else by
/// kind (a 300-digit echo helps nobody).
fn not_whole(number: f64) -> de::Unexpected<'static> {
    if number.is_finite() && number.abs() < 1e15 {
        de::Unexpected::Float(number)
    } else {
        de::Unexpected::Other("a number too large to be an exact integer")
    }
}

/// `token`: a string.
fn token_text<'de, D: Deserializer<'de>>(deserializer: D) -> Result<String, D::Error> {
    struct TokenVisitor;

    impl de::Visitor<'_> for TokenVisitor {
        type Value = String;

        fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
            formatter.write_str("`token` as a string")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
            Ok(text.to_owned())
        }
    }

    deserializer.deserialize_any(TokenVisitor)
}

/// `metadata`: a JSON object or `null`.
fn metadata_object<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<MetadataObject>, D::Error> {
    match Option::<MetadataValue>::deserialize(deserializer)? {
        None | Some(MetadataValue::Static(simd_json::StaticNode::Null)) => Ok(None),
        Some(MetadataValue::Object(object)) => Ok(Some(*object)),
        Some(_) => Err(de::Error::custom("`metadata` must be a JSON object or null")),
    }
}

/// Why a request body was refused, in one line for the `invalid_request` answer.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct BadRequestBody(pub(crate) String);

/// Reads the JSON request body `bytes` into `T`: not JSON, not an object, a missing field or a
/// field of the wrong shape each give one line naming what is wrong (never the body itself).
pub(crate) fn read_request<T: de::DeserializeOwned>(bytes: &mut [u8]) -> Result<T, BadRequestBody> {
    let value = match simd_json::to_owned_value(bytes) {
        Ok(value @ MetadataValue::Object(_)) => value,
        Ok(_) => return Err(BadRequestBody("the body must be a JSON object".to_owned())),
        Err(_) => return Err(BadRequestBody("the body is not valid JSON".to_owned())),
    };
    simd_json::serde::from_owned_value(value).map_err(|error| match error.error() {
        simd_json::ErrorType::Serde(message) => BadRequestBody(message.clone()),
        other => BadRequestBody(format!("the body does not fit: {other:?}")),
    })
}

/// Every error answer: `{"error": "...", "message": "..."}`.
#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct ErrorBody<'a> {
    pub(crate) error: &'a str,
    pub(crate) message: &'a str,
}

/// `/healthz`, and `/readyz` when ready: a status and nothing else.
#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct Health<'a> {
    pub(crate) status: &'a str,
}

/// `GET /readyz` → 200. Public: says "ready" and nothing about the store.
#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct Ready<'a> {
    pub(crate) status: &'a str,
}

/// Public: says "not ready" and nothing about the store (no address, no error text).
#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct NotReady<'a> {
    pub(crate) status: &'a str,
    pub(crate) error: &'a str,
    pub(crate) message: &'a str,
}

/// `POST /internal/sessions` → 201.
#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct IssuedSession<'a> {
    pub(crate) token: &'a str,
    pub(crate) token_type: &'a str,
    pub(crate) expires_in: u64,
    pub(crate) expires_at: u64,
    pub(crate) session_id: &'a str,
}

impl<'a> IssuedSession<'a> {
    pub(crate) fn of(issued: &'a IssuedToken) -> Self {
        Self {
            token: issued.token.expose(),
            token_type: "Bearer",
            expires_in: issued.expires_in.as_secs(),
            expires_at: issued.expires_at.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs()),
            session_id: issued.session_id.as_str(),
        }
    }
}

/// `GET /internal/users/{id}/sessions` → 200.
#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct Sessions<'a> {
    pub(crate) user_id: MetadataValue,
    #[cfg_attr(test, serde(borrow))]
    pub(crate) sessions: Vec<SessionEntry<'a>>,
}

impl<'a> Sessions<'a> {
    pub(crate) fn of(user_id: &UserId, sessions: &'a [Session]) -> Self {
        let sessions = sessions
            .iter()
            .map(|session| SessionEntry {
                session_id: session.session_id.as_str(),
                expires_in: session.expires_in.map(|left| left.as_secs()),
                metadata: MetadataValue::Object(Box::new(session.record.fields().clone())),
            })
            .collect();
        Self { user_id: user_id.to_json(), sessions }
    }
}

#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct SessionEntry<'a> {
    pub(crate) session_id: &'a str,
    /// Seconds left; `null` for a token stored without expiry.
    pub(crate) expires_in: Option<u64>,
    pub(crate) metadata: MetadataValue,
}

#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct Revoked {
    pub(crate) revoked: u64,
}

/// RFC 7662 for a token that is not active.
#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct Inactive {
    pub(crate) active: bool,
}

#[cfg(test)]
mod tests;
