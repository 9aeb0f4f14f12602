//! The journal against its promises: everything the keyspace holds comes back after a restart
//! (every type, deadlines to the millisecond, fencing counters); a torn last record is cut, a
//! corrupt one stops the start and `recover` keeps what precedes it; the directory admits one
//! process; a rewrite keeps the same keyspace in a bounded file, writes made during it included.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicUsize, Ordering},
    time::Duration,
};

use super::{DataDirError, Durability, Fsync, JOURNAL_FILE, recover};
use crate::{EmbeddedStore, ListEnd, Ttl};

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "tessera-journal-test-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        Self(dir)
    }

    fn durability(&self) -> Durability {
        Durability::new(&self.0, Fsync::EverySecond)
    }

    fn journal(&self) -> PathBuf {
        self.0.join(JOURNAL_FILE)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn open(dir: &TempDir) -> EmbeddedStore {
    EmbeddedStore::open(&dir.durability()).unwrap_or_else(|error| panic!("{error}")).0
}

fn remaining(store: &EmbeddedStore, key: &str) -> Duration {
    match store.ttl(key) {
        Ttl::ExpiresIn(left) => left,
        other => panic!("{key}: {other:?}"),
    }
}

/// Fills a store with one of each kind of value.
fn fill(store: &EmbeddedStore) -> u64 {
    assert!(store.set("token:a", r#"{"user_id": 1}"#, Some(Duration::from_secs(600)), false));
    assert!(store.set("plain", "forever", None, false));
    assert!(store.set("gone", "soon", None, false));
    assert_eq!(store.delete(&["gone"]), 1);
    store.list_push("token_list:1", &["a", "b", "c"], ListEnd::Left).unwrap();
    assert_eq!(store.list_remove("token_list:1", 1, "b").unwrap(), 1);
    assert!(store.expire("token_list:1", Duration::from_secs(900)));
    store.hash_set("profile", "name", "alice").unwrap();
    store.hash_set("profile", "plan", "pro").unwrap();
    store.hash_delete("profile", "plan").unwrap();
    store.set_bits("bloom:users", &[1, 9, 64]).unwrap();
    store.acquire_fenced("lock:job", "lock:job:fence", "me", Duration::from_secs(30)).unwrap();
    store.acquire_fenced("lock:other", "lock:job:fence", "me", Duration::from_secs(30)).unwrap().unwrap()
}

#[test]
fn a_restart_brings_back_every_type_with_its_deadline() {
    let dir = TempDir::new();
    let store = open(&dir);
    let fence = fill(&store);
    let token_left = remaining(&store, "token:a");
    drop(store);

    let (store, loaded) = EmbeddedStore::open(&dir.durability()).unwrap();
    assert_eq!(loaded.torn_tail, None);
    assert_eq!(loaded.keys, 8, "{loaded:?}");
    assert_eq!(store.get("token:a").unwrap().as_deref(), Some(r#"{"user_id": 1}"#));
    let after = remaining(&store, "token:a");
    // Deadlines are kept to the millisecond (two clock readings apart: a few ms either way).
    let (low, high) = (token_left.saturating_sub(Duration::from_secs(1)), token_left + Duration::from_millis(5));
    assert!(low <= after && after <= high, "{token_left:?} → {after:?}");
    assert_eq!(store.ttl("plain"), Ttl::NoExpiry);
    assert_eq!(store.get("gone").unwrap(), None);
    assert_eq!(store.list_range("token_list:1", 0, -1).unwrap(), ["c", "a"]);
    assert!(remaining(&store, "token_list:1") > Duration::from_secs(890));
    let profile = store.hash_get_all("profile").unwrap();
    assert_eq!(profile.len(), 1);
    assert_eq!(profile.get("name").map(String::as_str), Some("alice"));
    assert_eq!(store.get_bits("bloom:users", &[1, 2, 9, 64, 65]).unwrap(), [true, false, true, true, false]);
    assert!(remaining(&store, "lock:job") > Duration::from_secs(29));
    // The fencing counter goes on from where it was, never back.
    store.delete(&["lock:job"]);
    let next = store.acquire_fenced("lock:job", "lock:job:fence", "me", Duration::from_secs(30)).unwrap().unwrap();
    assert_eq!(next, fence + 1);
}

#[test]
fn the_directory_and_the_journal_are_this_users_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new();
    let store = open(&dir);
    assert!(store.set("token:secret", "{}", None, false));
    store.rewrite_journal().unwrap();
    drop(store);
    let mode = |path: &Path| fs::metadata(path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir.0), 0o700);
    assert_eq!(mode(&dir.journal()), 0o600, "the rewritten journal too");
    assert_eq!(mode(&dir.0.join(super::LOCK_FILE)), 0o600);
}

#[test]
fn a_key_that_expired_while_the_process_was_down_stays_gone() {
    let dir = TempDir::new();
    let store = open(&dir);
    assert!(store.set("short", "v", Some(Duration::from_millis(150)), false));
    assert!(store.set("long", "v", Some(Duration::from_secs(60)), false));
    drop(store);
    std::thread::sleep(Duration::from_millis(250));
    let (store, loaded) = EmbeddedStore::open(&dir.durability()).unwrap();
    assert_eq!(loaded.keys, 1);
    assert_eq!(store.get("short").unwrap(), None);
    assert_eq!(store.get("long").unwrap().as_deref(), Some("v"));
}

#[test]
fn a_torn_last_record_is_cut_back_to_the_last_whole_one() {
    let dir = TempDir::new();
    let store = open(&dir);
    assert!(store.set("kept", "v", None, false));
    assert!(store.set("cut", "w", None, false));
    drop(store);
    let bytes = fs::read(dir.journal()).unwrap();
    // A crash in the middle of the last record: the file ends 3 bytes into it.
    let whole = bytes.len();
    let last_frame = frame_starts(&bytes).last().copied().unwrap();
    fs::write(dir.journal(), &bytes[..last_frame + 3]).unwrap();

    let (store, loaded) = EmbeddedStore::open(&dir.durability()).unwrap();
    assert_eq!(loaded.torn_tail, Some(3));
    assert_eq!(store.get("kept").unwrap().as_deref(), Some("v"));
    assert_eq!(store.get("cut").unwrap(), None);
    drop(store);
    assert_eq!(fs::metadata(dir.journal()).unwrap().len() as usize, last_frame, "the torn bytes are gone");
    assert!(last_frame < whole);

    // Zeros to the end of the file (a crash after the file grew): cut the same way.
    let mut zeroed = fs::read(dir.journal()).unwrap();
    zeroed.extend_from_slice(&[0; 64]);
    fs::write(dir.journal(), &zeroed).unwrap();
    let (store, loaded) = EmbeddedStore::open(&dir.durability()).unwrap();
    assert_eq!(loaded.torn_tail, Some(64));
    assert_eq!(store.get("kept").unwrap().as_deref(), Some("v"));
}

#[test]
fn corruption_before_the_end_stops_the_start_and_recover_keeps_what_precedes_it() {
    let dir = TempDir::new();
    let store = open(&dir);
    for index in 0..5 {
        assert!(store.set(&format!("key:{index}"), "value", None, false));
    }
    drop(store);
    let mut bytes = fs::read(dir.journal()).unwrap();
    let third = frame_starts(&bytes)[2];
    bytes[third + 12] ^= 0xff;
    fs::write(dir.journal(), &bytes).unwrap();

    let error = EmbeddedStore::open(&dir.durability()).unwrap_err();
    match &error {
        DataDirError::Corrupt { offset, file, .. } => {
            assert_eq!(*offset, third as u64);
            assert_eq!(file, &dir.journal());
        }
        other => panic!("{other}"),
    }
    assert!(error.to_string().contains("tessera data recover"), "{error}");
    assert_eq!(fs::read(dir.journal()).unwrap(), bytes, "a failed start changes nothing");

    let recovered = recover(&dir.0).unwrap();
    assert_eq!(recovered.records, 2);
    let saved = recovered.saved_as.expect("the journal as it was is kept");
    assert_eq!(fs::read(&saved).unwrap(), bytes);
    let store = open(&dir);
    assert_eq!(store.get("key:1").unwrap().as_deref(), Some("value"));
    assert_eq!(store.get("key:2").unwrap(), None);
}

#[test]
fn a_second_process_on_the_directory_is_refused_with_the_holders_pid() {
    let dir = TempDir::new();
    let store = open(&dir);
    let error = EmbeddedStore::open(&dir.durability()).unwrap_err();
    assert!(
        matches!(&error, DataDirError::Locked { holder, .. } if *holder == std::process::id().to_string()),
        "{error}"
    );
    assert!(error.to_string().contains(&dir.0.display().to_string()), "{error}");
    assert!(matches!(recover(&dir.0), Err(DataDirError::Locked { .. })), "recover waits for the directory too");
    drop(store);
    open(&dir);
}

#[test]
fn a_file_that_is_no_journal_is_refused() {
    let dir = TempDir::new();
    fs::create_dir_all(&dir.0).unwrap();
    fs::write(dir.journal(), "not a journal at all\n").unwrap();
    assert!(matches!(EmbeddedStore::open(&dir.durability()), Err(DataDirError::NotAJournal { .. })));
}

#[test]
fn a_rewrite_keeps_the_keyspace_in_a_bounded_file_including_writes_made_during_it() {
    let dir = TempDir::new();
    let store = open(&dir);
    for round in 0..200 {
        for key in 0..100 {
            assert!(store.set(&format!("key:{key:03}"), &format!("value {round}"), None, false));
        }
        store.list_push("list", &[&format!("{round}")], ListEnd::Left).unwrap();
        store.list_trim("list", 0, 9).unwrap();
    }
    let before = wait_for_written(&store);
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for key in 0..3_000 {
                assert!(store.set(&format!("during:{key:04}"), "x", None, false));
                if key % 10 == 0 {
                    store.delete(&[&format!("key:{:03}", key / 30)]);
                }
            }
        })
    };
    store.rewrite_journal().unwrap();
    writer.join().unwrap();
    let expected = everything(&store);
    drop(store);
    let after = fs::metadata(dir.journal()).unwrap().len();
    assert!(after < before / 4, "{before} bytes before the rewrite, {after} after");

    let store = open(&dir);
    let replayed = everything(&store);
    let lost: Vec<_> = expected.iter().filter(|pair| !replayed.contains(pair)).take(5).collect();
    let extra: Vec<_> = replayed.iter().filter(|pair| !expected.contains(pair)).take(5).collect();
    assert!(lost.is_empty() && extra.is_empty(), "lost {lost:?}…, extra {extra:?}… of {} keys", expected.len());
    assert_eq!(store.list_range("list", 0, -1).unwrap().len(), 10);
}

/// Every string key and value, sorted.
fn everything(store: &EmbeddedStore) -> Vec<(String, String)> {
    let mut keys = Vec::new();
    let mut after = None;
    loop {
        let page = store.scan(after.as_deref(), "*", 500);
        keys.extend(page.keys);
        match page.next {
            Some(next) => after = Some(next.to_string()),
            None => break,
        }
    }
    let mut pairs: Vec<(String, String)> =
        keys.into_iter().filter_map(|key| Some((key.clone(), store.get(&key).ok()??))).collect();
    pairs.sort();
    pairs
}

/// The journal's length once the writer has written what was appended.
fn wait_for_written(store: &EmbeddedStore) -> u64 {
    let mut last = 0;
    for _ in 0..200 {
        let now = store.journal_bytes();
        if now == last && now > 0 {
            return now;
        }
        last = now;
        std::thread::sleep(Duration::from_millis(10));
    }
    last
}

/// Where each frame starts in a journal's bytes.
fn frame_starts(bytes: &[u8]) -> Vec<usize> {
    let mut starts = Vec::new();
    let mut offset = super::MAGIC.len();
    while offset + 8 <= bytes.len() {
        starts.push(offset);
        let length = u32::from_le_bytes(bytes[offset..offset + 4].try_into().unwrap()) as usize;
        offset += 8 + length;
    }
    starts
}

#[tokio::test]
async fn with_always_a_write_is_on_disk_when_it_is_acknowledged() {
    let dir = TempDir::new();
    let (store, _) = EmbeddedStore::open(&Durability::new(&dir.0, Fsync::Always)).unwrap();
    let before = fs::metadata(dir.journal()).unwrap().len();
    assert!(store.set("acknowledged", "v", None, false));
    store.settle(false).await.unwrap();
    assert!(fs::metadata(dir.journal()).unwrap().len() > before, "settled means written (and synced)");
    let _ = Path::new("");
}

#[tokio::test]
async fn a_forced_sync_under_everysec_is_not_left_for_the_next_period() {
    let dir = TempDir::new();
    let store = open(&dir);
    for round in 0..20 {
        let started = std::time::Instant::now();
        assert!(store.set("fence", &round.to_string(), None, false));
        store.settle(true).await.unwrap();
        assert!(started.elapsed() < Duration::from_millis(500), "round {round}: {:?}", started.elapsed());
    }
}
