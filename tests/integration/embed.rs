//! `Tessera::connect` as another service would use it, on the shared standalone Redis: tokens
//! issued through it verify, its cache is the same store, and bad URLs or an absent Redis are
//! typed errors; the embedded store has its own constructor (no magic URL).

use http_server::prelude::*;
use tests::free_port;

#[tokio::test]
async fn connect_to_redis_issues_verifies_and_caches() {
    let tessera = Tessera::connect(&tests::Topology::Standalone.url()).await.unwrap();
    let user = UserId::text(&format!("embed-{}", std::process::id())).unwrap();
    assert!(tessera.describe_store().starts_with("redis standalone"), "{}", tessera.describe_store());
    let issued = tessera.authenticator().issue(user.clone(), MetadataObject::new(), None).await.unwrap();
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
    let issued = tessera.authenticator().issue(UserId::Integer(5), MetadataObject::new(), None).await.unwrap();
    assert!(matches!(tessera.authenticator().verify(issued.token.expose()).await.unwrap(), Verification::Valid(_)));
    tessera.close().await;
}
