//! Auth rules on the embedded store (the same rules run against Redis in the integration
//! tests): token format, verify outcomes, issue with cap and pruning, logout, revoke, list.

use std::time::Duration;

use cache_toolkit::{CacheClient, ListEnd};
use dao::{CacheDao, TokenStorage};
use simd_json::prelude::ValueAsScalar;

use super::*;

fn authenticator(policy: AuthPolicy) -> (Authenticator, CacheClient) {
    let cache = CacheClient::embedded();
    (Authenticator::new(CacheDao::new(cache.clone()), policy), cache)
}

fn metadata(pairs: &[(&str, &str)]) -> MetadataObject {
    pairs.iter().map(|(name, value)| ((*name).to_owned(), MetadataValue::String((*value).to_owned()))).collect()
}

#[test]
fn token_format() {
    let python_style = "Drmhze6EPcv0fN_81Bj-nA3yXrbkQpb8ZL2E9GQx5sA";
    assert!(Token::parse(python_style).is_ok(), "secrets.token_urlsafe(32) output");
    let cases = [
        ("short", TokenFormatError::TooShort { min: 16 }),
        ("a".repeat(129).as_str(), TokenFormatError::TooLong { max: 128 }),
        ("abcdefghijklmnop*", TokenFormatError::BadCharacter),
        ("abcdefgh:ijklmnop", TokenFormatError::BadCharacter),
        ("abcdefgh ijklmnop", TokenFormatError::BadCharacter),
        ("abcdefgh\nijklmnop", TokenFormatError::BadCharacter),
        ("abcdefghijklmnopé", TokenFormatError::BadCharacter),
        ("abcdefgh=ijklmnop", TokenFormatError::BadCharacter),
    ]
    .map(|(text, error)| (text.to_owned(), error));
    for (text, error) in cases {
        assert_eq!(Token::parse(&text), Err(error), "{text:?}");
    }
}

#[test]
fn generated_tokens_are_43_base64url_characters_and_distinct() {
    let tokens: std::collections::HashSet<String> = (0..1000).map(|_| Token::generate().expose().to_owned()).collect();
    assert_eq!(tokens.len(), 1000);
    for token in tokens.iter().take(10) {
        assert_eq!(token.len(), 43);
        assert!(Token::parse(token).is_ok());
    }
}

#[test]
fn crc32_is_the_ieee_one() {
    assert_eq!(crate::token::crc32(b"123456789"), 0xCBF4_3926, "the standard check value");
    assert_eq!(crate::token::crc32(b""), 0);
}

/// A v2 token built by hand from the bytes 0..32 (checked independently with Python's
/// `zlib.crc32` and `base64.urlsafe_b64encode`): the format is a contract with secret scanners.
const KNOWN_V2: &str = "tsr_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-RJn6K";

#[test]
fn v2_tokens_check_their_checksum_before_any_io() {
    assert_eq!(Token::parse(KNOWN_V2).map(|token| token.expose().to_owned()), Ok(KNOWN_V2.to_owned()));
    // Every one-character change is caught by the checksum: 48 characters are exactly 36
    // bytes, and a change in the random part is a burst of at most 6 bits, which CRC32 always
    // detects.
    for position in Token::V2_PREFIX.len()..KNOWN_V2.len() {
        let original = KNOWN_V2.as_bytes()[position];
        let replacement = if original == b'A' { b'B' } else { b'A' };
        let mut changed = KNOWN_V2.as_bytes().to_vec();
        changed[position] = replacement;
        let changed = String::from_utf8(changed).unwrap();
        assert_eq!(Token::parse(&changed), Err(TokenFormatError::BadChecksum), "{changed}");
    }
    let cases = [
        (&KNOWN_V2[..KNOWN_V2.len() - 1], TokenFormatError::BadPrefixedLength),
        (&format!("{KNOWN_V2}A")[..], TokenFormatError::BadPrefixedLength),
        ("tsr_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-RJn6*", TokenFormatError::BadCharacter),
        ("tsr_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-RJn6L", TokenFormatError::BadChecksum),
        ("tsr_BAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh-RJn6K", TokenFormatError::BadChecksum),
    ];
    for (text, error) in cases {
        assert_eq!(Token::parse(text), Err(error), "{text}");
    }
    let python_shaped = "tsr_ze6EPcv0fN_81Bj-nA3yXrbkQpb8ZL2E9GQx5sA";
    assert_eq!(python_shaped.len(), 43);
    assert!(Token::parse(python_shaped).is_ok(), "a 43-character token is the Python format, whatever its start");
}

#[test]
fn generated_v2_tokens_are_52_characters_with_the_prefix_and_check_out() {
    let tokens: std::collections::HashSet<String> =
        (0..1000).map(|_| Token::generate_in(TokenFormat::V2).expose().to_owned()).collect();
    assert_eq!(tokens.len(), 1000);
    for token in &tokens {
        assert_eq!(token.len(), Token::V2_LEN);
        assert!(token.starts_with("tsr_"));
        assert!(token[4..].bytes().all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_'));
        assert!(Token::parse(token).is_ok(), "{token}");
    }
}

#[test]
fn a_session_id_is_the_same_from_the_token_or_from_its_digest() {
    let token = Token::parse(KNOWN_V2).unwrap();
    let digest = "6ecadd6229fb68193ef03dfb7e4a530cf0fe2fbc15c38cd3906121526ef70256";
    assert_eq!(SessionId::from_token_digest_hex(digest), Some(token.session_id()));
    assert_eq!(token.session_id().as_str(), &digest[..32]);
    assert_eq!(SessionId::from_token_digest_hex(&digest[..63]), None);
    assert_eq!(SessionId::from_token_digest_hex(&digest.to_uppercase()), None);
}

#[test]
fn session_ids_hide_the_token() {
    let token = Token::parse("Drmhze6EPcv0fN_81Bj-nA3yXrbkQpb8ZL2E9GQx5sA").unwrap();
    let id = token.session_id();
    assert_eq!(id.as_str().len(), 32);
    assert_eq!(SessionId::parse(id.as_str()), Some(id.clone()));
    assert!(!format!("{token:?}").contains(token.expose()), "Debug must not show the token");
    assert_eq!(SessionId::parse("XYZ"), None);
}

#[tokio::test]
async fn verify_outcomes() {
    let (auth, cache) = authenticator(AuthPolicy::default());
    let issued =
        auth.issue(UserId::Integer(42), IssueOptions::with_metadata(metadata(&[("username", "alice")]))).await.unwrap();
    let Verification::Valid(principal) = auth.verify(issued.token.expose()).await.unwrap() else { panic!("valid") };
    assert_eq!(principal.user_id(), &UserId::Integer(42));
    assert_eq!(principal.field("username").and_then(|value| value.as_str()), Some("alice"));

    let invalid = |presented: String, expected: InvalidReason| {
        let auth = auth.clone();
        async move {
            match auth.verify(&presented).await.unwrap() {
                Verification::Invalid(reason) => assert_eq!(reason, expected, "{presented}"),
                Verification::Valid(_) => panic!("{presented} must be invalid"),
            }
        }
    };
    invalid("bad*token".to_owned(), InvalidReason::Malformed(TokenFormatError::TooShort { min: 16 })).await;
    invalid(Token::generate().expose().to_owned(), InvalidReason::Unknown).await;
    let corrupt = Token::generate();
    cache.set_value(&format!("token:{}", corrupt.expose()), "[1,2]", None).await.unwrap();
    invalid(corrupt.expose().to_owned(), InvalidReason::Corrupt(CorruptMetadata::NotAnObject)).await;
    let unlisted = Token::generate();
    cache.set_value(&format!("token:{}", unlisted.expose()), r#"{"user_id":42}"#, None).await.unwrap();
    invalid(unlisted.expose().to_owned(), InvalidReason::NotListed).await;

    assert!(auth.logout(issued.token.expose()).await.unwrap());
    invalid(issued.token.expose().to_owned(), InvalidReason::Unknown).await;
    assert!(!auth.logout(issued.token.expose()).await.unwrap(), "a second logout finds nothing");
}

#[tokio::test]
async fn the_session_cap_drops_the_oldest_sessions_and_their_keys() {
    let (auth, _) =
        authenticator(AuthPolicy { max_sessions_per_user: std::num::NonZeroU64::new(3), ..AuthPolicy::default() });
    let mut issued = Vec::new();
    for _ in 0..5 {
        issued.push(auth.issue(UserId::Integer(1), IssueOptions::default()).await.unwrap());
    }
    for (index, token) in issued.iter().enumerate() {
        let valid = matches!(auth.verify(token.token.expose()).await.unwrap(), Verification::Valid(_));
        assert_eq!(valid, index >= 2, "session {index}");
    }
    assert_eq!(auth.list_sessions(&UserId::Integer(1)).await.unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn issuing_prunes_dead_entries_and_keeps_the_list_alive_as_long_as_its_tokens() {
    let (auth, cache) = authenticator(AuthPolicy { default_ttl: Duration::from_secs(60), ..AuthPolicy::default() });
    let user = UserId::text("u-1").unwrap();
    auth.issue(user.clone(), IssueOptions::default().ttl(Duration::from_secs(10))).await.unwrap();
    cache.push_to_list("token_list:u-1", "gone-token-aaaaaaaaaaaaaaaa", ListEnd::Left).await.unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    let long = auth.issue(user.clone(), IssueOptions::default().ttl(Duration::from_secs(600))).await.unwrap();
    assert_eq!(cache.get_list("token_list:u-1").await.unwrap(), [long.token.expose()], "dead entries pruned");
    match cache.get_ttl("token_list:u-1").await.unwrap() {
        cache_toolkit::Ttl::ExpiresIn(left) => assert!(left >= Duration::from_secs(599), "{left:?}"),
        other => panic!("the list must expire, got {other:?}"),
    }
}

/// The session rules of `revoke_one_session_or_all`, on each storage mode.
#[tokio::test]
async fn revoke_one_session_or_all_in_every_storage_mode() {
    for storage in [TokenStorage::Plain, TokenStorage::Hashed, TokenStorage::Migrate] {
        let cache = CacheClient::embedded();
        let policy = AuthPolicy { token_format: TokenFormat::V2, ..AuthPolicy::default() };
        let auth = Authenticator::new(CacheDao::with_storage(cache.clone(), storage), policy);
        let user = UserId::Integer(7);
        let first = auth.issue(user.clone(), IssueOptions::default()).await.unwrap();
        let second = auth.issue(user.clone(), IssueOptions::default()).await.unwrap();
        assert!(first.token.expose().starts_with("tsr_"));
        let ids: Vec<SessionId> =
            auth.list_sessions(&user).await.unwrap().into_iter().map(|session| session.session_id).collect();
        assert_eq!(ids, [second.session_id.clone(), first.session_id.clone()], "{storage:?}");
        let stored = cache.get_list("token_list:7").await.unwrap();
        let holds_tokens = stored.iter().any(|entry| entry == first.token.expose());
        assert_eq!(holds_tokens, storage == TokenStorage::Plain, "{storage:?}: {stored:?}");
        assert!(auth.revoke_session(&user, &second.session_id).await.unwrap(), "{storage:?}");
        assert!(matches!(auth.verify(second.token.expose()).await.unwrap(), Verification::Invalid(_)));
        assert!(matches!(auth.verify(first.token.expose()).await.unwrap(), Verification::Valid(_)));
        assert!(auth.time_left(&principal_of(&auth, &first.token).await).await.unwrap().is_some());
        assert!(auth.logout(first.token.expose()).await.unwrap(), "{storage:?}");
        assert!(matches!(auth.verify(first.token.expose()).await.unwrap(), Verification::Invalid(_)));
        assert!(cache.get_list("token_list:7").await.unwrap().is_empty(), "{storage:?}");
        let third = auth.issue(user.clone(), IssueOptions::default()).await.unwrap();
        let stored = cache.get_list("token_list:7").await.unwrap().remove(0);
        if storage != TokenStorage::Plain {
            assert!(
                matches!(auth.verify(&stored).await.unwrap(), Verification::Invalid(InvalidReason::Malformed(_))),
                "{storage:?}: a stored entry presented as a token never reaches the store"
            );
            let digest = stored.trim_start_matches("sha256:");
            assert!(matches!(auth.verify(digest).await.unwrap(), Verification::Invalid(InvalidReason::Unknown)));
        }
        assert_eq!(auth.revoke_all(&user).await.unwrap(), 1, "{storage:?}");
        assert!(matches!(auth.verify(third.token.expose()).await.unwrap(), Verification::Invalid(_)));
    }
}

async fn principal_of(auth: &Authenticator, token: &Token) -> Principal {
    match auth.verify(token.expose()).await.unwrap() {
        Verification::Valid(principal) => principal,
        Verification::Invalid(reason) => panic!("{reason}"),
    }
}

#[tokio::test]
async fn revoke_one_session_or_all() {
    let (auth, _) = authenticator(AuthPolicy::default());
    let user = UserId::Integer(7);
    let first = auth.issue(user.clone(), IssueOptions::default()).await.unwrap();
    let second = auth.issue(user.clone(), IssueOptions::default()).await.unwrap();
    let third = auth.issue(user.clone(), IssueOptions::default()).await.unwrap();
    let sessions = auth.list_sessions(&user).await.unwrap();
    let ids: Vec<&SessionId> = sessions.iter().map(|session| &session.session_id).collect();
    assert_eq!(ids, [&third.session_id, &second.session_id, &first.session_id], "newest first");
    assert!(sessions.iter().all(|session| session.expires_in.is_some()));
    assert!(auth.revoke_session(&user, &second.session_id).await.unwrap());
    assert!(!auth.revoke_session(&user, &second.session_id).await.unwrap());
    assert!(matches!(auth.verify(second.token.expose()).await.unwrap(), Verification::Invalid(_)));
    assert!(matches!(auth.verify(first.token.expose()).await.unwrap(), Verification::Valid(_)));
    assert_eq!(auth.revoke_all(&user).await.unwrap(), 2);
    assert!(matches!(auth.verify(third.token.expose()).await.unwrap(), Verification::Invalid(_)));
    assert!(auth.list_sessions(&user).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn sliding_expiry_renews_a_used_token() {
    let policy = AuthPolicy { default_ttl: Duration::from_secs(100), sliding_expiry: true, ..AuthPolicy::default() };
    let (auth, _) = authenticator(policy);
    let issued = auth.issue(UserId::Integer(3), IssueOptions::default()).await.unwrap();
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(matches!(auth.verify(issued.token.expose()).await.unwrap(), Verification::Valid(_)));
    }
    tokio::time::advance(Duration::from_secs(101)).await;
    assert!(matches!(auth.verify(issued.token.expose()).await.unwrap(), Verification::Invalid(InvalidReason::Unknown)));
}

/// A token issued for 3 s and verified stays a 3 s token: each renewal gives it its own
/// lifetime, not the (longer) default.
#[tokio::test(start_paused = true)]
async fn sliding_expiry_renews_a_token_to_its_own_lifetime() {
    let policy = AuthPolicy { default_ttl: Duration::from_secs(1800), sliding_expiry: true, ..AuthPolicy::default() };
    let (auth, cache) = authenticator(policy);
    let issued = auth.issue(UserId::Integer(3), IssueOptions::default().ttl(Duration::from_secs(3))).await.unwrap();
    tokio::time::advance(Duration::from_secs(2)).await;
    assert!(matches!(auth.verify(issued.token.expose()).await.unwrap(), Verification::Valid(_)));
    let key = format!("token:{}", issued.token.expose());
    match cache.get_ttl(&key).await.unwrap() {
        cache_toolkit::Ttl::ExpiresIn(left) => assert!(left <= Duration::from_secs(3), "renewed to {left:?}"),
        other => panic!("{other:?}"),
    }
    tokio::time::advance(Duration::from_millis(3_500)).await;
    assert!(
        matches!(auth.verify(issued.token.expose()).await.unwrap(), Verification::Invalid(InvalidReason::Unknown)),
        "4.5 s after its last use a 3 s token is gone"
    );
}

/// A renewal never reaches past `iat` + the absolute lifetime, and a token without an `iat`
/// (written by another system) is not renewed at all.
#[tokio::test(start_paused = true)]
async fn sliding_expiry_stops_at_the_absolute_lifetime() {
    let policy = AuthPolicy {
        default_ttl: Duration::from_secs(60),
        sliding_expiry: true,
        max_session_lifetime: Duration::from_secs(100),
        ..AuthPolicy::default()
    };
    let (auth, cache) = authenticator(policy);
    let dao = CacheDao::new(cache.clone());
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let aged = Token::generate();
    let mut fields = MetadataObject::new();
    fields.insert(ISSUED_AT_FIELD.to_owned(), MetadataValue::from(now - 98));
    fields.insert(LIFETIME_FIELD.to_owned(), MetadataValue::from(60_u64));
    let record = dao::TokenRecord::new(UserId::Integer(4), fields);
    dao.store_token(aged.expose(), &record, Duration::from_secs(60), None).await.unwrap();
    assert!(matches!(auth.verify(aged.expose()).await.unwrap(), Verification::Valid(_)));
    match cache.get_ttl(&format!("token:{}", aged.expose())).await.unwrap() {
        cache_toolkit::Ttl::ExpiresIn(left) => assert!(left <= Duration::from_secs(2), "cut to what is left: {left:?}"),
        other => panic!("{other:?}"),
    }
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(matches!(auth.verify(aged.expose()).await.unwrap(), Verification::Invalid(InvalidReason::Unknown)));

    let python = Token::generate();
    let record = dao::TokenRecord::new(UserId::Integer(5), MetadataObject::new());
    dao.store_token(python.expose(), &record, Duration::from_secs(5), None).await.unwrap();
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(matches!(auth.verify(python.expose()).await.unwrap(), Verification::Valid(_)));
    tokio::time::advance(Duration::from_secs(3)).await;
    assert!(
        matches!(auth.verify(python.expose()).await.unwrap(), Verification::Invalid(InvalidReason::Unknown)),
        "no iat: not renewed"
    );
}

/// `inspect` describes without renewing, whatever the policy.
#[tokio::test(start_paused = true)]
async fn inspecting_never_renews() {
    let policy = AuthPolicy { default_ttl: Duration::from_secs(10), sliding_expiry: true, ..AuthPolicy::default() };
    let (auth, _) = authenticator(policy);
    let issued = auth.issue(UserId::Integer(6), IssueOptions::default()).await.unwrap();
    for _ in 0..3 {
        tokio::time::advance(Duration::from_secs(4)).await;
        let _ = auth.inspect(issued.token.expose()).await.unwrap();
    }
    assert!(matches!(auth.inspect(issued.token.expose()).await.unwrap(), Verification::Invalid(_)));
}

/// The fields Tessera sets (`user_id`, `iat`, `ttl_seconds`) cannot come from the caller, and
/// no token is issued for longer than the absolute lifetime.
#[tokio::test]
async fn issue_refuses_reserved_fields_and_lifetimes_past_the_absolute_one() {
    let policy = AuthPolicy { max_session_lifetime: Duration::from_secs(3600), ..AuthPolicy::default() };
    let (auth, cache) = authenticator(policy);
    for field in ["user_id", "iat", "ttl_seconds"] {
        let refused =
            auth.issue(UserId::Integer(1), IssueOptions::with_metadata(metadata(&[(field, "9999999999")]))).await;
        assert!(matches!(&refused, Err(AuthError::InvalidInput(message)) if message.contains(field)), "{field}");
    }
    let refused = auth.issue(UserId::Integer(1), IssueOptions::default().ttl(Duration::from_secs(3601))).await;
    assert!(matches!(refused, Err(AuthError::InvalidInput(_))));
    assert_eq!(cache.metrics().snapshot().operations, 0, "refused before any write");
    let issued = auth.issue(UserId::Integer(1), IssueOptions::default().ttl(Duration::from_secs(3600))).await.unwrap();
    let Verification::Valid(principal) = auth.verify(issued.token.expose()).await.unwrap() else { panic!() };
    assert_eq!(principal.field(LIFETIME_FIELD).and_then(|value| value.as_u64()), Some(3600));
    assert!(principal.issued_at().is_some());
}

#[tokio::test]
async fn ttl_out_of_range_is_refused_before_any_write() {
    let (auth, cache) = authenticator(AuthPolicy::default());
    for ttl in [Duration::ZERO, Duration::from_millis(500), Duration::from_secs(400 * 24 * 3600)] {
        assert!(matches!(
            auth.issue(UserId::Integer(1), IssueOptions::default().ttl(ttl)).await,
            Err(AuthError::InvalidInput(_))
        ));
    }
    assert_eq!(cache.metrics().snapshot().operations, 0);
}

/// A verification's future is created, moved and dropped on every request: the store's paths
/// (scripts, two-step reads, migration, sliding expiry) are boxed so it stays small: copying a
/// large one shows in the hit path's profile (docs/PERFORMANCE.md#verification-future).
#[test]
fn a_verification_future_stays_small() {
    let dao = dao::CacheDao::new(cache_toolkit::CacheClient::embedded());
    let authenticator = crate::Authenticator::new(dao, crate::AuthPolicy::default());
    let verification = authenticator.verify("a-token");
    let size = std::mem::size_of_val(&verification);
    assert!(size <= 1_024, "the verification future is {size} bytes");
}
