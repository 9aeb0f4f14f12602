//! The audit trail: one structured event per session issued, logged out, revoked (one or all of
//! a user's) and per refused internal key, on the tracing target `tessera::audit` so it can be
//! routed to a sink of its own (`TESSERA_LOG=info,tessera::audit=info` and a JSON subscriber, or
//! a filter on the target). Events carry the session id and the user id — never the token, and
//! never the internal key that was presented.

use auth_core::{SessionId, UserId};

/// The tracing target of every audit event.
pub const AUDIT_TARGET: &str = "tessera::audit";

/// A session was issued through `POST /internal/sessions`.
pub(crate) fn issued(user_id: &UserId, session_id: &SessionId) {
    tracing::info!(target: "tessera::audit", event = "issue", user_id = %user_id, session_id = session_id.as_str());
}

/// A session ended by its holder (`logout`, `POST /api/logout`) or by an internal caller
/// (`revoke`); `removed` is false when it was already gone.
pub(crate) fn session_ended(event: &'static str, user_id: &UserId, session_id: &SessionId, removed: bool) {
    tracing::info!(target: "tessera::audit", event, user_id = %user_id, session_id = session_id.as_str(), removed);
}

/// Every session of a user revoked by an internal caller.
pub(crate) fn revoked_all(user_id: &UserId, revoked: u64) {
    tracing::info!(target: "tessera::audit", event = "revoke_all", user_id = %user_id, revoked);
}

/// A call to an internal path without a key that grants its scope; `suppressed` refusals
/// since the previous such line were not logged (at most one line a second).
pub(crate) fn internal_key_refused(path: &str, scope: config::InternalScope, key_presented: bool, suppressed: u64) {
    // The path is the raw request path: cut so a long one cannot flood the log.
    let path: String = path.chars().take(200).collect();
    tracing::warn!(
        target: "tessera::audit",
        event = "internal_key_refused",
        path,
        scope = scope.as_str(),
        key_presented,
        suppressed
    );
}
