//! The JSON shapes on the wire. Only this crate serializes for clients; domain types are
//! converted here. `docs/openapi.json` documents each one; in tests they also deserialize, so
//! the document's examples can be read back into them (unknown fields refused).

use std::time::SystemTime;

use serde::Serialize;

use auth_core::{IssuedToken, MetadataValue, Session, UserId};

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
