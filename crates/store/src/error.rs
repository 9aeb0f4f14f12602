//! [`CacheError`]: which operation failed, on which key, and whether a retry may help.
//! fred's error kinds are inspected here and nowhere else (`classify`, which maps them to a
//! [`CacheErrorKind`]). The key is held only as a [`RedactedKey`], so no error can show it.

use std::fmt;

use fred::error::{Error as FredError, ErrorKind as FredErrorKind};

use crate::{Op, RedactedKey};

/// What kind of failure a cache operation met; what a caller acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CacheErrorKind {
    /// The store could not answer: connection lost, timed out, cluster or sentinel unreachable.
    /// The same call may succeed later.
    Unavailable,
    /// The key holds another type than the operation needs (Redis `WRONGTYPE`).
    WrongType,
    /// The stored value cannot be decoded as the requested type.
    BadData,
    /// A server-side script failed.
    Script,
    /// Redis refused the command itself (bad argument, unknown command, auth, configuration).
    Rejected,
    /// The caller's input was refused before reaching the store (a zero TTL, a value that
    /// cannot be encoded as JSON). Nothing stored was touched.
    InvalidInput,
}

impl CacheErrorKind {
    /// Every kind, in declaration order (the order of [`crate::MetricsSnapshot::errors`]).
    pub const ALL: [Self; 6] =
        [Self::Unavailable, Self::WrongType, Self::BadData, Self::Script, Self::Rejected, Self::InvalidInput];

    /// The kind in words, as error messages say it; metrics write it with `_` for spaces.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unavailable => "unavailable",
            Self::WrongType => "wrong type",
            Self::BadData => "bad stored data",
            Self::Script => "script error",
            Self::Rejected => "rejected",
            Self::InvalidInput => "invalid input",
        }
    }
}

/// A failed cache operation. Its text names the operation and the key in its redacted form
/// ([`RedactedKey`]: family and fingerprint), never the key itself nor a value: a key can be a
/// bearer token.
#[derive(Debug, thiserror::Error)]
pub struct CacheError {
    operation: Op,
    key: Option<RedactedKey>,
    kind: CacheErrorKind,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl CacheError {
    /// The error of `operation` that fred answered with `error`. Hidden: for the crates of the
    /// cache stack, whose public face (`cache-toolkit`) names no fred type.
    #[doc(hidden)]
    pub fn from_fred(operation: Op, key: Option<&str>, error: FredError) -> Self {
        let kind = classify(&error);
        Self::new(operation, key, kind, Box::new(error))
    }

    /// The store cannot be asked now (the primary is changing); nothing was sent.
    pub fn unavailable(operation: Op, key: Option<&str>, why: &'static str) -> Self {
        Self::new(operation, key, CacheErrorKind::Unavailable, why.into())
    }

    pub fn wrong_type(operation: Op, key: &str) -> Self {
        Self::new(operation, Some(key), CacheErrorKind::WrongType, "key holds another type of value".into())
    }

    pub fn bad_data(operation: Op, key: &str, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self::new(operation, Some(key), CacheErrorKind::BadData, source.into())
    }

    /// A command the embedded store refuses as Redis would refuse it (Redis's reply text).
    pub fn rejected(operation: Op, key: &str, reply: &'static str) -> Self {
        Self::new(operation, Some(key), CacheErrorKind::Rejected, reply.into())
    }

    pub fn invalid_input(
        operation: Op,
        key: Option<&str>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self::new(operation, key, CacheErrorKind::InvalidInput, source.into())
    }

    /// The same failure for another caller who shared the failed work (a `get_or_load`
    /// single-flight waiter): same operation, key and kind, the source kept as its text.
    pub fn shared_copy(&self) -> Self {
        Self {
            operation: self.operation,
            key: self.key.clone(),
            kind: self.kind,
            source: self.source.to_string().into(),
        }
    }

    fn new(
        operation: Op,
        key: Option<&str>,
        kind: CacheErrorKind,
        source: Box<dyn std::error::Error + Send + Sync>,
    ) -> Self {
        Self { operation, key: key.map(RedactedKey::new), kind, source }
    }

    /// What the failed operation is called (as metrics and traces name it).
    pub fn operation(&self) -> &'static str {
        self.operation.as_str()
    }

    /// The failed operation.
    pub fn op(&self) -> Op {
        self.operation
    }

    /// The key involved, redacted.
    pub fn key(&self) -> Option<&RedactedKey> {
        self.key.as_ref()
    }

    pub fn kind(&self) -> CacheErrorKind {
        self.kind
    }

    /// Whether the same call may succeed later (the store was unreachable or slow).
    pub fn is_retryable(&self) -> bool {
        self.kind == CacheErrorKind::Unavailable
    }
}

impl fmt::Display for CacheError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cache {} failed", self.operation)?;
        if let Some(key) = &self.key {
            write!(f, " on key `{key}`")?;
        }
        write!(f, ": {}: {}", self.kind.as_str(), self.source)
    }
}

/// Redis refused a write because the node is a replica: `READONLY` as the reply, or inside a
/// script's error when the write came from a script.
pub fn is_read_only_reply(error: &FredError) -> bool {
    let details = error.details();
    details.starts_with("READONLY") || details.contains("-READONLY You can't write")
}

fn classify(error: &FredError) -> CacheErrorKind {
    let details = error.details();
    if is_read_only_reply(error) {
        return CacheErrorKind::Unavailable;
    }
    if details.starts_with("WRONGTYPE") {
        return CacheErrorKind::WrongType;
    }
    if details.starts_with("NOSCRIPT") || details.contains("Error running script") || details.starts_with("ERR Error") {
        return CacheErrorKind::Script;
    }
    match error.kind() {
        FredErrorKind::IO
        | FredErrorKind::Timeout
        | FredErrorKind::Canceled
        | FredErrorKind::Cluster
        | FredErrorKind::Sentinel
        | FredErrorKind::Backpressure
        | FredErrorKind::Routing
        // A failed handshake on a reconnection (a certificate rotated badly): the store cannot
        // be reached now; start-up has already checked the certificates once.
        | FredErrorKind::Tls => CacheErrorKind::Unavailable,
        FredErrorKind::Parse => CacheErrorKind::BadData,
        FredErrorKind::Config
        | FredErrorKind::Auth
        | FredErrorKind::InvalidCommand
        | FredErrorKind::InvalidArgument
        | FredErrorKind::Url
        | FredErrorKind::Protocol
        | FredErrorKind::Unknown
        | FredErrorKind::NotFound => {
            if is_transient_reply(details) {
                CacheErrorKind::Unavailable
            } else {
                CacheErrorKind::Rejected
            }
        }
    }
}

/// Server replies that mean "not now" rather than "never": loading, failover, read-only replica.
fn is_transient_reply(details: &str) -> bool {
    ["LOADING", "BUSY", "TRYAGAIN", "CLUSTERDOWN", "MASTERDOWN", "READONLY"]
        .iter()
        .any(|prefix| details.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_fred_errors() {
        let cases = [
            (FredErrorKind::IO, "connection reset", CacheErrorKind::Unavailable),
            (FredErrorKind::Timeout, "Request timed out.", CacheErrorKind::Unavailable),
            (
                FredErrorKind::Unknown,
                "WRONGTYPE Operation against a key holding the wrong kind of value",
                CacheErrorKind::WrongType,
            ),
            (FredErrorKind::Unknown, "NOSCRIPT No matching script.", CacheErrorKind::Script),
            (FredErrorKind::Parse, "Could not convert to string.", CacheErrorKind::BadData),
            (FredErrorKind::Unknown, "LOADING Redis is loading the dataset in memory", CacheErrorKind::Unavailable),
            (FredErrorKind::InvalidArgument, "ERR syntax error", CacheErrorKind::Rejected),
        ];
        for (kind, details, expected) in cases {
            assert_eq!(classify(&FredError::new(kind, details)), expected, "{details}");
        }
    }

    /// A write on a replica, as Redis 7.0 answers it for a command and inside a script, and as
    /// Redis 6 wraps a script's error: "not now" (the primary is elsewhere), never a script bug.
    #[test]
    fn writes_on_a_replica_are_read_only_replies() {
        let replies = [
            "READONLY You can't write against a read only replica.",
            "READONLY You can't write against a read only replica. script: ee5bed0f6963e93a14eebfb64f07c299c1b4313f, on @user_script:1.",
            "ERR Error running script (call to f_76e2): @user_script:1: @user_script: 1: -READONLY You can't write against a read only replica.",
        ];
        for details in replies {
            let error = FredError::new(FredErrorKind::Unknown, details);
            assert!(is_read_only_reply(&error), "{details}");
            assert_eq!(classify(&error), CacheErrorKind::Unavailable, "{details}");
        }
        let unrelated = FredError::new(FredErrorKind::Unknown, "ERR value is not an integer (READONLY mentioned)");
        assert!(!is_read_only_reply(&unrelated));
    }

    #[test]
    fn message_names_operation_and_redacted_key() {
        let token = "ULGe4sQxJfabcdefghijklmnopqrstuvwxyz0123456";
        let key = format!("token:{token}");
        let error = CacheError::from_fred(
            Op::GetValue,
            Some(&key),
            FredError::new(FredErrorKind::Timeout, "Request timed out."),
        );
        let text = error.to_string();
        let redacted = RedactedKey::new(&key);
        assert_eq!(
            text,
            format!("cache get_value failed on key `{redacted}`: unavailable: Timeout Error: Request timed out.")
        );
        assert!(!text.contains(token) && !format!("{error:?}").contains(token), "{text}");
        assert!(error.is_retryable());
        assert_eq!(error.key(), Some(&redacted));
    }
}
