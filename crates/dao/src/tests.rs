//! Key texts pinned (the contract with the Python system), records decoded as that system
//! writes them, and the DAO against the embedded store.

use std::{num::NonZeroU64, time::Duration};

use cache_toolkit::{CacheClient, CacheOptions, CacheStore, EmbeddedStore, KeyPrefix, ListEnd, Ttl};

use simd_json::prelude::ValueAsScalar;

use super::*;

#[test]
fn key_texts_are_the_python_systems() {
    assert_eq!(keys::token("AbC-_123"), "token:AbC-_123");
    assert_eq!(keys::token_list(&UserId::Integer(42)), "token_list:42");
    assert_eq!(keys::token_list(&UserId::Integer(-7)), "token_list:-7");
    assert_eq!(keys::token_list(&UserId::text("alice").unwrap()), "token_list:alice");
    assert_eq!(keys::token_list(&UserId::text("42").unwrap()), "token_list:42", "a string id names the same list");
}

#[tokio::test]
async fn the_key_prefix_applies_to_both_keys() {
    let store = EmbeddedStore::new();
    let raw = CacheClient::new(CacheStore::Embedded(store.clone()), CacheOptions::default());
    let prefixed = CacheClient::new(
        CacheStore::Embedded(store),
        CacheOptions { key_prefix: KeyPrefix::parse("app1:").unwrap(), ..CacheOptions::default() },
    );
    let dao = CacheDao::new(prefixed);
    let record = TokenRecord::new(UserId::Integer(7), MetadataObject::new());
    dao.store_token("tok", &record, Duration::from_secs(60), None).await.unwrap();
    assert_eq!(raw.get_value("app1:token:tok").await.unwrap().as_deref(), Some(r#"{"user_id":7}"#));
    assert_eq!(raw.get_list("app1:token_list:7").await.unwrap(), ["tok"]);
    assert_eq!(raw.get_value("token:tok").await.unwrap(), None);
}

#[test]
fn records_decode_as_the_python_system_writes_them() {
    let record = TokenRecord::decode(r#"{"user_id":42,"username":"alice","extra":{"x":[1,2.5]}}"#.to_owned()).unwrap();
    assert_eq!(record.user_id(), &UserId::Integer(42));
    assert_eq!(record.json(), r#"{"user_id":42,"username":"alice","extra":{"x":[1,2.5]}}"#, "kept verbatim");
    assert_eq!(record.field("username").and_then(|value| value.as_str()), Some("alice"));
    let big = TokenRecord::decode(r#"{"user_id":18446744073709551615}"#.to_owned()).unwrap();
    assert_eq!(big.user_id(), &UserId::Integer(18_446_744_073_709_551_615));
    let text = TokenRecord::decode(r#"{"user_id":"u-1"}"#.to_owned()).unwrap();
    assert_eq!(text.user_id(), &UserId::Text("u-1".to_owned()));
}

#[test]
fn corrupt_records_say_why() {
    let cases = [
        ("not json", CorruptMetadata::NotJson),
        ("[1,2]", CorruptMetadata::NotAnObject),
        (r#""text""#, CorruptMetadata::NotAnObject),
        (r#"{"username":"x"}"#, CorruptMetadata::NoUserId),
        (r#"{"user_id":null}"#, CorruptMetadata::BadUserId),
        (r#"{"user_id":1.5}"#, CorruptMetadata::BadUserId),
        (r#"{"user_id":""}"#, CorruptMetadata::BadUserId),
        (r#"{"user_id":[1]}"#, CorruptMetadata::BadUserId),
        (r#"{"user_id":true}"#, CorruptMetadata::BadUserId),
    ];
    for (text, expected) in cases {
        assert_eq!(TokenRecord::decode(text.to_owned()).map(|_| ()), Err(expected), "{text}");
    }
}

#[test]
fn user_ids_from_paths_and_text() {
    assert_eq!(UserId::parse("42"), Ok(UserId::Integer(42)));
    assert_eq!(UserId::parse("-7"), Ok(UserId::Integer(-7)));
    assert_eq!(UserId::parse("alice"), Ok(UserId::Text("alice".to_owned())));
    assert_eq!(UserId::parse("Zoë Smith"), Ok(UserId::Text("Zoë Smith".to_owned())), "NFC, an inner space");
    assert_eq!(UserId::text("42"), Ok(UserId::Text("42".to_owned())), "canonical digits as a string: the same list");
    assert_eq!(
        UserId::parse("123456789012345678901234567890"),
        Ok(UserId::Text("123456789012345678901234567890".to_owned())),
        "canonical digits beyond 64 bits"
    );
    assert_eq!(UserId::text(""), Err(UserIdError::Empty));
    assert_eq!(UserId::text("a\nb"), Err(UserIdError::ControlCharacter));
    assert!(matches!(UserId::text(&"x".repeat(129)), Err(UserIdError::TooLong { max: 128 })));
}

/// Every id the issue names, and their kin: refused by the canonical rule with a message that
/// states the rule; the stored-data reading still accepts them (another system wrote them).
#[test]
fn non_canonical_user_ids_are_refused_for_new_sessions_and_read_when_stored() {
    let cases: &[(&str, UserIdError)] = &[
        (" 42", UserIdError::SurroundingWhitespace),
        ("42 ", UserIdError::SurroundingWhitespace),
        ("   ", UserIdError::SurroundingWhitespace),
        ("\u{a0}alice", UserIdError::SurroundingWhitespace),
        ("٤٢", UserIdError::NotCanonicalNumber),
        ("042", UserIdError::NotCanonicalNumber),
        ("+42", UserIdError::NotCanonicalNumber),
        ("4_2", UserIdError::NotCanonicalNumber),
        ("-0", UserIdError::NotCanonicalNumber),
        ("１２", UserIdError::NotCanonicalNumber),
        ("a\u{2028}b", UserIdError::ForbiddenCharacter { kind: "line separator" }),
        ("a\u{202e}b", UserIdError::ForbiddenCharacter { kind: "format (bidi, zero-width)" }),
        ("a\u{200b}b", UserIdError::ForbiddenCharacter { kind: "format (bidi, zero-width)" }),
        ("a\u{3000}b", UserIdError::ForbiddenCharacter { kind: "whitespace other than the space" }),
        ("a\tb", UserIdError::ControlCharacter),
        ("Zoe\u{308}", UserIdError::NotNormalized),
    ];
    for (text, error) in cases {
        assert_eq!(UserId::parse(text).as_ref(), Err(error), "{text:?}");
        assert_eq!(UserId::text(text).as_ref(), Err(error), "{text:?}");
        assert!(error.to_string().contains("the rule:"), "the message states the rule: {error}");
        assert_eq!(UserId::Text((*text).to_owned()).check_canonical().as_ref(), Err(error), "{text:?}");
        if !text.contains(char::is_control) {
            assert!(UserId::existing(text).is_ok(), "{text:?} is still readable and revocable");
            let stored = format!(r#"{{"user_id":{}}}"#, simd_json::to_string(&text.to_string()).unwrap());
            assert!(TokenRecord::decode(stored).is_ok(), "{text:?} stored by another system decodes");
        }
    }
}

#[tokio::test]
async fn keep_newest_trims_the_list_and_deletes_the_dropped_tokens() {
    let dao = CacheDao::new(CacheClient::embedded());
    let user = UserId::Integer(1);
    for index in 0..5 {
        let record = TokenRecord::new(user.clone(), MetadataObject::new());
        dao.store_token(&format!("t{index}"), &record, Duration::from_secs(60), None).await.unwrap();
    }
    let three = NonZeroU64::new(3).unwrap();
    assert_eq!(texts(dao.user_entries(&user).await.unwrap()), ["t4", "t3", "t2", "t1", "t0"]);
    assert_eq!(texts(dao.keep_newest(&user, three).await.unwrap()), ["t1", "t0"]);
    assert_eq!(texts(dao.user_entries(&user).await.unwrap()), ["t4", "t3", "t2"]);
    assert!(matches!(dao.read_token("t0").await.unwrap(), TokenLookup::Missing));
    assert!(matches!(dao.read_token("t4").await.unwrap(), TokenLookup::Found(_)));
    assert!(dao.keep_newest(&user, three).await.unwrap().is_empty());
    let one = NonZeroU64::MIN;
    assert_eq!(texts(dao.keep_newest(&user, one).await.unwrap()), ["t3", "t2"]);
    assert_eq!(texts(dao.user_entries(&user).await.unwrap()), ["t4"], "the smallest cap keeps the newest");
    assert!(matches!(dao.read_token("t4").await.unwrap(), TokenLookup::Found(_)));
}

#[tokio::test]
async fn a_capped_store_evicts_the_oldest_and_never_the_new_token() {
    let dao = CacheDao::new(CacheClient::embedded());
    let user = UserId::Integer(2);
    let record = TokenRecord::new(user.clone(), MetadataObject::new());
    let cap = NonZeroU64::new(2);
    for (index, evicted) in [(0, &[][..]), (1, &[]), (2, &["c0"]), (3, &["c1"])] {
        let token = format!("c{index}");
        let stored = dao.store_token(&token, &record, Duration::from_secs(60), cap).await.unwrap();
        assert_eq!(texts(stored.evicted), evicted, "storing {token}");
        assert_eq!(stored.listed, (index + 1).min(2));
        assert!(matches!(dao.read_token(&token).await.unwrap(), TokenLookup::Found(_)), "{token} is kept");
    }
    assert_eq!(texts(dao.user_entries(&user).await.unwrap()), ["c3", "c2"]);
    for gone in ["c0", "c1"] {
        assert!(matches!(dao.read_token(gone).await.unwrap(), TokenLookup::Missing), "{gone}'s key is deleted");
    }
    let single = NonZeroU64::new(1);
    let stored = dao.store_token("c4", &record, Duration::from_secs(60), single).await.unwrap();
    assert_eq!((stored.listed, texts(stored.evicted)), (1, vec!["c3".to_owned(), "c2".to_owned()]));
    assert_eq!(texts(dao.user_entries(&user).await.unwrap()), ["c4"], "a cap of 1 keeps the new token");
}

fn texts(entries: impl IntoIterator<Item = StoredEntry>) -> Vec<String> {
    entries.into_iter().map(|entry| entry.as_str().to_owned()).collect()
}

#[test]
fn hashed_entries_are_sha256_hex_behind_a_tag() {
    let entry = StoredEntry::hashed("abc");
    let digest = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert_eq!(entry.as_str(), format!("sha256:{digest}"), "SHA-256 of `abc`, the FIPS 180-2 vector");
    assert_eq!(keys::token(entry.as_str()), format!("token:sha256:{digest}"));
    assert_eq!(entry.hashed_digest(), Some(digest));
    assert_eq!(entry.plain_token(), None);
    let plain = StoredEntry::plain("Drmhze6EPcv0fN_81Bj-nA3yXrbkQpb8ZL2E9GQx5sA");
    assert_eq!(plain.hashed_digest(), None);
    assert_eq!(plain.plain_token(), Some("Drmhze6EPcv0fN_81Bj-nA3yXrbkQpb8ZL2E9GQx5sA"));
    assert!(!format!("{plain:?}").contains("Drmhze6"), "Debug must not show a token");
    assert_eq!(StoredEntry::from_stored("sha256:xyz".to_owned()).hashed_digest(), None, "not a digest");
}

async fn store_in(dao: &CacheDao, token: &str, user: i128) {
    let record = TokenRecord::new(UserId::Integer(user), MetadataObject::new());
    dao.store_token(token, &record, Duration::from_secs(60), None).await.unwrap();
}

fn is_valid(membership: &Membership) -> bool {
    matches!(membership, Membership::Found { listed: true, .. })
}

#[tokio::test]
async fn each_storage_mode_writes_and_reads_its_forms() {
    let cache = CacheClient::embedded();
    let plain = CacheDao::with_storage(cache.clone(), TokenStorage::Plain);
    let hashed = CacheDao::with_storage(cache.clone(), TokenStorage::Hashed);
    let migrate = CacheDao::with_storage(cache.clone(), TokenStorage::Migrate);
    let hashed_key = keys::token(StoredEntry::hashed("tok-hashed").as_str());

    store_in(&hashed, "tok-hashed", 1).await;
    assert!(cache.get_value(&hashed_key).await.unwrap().is_some());
    assert_eq!(cache.get_value("token:tok-hashed").await.unwrap(), None);
    assert_eq!(cache.get_list("token_list:1").await.unwrap(), [StoredEntry::hashed("tok-hashed").as_str()]);
    assert!(is_valid(&hashed.membership("tok-hashed").await.unwrap()));
    assert!(is_valid(&migrate.membership("tok-hashed").await.unwrap()));
    assert!(matches!(plain.membership("tok-hashed").await.unwrap(), Membership::Missing), "plain reads no hash");

    store_in(&plain, "tok-plain", 1).await;
    assert!(matches!(hashed.membership("tok-plain").await.unwrap(), Membership::Missing), "hashed reads no plain");
    let stored = StoredEntry::hashed("tok-hashed");
    let digest = stored.hashed_digest().unwrap();
    for dao in [&plain, &migrate] {
        assert!(
            matches!(dao.membership(digest).await.unwrap(), Membership::Missing),
            "{:?}: a stored digest presented as a token finds nothing",
            dao.storage()
        );
    }
    assert!(plain.remove_token(&UserId::Integer(1), "tok-plain").await.unwrap());

    store_in(&migrate, "tok-migrate", 2).await;
    assert_eq!(cache.get_list("token_list:2").await.unwrap(), [StoredEntry::hashed("tok-migrate").as_str()]);
}

#[tokio::test]
async fn migrating_moves_a_plain_token_on_use_and_keeps_its_time_left() {
    let cache = CacheClient::embedded();
    let user = UserId::Integer(3);
    let plain = CacheDao::with_storage(cache.clone(), TokenStorage::Plain);
    let migrate = CacheDao::with_storage(cache.clone(), TokenStorage::Migrate);
    store_in(&plain, "older-plain-token", 3).await;
    store_in(&plain, "python-token", 3).await;
    store_in(&migrate, "newer-hashed-token", 3).await;
    assert!(is_valid(&migrate.membership("python-token").await.unwrap()));
    let hashed = StoredEntry::hashed("python-token");
    assert_eq!(cache.get_value("token:python-token").await.unwrap(), None, "the plain key is gone");
    assert!(cache.get_value(&keys::token(hashed.as_str())).await.unwrap().is_some());
    assert!(
        matches!(migrate.token_ttl("python-token").await.unwrap(), Ttl::ExpiresIn(left) if left > Duration::from_secs(50))
    );
    let list = cache.get_list("token_list:3").await.unwrap();
    assert_eq!(list.len(), 3, "{list:?}");
    assert!(list.contains(&hashed.as_str().to_owned()) && !list.contains(&"python-token".to_owned()));
    assert!(is_valid(&migrate.membership("python-token").await.unwrap()), "still valid once moved");
    assert!(migrate.remove_token(&user, "python-token").await.unwrap());
    assert!(matches!(migrate.membership("python-token").await.unwrap(), Membership::Missing));
    assert!(is_valid(&migrate.membership("older-plain-token").await.unwrap()));
}

#[tokio::test]
async fn a_move_cut_short_loses_nothing_and_a_revoked_token_stays_revoked() {
    let cache = CacheClient::embedded();
    let user = UserId::Integer(4);
    let plain = CacheDao::with_storage(cache.clone(), TokenStorage::Plain);
    let migrate = CacheDao::with_storage(cache.clone(), TokenStorage::Migrate);
    let record = TokenRecord::new(user.clone(), MetadataObject::new());

    // A process died after listing the hashed entry (both forms whole): valid, and one logout
    // in migrate mode removes both forms.
    store_in(&plain, "crashed-token", 4).await;
    let hashed = StoredEntry::hashed("crashed-token");
    cache.set_value(&keys::token(hashed.as_str()), record.json(), Some(Duration::from_secs(60))).await.unwrap();
    cache.push_to_list("token_list:4", hashed.as_str(), ListEnd::Left).await.unwrap();
    assert!(is_valid(&migrate.membership("crashed-token").await.unwrap()));
    assert!(migrate.remove_token(&user, "crashed-token").await.unwrap());
    assert!(matches!(migrate.membership("crashed-token").await.unwrap(), Membership::Missing));
    assert!(cache.get_list("token_list:4").await.unwrap().is_empty());

    // A process died after writing the hashed key only: the plain form still verifies.
    store_in(&plain, "half-moved", 4).await;
    let half = StoredEntry::hashed("half-moved");
    cache.set_value(&keys::token(half.as_str()), record.json(), Some(Duration::from_secs(60))).await.unwrap();
    assert!(is_valid(&migrate.membership("half-moved").await.unwrap()));

    // The plain form is revoked (the Python system's LREM + DEL) between the read and the move:
    // the move writes the hashed form, sees the plain one gone, and takes its own writes back.
    store_in(&plain, "revoked-meanwhile", 4).await;
    let revoked = StoredEntry::hashed("revoked-meanwhile");
    let plain_entry = StoredEntry::plain("revoked-meanwhile");
    cache.list_remove("token_list:4", 0, "revoked-meanwhile").await.unwrap();
    assert!(!migrate.move_to_hashed(&record, &plain_entry, &revoked).await.unwrap(), "the key is still there");
    assert_eq!(cache.get_value(&keys::token(revoked.as_str())).await.unwrap(), None);
    assert!(!cache.get_list("token_list:4").await.unwrap().contains(&revoked.as_str().to_owned()));
    assert!(matches!(migrate.membership("revoked-meanwhile").await.unwrap(), Membership::Found { listed: false, .. }));
}

#[test]
fn an_id_written_on_the_stack_reads_as_its_key_part() {
    let ids = [
        UserId::Integer(0),
        UserId::Integer(42),
        UserId::Integer(-7),
        UserId::Integer(i128::MAX),
        UserId::Integer(i128::MIN),
        UserId::Text("al\"ice-ü".to_owned()),
    ];
    for id in ids {
        assert_eq!(id.with_key_part(str::to_owned), id.key_part(), "{id:?}");
    }
}

/// How the list `token_list:7` is changed behind the DAO's back, and whether the token it
/// held is still listed afterwards.
#[derive(Clone, Copy, Debug)]
enum ListChange {
    RemoveToken,
    DeleteList,
    TrimToAnother,
    PopToken,
    CappedPushEvictsToken,
    ExpireList,
    OverwriteWithString,
    RecreateWithoutToken,
    PushAnother,
    ExtendTtl,
}

impl ListChange {
    const ALL: [ListChange; 10] = [
        Self::RemoveToken,
        Self::DeleteList,
        Self::TrimToAnother,
        Self::PopToken,
        Self::CappedPushEvictsToken,
        Self::ExpireList,
        Self::OverwriteWithString,
        Self::RecreateWithoutToken,
        Self::PushAnother,
        Self::ExtendTtl,
    ];

    async fn apply(self, cache: &CacheClient, list: &str, token: &str) {
        match self {
            Self::RemoveToken => assert_eq!(cache.list_remove(list, 0, token).await.unwrap(), 1),
            Self::DeleteList => assert!(cache.delete_key(list).await.unwrap()),
            Self::TrimToAnother => {
                cache.push_to_list(list, "tok-other", ListEnd::Left).await.unwrap();
                cache.list_trim(list, 0, 0).await.unwrap();
            }
            Self::PopToken => assert_eq!(cache.pop_list(list, ListEnd::Right).await.unwrap().as_deref(), Some(token)),
            Self::CappedPushEvictsToken => {
                let pushed = cache.push_to_capped_list(list, &["tok-newer"], 1).await.unwrap();
                assert_eq!(pushed.evicted, [token]);
            }
            Self::ExpireList => {
                assert!(cache.set_expiry(list, Duration::from_millis(30)).await.unwrap());
                tokio::time::sleep(Duration::from_millis(80)).await;
            }
            Self::OverwriteWithString => cache.set_value(list, "not a list", None).await.unwrap(),
            Self::RecreateWithoutToken => {
                assert!(cache.delete_key(list).await.unwrap());
                cache.push_to_list(list, "tok-other", ListEnd::Left).await.unwrap();
            }
            Self::PushAnother => {
                cache.push_to_list(list, "tok-other", ListEnd::Left).await.unwrap();
            }
            Self::ExtendTtl => assert!(cache.set_expiry(list, Duration::from_secs(600)).await.unwrap()),
        }
    }

    fn keeps_the_token(self) -> bool {
        matches!(self, Self::PushAnother | Self::ExtendTtl)
    }
}

/// On the embedded store the DAO remembers a token's list verdict against the list itself and
/// answers from it with no lookup (one store operation per verification: the token's); any
/// change to the list, its TTL, or its existence ends the verdict before the change returns.
#[tokio::test]
async fn a_remembered_list_verdict_on_the_embedded_store_ends_with_any_change_to_the_list() {
    let (token, list) = ("tok-memo", "token_list:7");
    for change in ListChange::ALL {
        let cache = CacheClient::embedded();
        let dao = CacheDao::new(cache.clone());
        store_in(&dao, token, 7).await;
        assert!(is_valid(&dao.membership(token).await.unwrap()), "{change:?}: stored and listed");
        assert!(is_valid(&dao.membership(token).await.unwrap()), "{change:?}: the verdict is remembered");
        let before = cache.metrics().snapshot().operations;
        assert!(is_valid(&dao.membership(token).await.unwrap()), "{change:?}: answered from the verdict");
        assert_eq!(
            cache.metrics().snapshot().operations - before,
            1,
            "{change:?}: a remembered verdict reads the token alone, not the list"
        );

        change.apply(&cache, list, token).await;
        let after = dao.membership(token).await;
        let listed = matches!(after, Ok(Membership::Found { listed: true, .. }));
        assert_eq!(listed, change.keeps_the_token(), "{change:?}: after the change, {after:?}");
        // Asked again (from a verdict taken after the change, where one could be), the same.
        let again = dao.membership(token).await;
        assert_eq!(matches!(again, Ok(Membership::Found { listed: true, .. })), listed, "{change:?}: {again:?}");
    }
}
