//! [`Authenticator`]: verify, issue, log out, revoke, list — the token rules (README "Try it"
//! shows them at work).
//!
//! A token is valid iff `token:{t}` holds a JSON object with a `user_id` and `t` is in
//! `token_list:{user_id}`; anything else is invalid; a store that cannot answer is
//! [`AuthError::Unavailable`], never "invalid" and never "valid". (With hashed storage `t`
//! stands for `sha256:{hex}` in both keys; `dao` decides, see its `storage.rs`.)
//!
//! - [`Authenticator::verify`] answers [`Verification::Valid`] with a [`Principal`] or
//!   [`Verification::Invalid`] with an [`InvalidReason`]; a malformed token is refused before
//!   any I/O. With sliding expiry a valid token is renewed to its own lifetime (`ttl_seconds`),
//!   cut to `iat` + `max_session_lifetime`; a token without an `iat` is not renewed.
//!   [`Authenticator::inspect`] is the same check, and never renews.
//! - [`Authenticator::issue`] refuses a user id that breaks the canonical rule, metadata that
//!   sets `user_id`, `iat` or `ttl_seconds`, and a lifetime past `max_session_lifetime`. It sets
//!   `iat` and `ttl_seconds`, caps the user's sessions (the oldest go), keeps the user's list
//!   alive at least as long as its longest-lived token, and prunes dead list entries.
//! - [`Authenticator::logout`], [`Authenticator::revoke_all`] and
//!   [`Authenticator::revoke_session`] run inside [`CacheDao::revoking`] (a bounded wait for
//!   the replicas, `TESSERA_REVOCATION_WAIT_MS`, and a warning when they do not confirm);
//!   `issue` runs inside [`CacheDao::issuing`] (`TESSERA_ISSUE_WAIT_MS`, off by default).
//!
//! The verification future stays small: every store path behind it is boxed
//! (docs/PERFORMANCE.md#verification-future).

use std::{
    num::NonZeroU64,
    time::{Duration, SystemTime},
};

use cache_toolkit::{CacheError, Replication, Ttl};
use dao::{
    CacheDao, CorruptMetadata, Membership, MetadataObject, MetadataValue, StoredEntry, TokenLookup, TokenRecord, UserId,
};

use crate::{SessionId, Token, TokenFormat, TokenFormatError};

/// How tokens are issued and kept.
#[derive(Clone, Debug)]
pub struct AuthPolicy {
    /// Lifetime of a token issued without an explicit one (`ACCESS_TOKEN_EXPIRE_MINUTES`).
    pub default_ttl: Duration,
    /// At most this many sessions per user; issuing one more revokes the oldest, never the
    /// new one. `None`: no cap.
    pub max_sessions_per_user: Option<NonZeroU64>,
    /// Each successful verification renews the token to the lifetime it was issued with
    /// ([`LIFETIME_FIELD`]), never past `max_session_lifetime` after its `iat` (off by
    /// default: it costs a write per verification).
    pub sliding_expiry: bool,
    /// The longest a token may live after its `iat`, renewals included; no token is issued
    /// for longer.
    pub max_session_lifetime: Duration,
    /// The format new tokens are issued in (both are always accepted).
    pub token_format: TokenFormat,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            default_ttl: Duration::from_secs(30 * 60),
            max_sessions_per_user: NonZeroU64::new(100),
            sliding_expiry: false,
            max_session_lifetime: Duration::from_secs(30 * 24 * 60 * 60),
            token_format: TokenFormat::V1,
        }
    }
}

/// The metadata field holding the issue time (Unix seconds), set at issue.
pub const ISSUED_AT_FIELD: &str = "iat";

/// The metadata field holding the lifetime a token was issued with (seconds), set at issue:
/// what sliding expiry renews it to.
pub const LIFETIME_FIELD: &str = "ttl_seconds";

/// Metadata fields Tessera sets itself at issue; a caller's metadata may not carry them (an
/// `iat` in the future would stretch the absolute lifetime).
const RESERVED_FIELDS: [&str; 3] = ["user_id", ISSUED_AT_FIELD, LIFETIME_FIELD];

/// The longest lifetime a token may be issued with.
const MAX_TTL: Duration = Duration::from_secs(366 * 24 * 60 * 60);

/// Who a valid token belongs to.
///
/// `http-server`'s auth layer puts it in the extensions of every request it lets through with a
/// bearer token; it is `Clone + Send + Sync + 'static`, so a handler reads it with
/// `request.extensions().get::<Principal>()`, or, in axum, takes `Extension<Principal>` (or
/// `Option<Extension<Principal>>` on routes that are also public).
#[derive(Clone, Debug)]
pub struct Principal {
    token: Token,
    record: TokenRecord,
}

/// What request extensions (and axum's `Extension`) ask of a value: checked at compile time.
const _: fn() = || {
    fn extension<T: Clone + Send + Sync + 'static>() {}
    extension::<Principal>();
};

impl Principal {
    pub fn user_id(&self) -> &UserId {
        self.record.user_id()
    }

    pub fn session_id(&self) -> SessionId {
        self.token.session_id()
    }

    /// The token the caller presented (a credential: never log it).
    pub fn token(&self) -> &Token {
        &self.token
    }

    /// The stored metadata JSON, exactly as stored.
    pub fn metadata_json(&self) -> &str {
        self.record.json()
    }

    pub fn metadata(&self) -> &MetadataObject {
        self.record.fields()
    }

    pub fn field(&self, name: &str) -> Option<&MetadataValue> {
        self.record.field(name)
    }

    /// When the token was issued (Unix seconds): the record's integer `iat`, if it has one.
    pub fn issued_at(&self) -> Option<u64> {
        self.record.unsigned_field(ISSUED_AT_FIELD)
    }
}

/// Why a token is not valid. For logs and metrics; clients only learn "invalid".
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvalidReason {
    #[error("malformed token: {0}")]
    Malformed(TokenFormatError),
    #[error("unknown or expired token")]
    Unknown,
    #[error("corrupt token metadata: {0}")]
    Corrupt(CorruptMetadata),
    #[error("token not in its user's token list")]
    NotListed,
}

impl InvalidReason {
    pub fn label(self) -> &'static str {
        match self {
            Self::Malformed(_) => "malformed",
            Self::Unknown => "unknown",
            Self::Corrupt(_) => "corrupt",
            Self::NotListed => "not_listed",
        }
    }
}

#[derive(Clone, Debug)]
pub enum Verification {
    Valid(Principal),
    Invalid(InvalidReason),
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// The store could not answer (down, slow, failing over): say 503, not 401.
    #[error("the session store cannot answer")]
    Unavailable(#[source] CacheError),
    /// The request asked for something impossible (a TTL out of range).
    #[error("invalid request: {0}")]
    InvalidInput(String),
}

impl From<CacheError> for AuthError {
    fn from(error: CacheError) -> Self {
        Self::Unavailable(error)
    }
}

/// How [`Authenticator::issue`] issues a token.
///
/// ```
/// # use auth_core::{IssueOptions, MetadataObject, MetadataValue};
/// # use std::time::Duration;
/// let mut metadata = MetadataObject::new();
/// metadata.insert("username".to_owned(), MetadataValue::from("alice"));
/// let options = IssueOptions::with_metadata(metadata).ttl(Duration::from_secs(3600));
/// # let _ = options;
/// ```
#[derive(Clone, Debug, Default)]
pub struct IssueOptions {
    /// Any JSON object without the fields Tessera sets: `user_id` (from the argument), `iat`
    /// (the issue time, Unix seconds) and `ttl_seconds` (the lifetime).
    pub metadata: MetadataObject,
    /// The token's lifetime, from 1 s to `TESSERA_MAX_SESSION_LIFETIME`; the policy's default
    /// TTL when `None`.
    pub ttl: Option<Duration>,
}

impl IssueOptions {
    /// These metadata, the default TTL.
    pub fn with_metadata(metadata: MetadataObject) -> Self {
        Self { metadata, ttl: None }
    }

    /// The same options with this lifetime.
    #[must_use]
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }
}

/// A token just issued.
#[derive(Debug)]
pub struct IssuedToken {
    pub token: Token,
    pub session_id: SessionId,
    pub expires_in: Duration,
    pub expires_at: SystemTime,
}

/// One of a user's sessions, named by its [`SessionId`] (never its token).
#[derive(Debug)]
pub struct Session {
    pub session_id: SessionId,
    pub record: TokenRecord,
    /// `None` when the token key has no expiry (written without EX by another system).
    pub expires_in: Option<Duration>,
}

/// Issues, verifies and revokes tokens. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Authenticator {
    dao: CacheDao,
    policy: AuthPolicy,
}

impl Authenticator {
    pub fn new(dao: CacheDao, policy: AuthPolicy) -> Self {
        Self { dao, policy }
    }

    /// Loads what verification needs on the store ahead of the first request (the Lua script
    /// on Redis). Optional; failures are for the caller to log.
    pub async fn prepare(&self) -> Result<(), AuthError> {
        Ok(self.dao.prepare().await?)
    }

    pub fn policy(&self) -> &AuthPolicy {
        &self.policy
    }

    /// Checks a presented token, and with sliding expiry renews a valid one
    /// (to its own lifetime, never past `max_session_lifetime` after `iat`). A malformed one is
    /// refused without any I/O.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn verify(&self, presented: &str) -> Result<Verification, AuthError> {
        let verification = self.inspect(presented).await?;
        if self.policy.sliding_expiry
            && let Verification::Valid(principal) = &verification
        {
            // Boxed: the writes' futures would otherwise size every verification's future.
            Box::pin(self.renew(principal)).await?;
        }
        Ok(verification)
    }

    /// Checks a presented token without renewing it, whatever the policy: for introspection,
    /// which describes a token and must not extend it. A malformed one is refused without any I/O.
    pub async fn inspect(&self, presented: &str) -> Result<Verification, AuthError> {
        let token = match Token::parse(presented) {
            Ok(token) => token,
            Err(format) => return Ok(Verification::Invalid(InvalidReason::Malformed(format))),
        };
        let record = match self.dao.membership(token.expose()).await? {
            Membership::Missing => return Ok(Verification::Invalid(InvalidReason::Unknown)),
            Membership::Corrupt(corrupt) => {
                tracing::warn!(session = %token.session_id(), reason = %corrupt, "stored token metadata is corrupt");
                return Ok(Verification::Invalid(InvalidReason::Corrupt(corrupt)));
            }
            Membership::Found { listed: false, .. } => return Ok(Verification::Invalid(InvalidReason::NotListed)),
            Membership::Found { record, listed: true } => record,
        };
        Ok(Verification::Valid(Principal { token, record }))
    }

    /// Sliding expiry: gives a valid token its own lifetime again ([`LIFETIME_FIELD`], the
    /// default for a token issued without one), cut to what is left of `max_session_lifetime`
    /// after its `iat`. A token without an integer `iat` (written by another system) is not
    /// renewed: its absolute bound is unknown.
    async fn renew(&self, principal: &Principal) -> Result<(), AuthError> {
        let Some(issued_at) = principal.issued_at() else {
            return Ok(());
        };
        let own = principal
            .record
            .unsigned_field(LIFETIME_FIELD)
            .filter(|seconds| *seconds > 0)
            .map_or(self.policy.default_ttl, Duration::from_secs);
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        let ends_at = Duration::from_secs(issued_at).saturating_add(self.policy.max_session_lifetime);
        let renewal = own.min(ends_at.saturating_sub(now));
        if renewal < Duration::from_secs(1) {
            // At its absolute end: the TTL it has runs out, and nothing renews it.
            return Ok(());
        }
        self.dao.refresh_token(principal.token().expose(), renewal).await?;
        self.dao.extend_list_ttl(principal.user_id(), renewal).await?;
        Ok(())
    }

    /// Issues a new token for `user_id` as `options` say: its metadata and its lifetime (the
    /// policy's default TTL unless given). Caps the user's sessions and prunes dead list entries.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    pub async fn issue(&self, user_id: UserId, options: IssueOptions) -> Result<IssuedToken, AuthError> {
        let IssueOptions { metadata, ttl } = options;
        let ttl = ttl.unwrap_or(self.policy.default_ttl);
        let longest = MAX_TTL.min(self.policy.max_session_lifetime);
        if ttl < Duration::from_secs(1) || ttl > longest {
            return Err(AuthError::InvalidInput(format!(
                "ttl must be between 1 s and {} s (TESSERA_MAX_SESSION_LIFETIME)",
                longest.as_secs()
            )));
        }
        user_id.check_canonical().map_err(|error| AuthError::InvalidInput(format!("user_id: {error}")))?;
        if let Some(field) = RESERVED_FIELDS.iter().find(|field| metadata.contains_key(**field)) {
            return Err(AuthError::InvalidInput(format!(
                "metadata field `{field}` is set by Tessera, not by the caller"
            )));
        }
        let token = Token::generate_in(self.policy.token_format);
        let mut metadata = metadata;
        let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs());
        metadata.insert(ISSUED_AT_FIELD.to_owned(), MetadataValue::from(now));
        metadata.insert(LIFETIME_FIELD.to_owned(), MetadataValue::from(ttl.as_secs()));
        let record = TokenRecord::new(user_id, metadata);
        let cap = self.policy.max_sessions_per_user;
        let (stored, replication) = self.dao.issuing(self.dao.store_token(token.expose(), &record, ttl, cap)).await?;
        warn_if_unconfirmed(replication, "issue", Some(record.user_id()), Some(&token.session_id()));
        if !stored.evicted.is_empty() {
            tracing::info!(dropped = stored.evicted.len(), cap = ?cap, "oldest sessions revoked by the session cap");
        }
        self.dao.extend_list_ttl(record.user_id(), ttl.max(self.policy.default_ttl)).await?;
        if stored.listed > 1 {
            self.prune(record.user_id()).await?;
        }
        Ok(IssuedToken { session_id: token.session_id(), token, expires_in: ttl, expires_at: SystemTime::now() + ttl })
    }

    /// Removes list entries whose token key has expired; returns the live entries.
    async fn prune(&self, user_id: &UserId) -> Result<Vec<StoredEntry>, AuthError> {
        let entries = self.dao.user_entries(user_id).await?;
        let alive = self.dao.entries_alive(&entries).await?;
        let (live, dead): (Vec<_>, Vec<_>) = entries.into_iter().zip(alive).partition(|(_, alive)| *alive);
        let dead: Vec<StoredEntry> = dead.into_iter().map(|(entry, _)| entry).collect();
        if !dead.is_empty() {
            self.dao.unlist(user_id, &dead).await?;
            tracing::debug!(pruned = dead.len(), "dead entries removed from the token list");
        }
        Ok(live.into_iter().map(|(entry, _)| entry).collect())
    }

    /// Logs a token out (the Python system's LREM + DEL, for each form the storage mode reads).
    /// `false` when it was not valid.
    #[tracing::instrument(level = "debug", skip_all)]
    pub async fn logout(&self, presented: &str) -> Result<bool, AuthError> {
        let Ok(token) = Token::parse(presented) else { return Ok(false) };
        let (removed, replication) = self
            .dao
            .revoking(async {
                match self.dao.read_token(token.expose()).await? {
                    TokenLookup::Found(record) => self.dao.remove_token(record.user_id(), token.expose()).await,
                    TokenLookup::Missing | TokenLookup::Corrupt(_) => Ok(false),
                }
            })
            .await?;
        warn_if_unconfirmed(replication, "logout", None, Some(&token.session_id()));
        Ok(removed)
    }

    /// Revokes every session of the user; returns how many were live.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    pub async fn revoke_all(&self, user_id: &UserId) -> Result<u64, AuthError> {
        let (revoked, replication) = self.dao.revoking(self.dao.remove_all(user_id)).await?;
        warn_if_unconfirmed(replication, "revoke_all", Some(user_id), None);
        Ok(revoked)
    }

    /// Revokes one session, named by its id; `false` when the user has no such session. Every
    /// entry of that session goes (a move to hashed storage cut short may have left two).
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    pub async fn revoke_session(&self, user_id: &UserId, session_id: &SessionId) -> Result<bool, AuthError> {
        let (found, replication) = self
            .dao
            .revoking(async {
                let entries = self.dao.user_entries(user_id).await?;
                let mut found = false;
                for entry in entries.iter().filter(|entry| session_of(entry).as_ref() == Some(session_id)) {
                    self.dao.remove_entry(user_id, entry).await?;
                    found = true;
                }
                Ok(found)
            })
            .await?;
        warn_if_unconfirmed(replication, "revoke", Some(user_id), Some(session_id));
        Ok(found)
    }

    /// The user's live sessions, newest first, with their metadata and time left.
    #[tracing::instrument(level = "debug", skip_all, fields(user_id = %user_id))]
    pub async fn list_sessions(&self, user_id: &UserId) -> Result<Vec<Session>, AuthError> {
        let mut sessions: Vec<Session> = Vec::new();
        for entry in self.prune(user_id).await? {
            // An entry that is not even a well-formed token can never verify: not a session.
            let Some(session_id) = session_of(&entry) else { continue };
            if sessions.iter().any(|session| session.session_id == session_id) {
                continue;
            }
            let TokenLookup::Found(record) = self.dao.read_entry(&entry).await? else { continue };
            if record.user_id().key_part() != user_id.key_part() {
                continue;
            }
            let expires_in = match self.dao.entry_ttl(&entry).await? {
                Ttl::Missing => continue,
                Ttl::NoExpiry => None,
                Ttl::ExpiresIn(left) => Some(left),
            };
            sessions.push(Session { session_id, record, expires_in });
        }
        Ok(sessions)
    }

    /// Time left on a valid token (`None`: it never expires).
    pub async fn time_left(&self, principal: &Principal) -> Result<Option<Duration>, AuthError> {
        Ok(match self.dao.token_ttl(principal.token().expose()).await? {
            Ttl::ExpiresIn(left) => Some(left),
            Ttl::Missing | Ttl::NoExpiry => None,
        })
    }
}

/// A revocation the replicas did not confirm holds on the master but may be lost in a failover
/// now: say so, naming the user or session (never the token).
fn warn_if_unconfirmed(replication: Replication, event: &str, user_id: Option<&UserId>, session: Option<&SessionId>) {
    if let Replication::Unconfirmed { acknowledged, expected } = replication {
        tracing::warn!(
            event,
            user_id = user_id.map(tracing::field::display),
            session_id = session.map(SessionId::as_str),
            acknowledged,
            expected,
            "{event} applied on the Redis master but not confirmed by its replicas in time: a failover now could undo it"
        );
    }
}

/// The session a list entry names: from the digest of a hashed entry, or from the token of a
/// plain one (the same id either way). `None` for an entry that is neither.
fn session_of(entry: &StoredEntry) -> Option<SessionId> {
    match entry.hashed_digest() {
        Some(digest) => SessionId::from_token_digest_hex(digest),
        None => entry.plain_token().and_then(|token| Token::parse(token).ok()).map(|token| token.session_id()),
    }
}
