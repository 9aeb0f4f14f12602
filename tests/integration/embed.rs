//! `Tessera::connect` as another service would use it, on the shared standalone Redis: tokens
//! issued through it verify, its cache is the same store, and bad URLs or an absent Redis are
//! typed errors; the embedded store has its own constructor (no magic URL).

use tessera::prelude::*;
use tests::free_port;

#[tokio::test]
async fn connect_to_redis_issues_verifies_and_caches() {
    let tessera = Tessera::connect(&tests::Topology::Standalone.url()).await.unwrap();
    let user = UserId::text(&format!("embed-{}", std::process::id())).unwrap();
    assert!(tessera.describe_store().starts_with("redis standalone"), "{}", tessera.describe_store());
    let issued = tessera.authenticator().issue(user.clone(), IssueOptions::default()).await.unwrap();
    match tessera.authenticator().verify(issued.token.expose()).await.unwrap() {
        Verification::Valid(principal) => assert_eq!(principal.user_id(), &user),
        Verification::Invalid(reason) => panic!("a token just issued is refused: {reason}"),
    }
    // The token lives in the Python system's key, on the store the cache handle reaches.
    let key = format!("token:{}", issued.token.expose());
    assert!(tessera.cache().key_exists(&key).await.unwrap());
    assert_eq!(tessera.authenticator().revoke_all(&user).await.unwrap(), 1);
    tessera.close().await;
}

#[tokio::test]
async fn connect_errors_are_typed() {
    let error = Tessera::connect("http://127.0.0.1:1").await.unwrap_err();
    assert!(matches!(error, TesseraError::Settings(_)), "{error}");
    let error = Tessera::connect(&format!("redis://127.0.0.1:{}", free_port())).await.unwrap_err();
    assert!(matches!(error, TesseraError::Store(_)), "{error}");
    assert!(error.to_string().contains("cannot connect to redis"), "{error}");
    let error = Tessera::connect("embedded").await.unwrap_err();
    assert!(matches!(error, TesseraError::Settings(_)), "no magic URL: {error}");
}

#[tokio::test]
async fn the_embedded_store_is_its_own_constructor() {
    let tessera = Tessera::embedded().await.unwrap();
    assert_eq!(tessera.cache().store_kind(), cache_toolkit::StoreKind::Embedded);
    let issued = tessera.authenticator().issue(UserId::Integer(5), IssueOptions::default()).await.unwrap();
    assert!(matches!(tessera.authenticator().verify(issued.token.expose()).await.unwrap(), Verification::Valid(_)));
    tessera.close().await;
}

/// The builder sets what a service needs in code, each setting validated as the server's
/// environment is: the prefix, storage mode and TTL reach the keys Redis holds.
#[tokio::test]
async fn the_builder_sets_prefix_storage_and_ttl_on_redis() {
    let prefix = format!("embed-builder-{}:", std::process::id());
    let tessera = Tessera::builder(&tests::Topology::Standalone.url())
        .key_prefix(&prefix)
        .token_storage(TokenStorage::Hashed)
        .token_ttl_minutes(7)
        .near_cache(false)
        .connect()
        .await
        .unwrap();
    assert!(!tessera.cache().near_cache_enabled());
    let user = UserId::Integer(77);
    let issued = tessera.authenticator().issue(user.clone(), IssueOptions::default()).await.unwrap();
    assert_eq!(issued.expires_in, std::time::Duration::from_secs(7 * 60));
    assert!(matches!(tessera.authenticator().verify(issued.token.expose()).await.unwrap(), Verification::Valid(_)));
    // Hashed storage under the prefix: no key holds the token, the hashed key exists.
    let plain = tessera.cache().with_key_prefix(cache_toolkit::KeyPrefix::default());
    let token_key = format!("{prefix}token:{}", issued.token.expose());
    assert!(!plain.key_exists(&token_key).await.unwrap(), "a hashed store keeps no plain token key");
    let hashed_key = format!("{prefix}token:sha256:{}", crate::secrets_in_logs::sha256_hex(issued.token.expose()));
    assert!(plain.key_exists(&hashed_key).await.unwrap(), "no {hashed_key}");
    assert_eq!(tessera.authenticator().revoke_all(&user).await.unwrap(), 1);
    tessera.close().await;
}

#[tokio::test]
async fn the_builder_refuses_bad_values_and_unknown_settings() {
    let error = Tessera::embedded_builder().setting("TESSERA_NEAR_CACH", "on").connect().await.unwrap_err();
    assert!(matches!(&error, TesseraError::Settings(_)), "{error}");
    assert!(error.to_string().contains("TESSERA_NEAR_CACH"), "{error}");
    let error = Tessera::embedded_builder()
        .max_session_lifetime(std::time::Duration::from_millis(500))
        .connect()
        .await
        .unwrap_err();
    assert!(error.to_string().contains("TESSERA_MAX_SESSION_LIFETIME"), "{error}");
    let error = Tessera::embedded_builder().key_prefix("has space").connect().await.unwrap_err();
    assert!(error.to_string().contains("TESSERA_KEY_PREFIX"), "{error}");
}
