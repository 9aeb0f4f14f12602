//! The JSON shapes on the wire. Only this crate serializes for clients; domain types are
//! converted here.

use serde::Serialize;

use auth_core::MetadataValue;

/// `/healthz`, and `/readyz` when ready: a status and nothing else.
#[derive(Serialize)]
pub(crate) struct Health<'a> {
    pub(crate) status: &'a str,
}

/// Public: says "not ready" and nothing about the store (no address, no error text).
#[derive(Serialize)]
pub(crate) struct NotReady<'a> {
    pub(crate) status: &'a str,
    pub(crate) error: &'a str,
    pub(crate) message: &'a str,
}

/// `POST /internal/sessions` → 201.
#[derive(Serialize)]
pub(crate) struct IssuedSession<'a> {
    pub(crate) token: &'a str,
    pub(crate) token_type: &'a str,
    pub(crate) expires_in: u64,
    pub(crate) expires_at: u64,
    pub(crate) session_id: &'a str,
}

#[derive(Serialize)]
pub(crate) struct Sessions<'a> {
    pub(crate) user_id: MetadataValue,
    pub(crate) sessions: Vec<SessionEntry<'a>>,
}

#[derive(Serialize)]
pub(crate) struct SessionEntry<'a> {
    pub(crate) session_id: &'a str,
    /// Seconds left; `null` for a token stored without expiry.
    pub(crate) expires_in: Option<u64>,
    pub(crate) metadata: MetadataValue,
}

#[derive(Serialize)]
pub(crate) struct Revoked {
    pub(crate) revoked: u64,
}

/// RFC 7662 for a token that is not active.
#[derive(Serialize)]
pub(crate) struct Inactive {
    pub(crate) active: bool,
}
