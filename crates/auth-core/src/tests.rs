//! Auth rules on the embedded store (the same rules run against Redis in the integration
//! tests): token format, verify outcomes, issue with cap and pruning, logout, revoke, list.

use std::time::Duration;

use cache_toolkit::{CacheClient, ListEnd};
use dao::CacheDao;
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
    let issued = auth.issue(UserId::Integer(42), metadata(&[("username", "alice")]), None).await.unwrap();
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
    let (auth, _) = authenticator(AuthPolicy { max_sessions_per_user: Some(3), ..AuthPolicy::default() });
    let mut issued = Vec::new();
    for _ in 0..5 {
        issued.push(auth.issue(UserId::Integer(1), MetadataObject::new(), None).await.unwrap());
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
    auth.issue(user.clone(), MetadataObject::new(), Some(Duration::from_secs(10))).await.unwrap();
    cache.push_to_list("token_list:u-1", "gone-token-aaaaaaaaaaaaaaaa", ListEnd::Left).await.unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    let long = auth.issue(user.clone(), MetadataObject::new(), Some(Duration::from_secs(600))).await.unwrap();
    assert_eq!(cache.get_list("token_list:u-1").await.unwrap(), [long.token.expose()], "dead entries pruned");
    match cache.get_ttl("token_list:u-1").await.unwrap() {
        cache_toolkit::Ttl::ExpiresIn(left) => assert!(left >= Duration::from_secs(599), "{left:?}"),
        other => panic!("the list must expire, got {other:?}"),
    }
}

#[tokio::test]
async fn revoke_one_session_or_all() {
    let (auth, _) = authenticator(AuthPolicy::default());
    let user = UserId::Integer(7);
    let first = auth.issue(user.clone(), MetadataObject::new(), None).await.unwrap();
    let second = auth.issue(user.clone(), MetadataObject::new(), None).await.unwrap();
    let third = auth.issue(user.clone(), MetadataObject::new(), None).await.unwrap();
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
    let issued = auth.issue(UserId::Integer(3), MetadataObject::new(), None).await.unwrap();
    for _ in 0..5 {
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(matches!(auth.verify(issued.token.expose()).await.unwrap(), Verification::Valid(_)));
    }
    tokio::time::advance(Duration::from_secs(101)).await;
    assert!(matches!(auth.verify(issued.token.expose()).await.unwrap(), Verification::Invalid(InvalidReason::Unknown)));
}

#[tokio::test]
async fn ttl_out_of_range_is_refused_before_any_write() {
    let (auth, cache) = authenticator(AuthPolicy::default());
    for ttl in [Duration::ZERO, Duration::from_millis(500), Duration::from_secs(400 * 24 * 3600)] {
        assert!(matches!(
            auth.issue(UserId::Integer(1), MetadataObject::new(), Some(ttl)).await,
            Err(AuthError::InvalidInput(_))
        ));
    }
    assert_eq!(cache.metrics().snapshot().operations, 0);
}
