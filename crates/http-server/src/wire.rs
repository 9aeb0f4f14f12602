//! The JSON shapes on the wire. Only this crate serializes for clients; domain types are
//! converted here. `docs/openapi.json` documents each one; in tests they also deserialize, so
//! the document's examples can be read back into them (unknown fields refused).

use serde::Serialize;

use auth_core::MetadataValue;

/// Every error answer: `{"error": "...", "message": "..."}`.
#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct ErrorBody<'a> {
    pub(crate) error: &'a str,
    pub(crate) message: &'a str,
}

#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct Health<'a> {
    pub(crate) status: &'a str,
}

#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct Ready<'a> {
    pub(crate) status: &'a str,
    pub(crate) store: &'a str,
    pub(crate) latency_ms: f64,
}

#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct NotReady<'a> {
    pub(crate) status: &'a str,
    pub(crate) error: &'a str,
    pub(crate) message: String,
    pub(crate) store: &'a str,
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

#[derive(Serialize)]
#[cfg_attr(test, derive(serde::Deserialize), serde(deny_unknown_fields))]
pub(crate) struct Sessions<'a> {
    pub(crate) user_id: MetadataValue,
    #[cfg_attr(test, serde(borrow))]
    pub(crate) sessions: Vec<SessionEntry<'a>>,
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
