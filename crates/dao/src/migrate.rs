//! [`TokenStorage::Migrate`](crate::TokenStorage::Migrate): verification looks a token up in
//! hashed form, then in plain form, and moves a plain token that verifies to the hashed form.
//!
//! The move keeps two promises, whatever the store and wherever a process dies:
//! - a valid session is never lost: at every step at least one form is whole (key and list
//!   entry), so a crash leaves the token valid and the next use finishes the move;
//! - a session Tessera revoked is never made valid again: Tessera's revocations remove both
//!   forms, and a move that finds the plain form gone after writing the hashed one undoes it.
//!
//! Where scripts run (Redis standalone, sentinel) one script does the move atomically and keeps
//! the entry's place in the list (LSET). Elsewhere (a cluster: three keys in different slots;
//! the embedded store) it takes separate operations in a safe order, and the hashed entry goes
//! to the head of the list (a session just used counts as the newest for the session cap).
//! There, a process that dies between writing the hashed key and listing it leaves that key
//! unlisted (not a session): the token keeps verifying in plain form, and its move waits until
//! that key expires with the token.

use std::{sync::LazyLock, time::Duration};

use cache_toolkit::{CacheError, CacheScript, ListEnd, ScriptReply, Ttl};

use crate::{CacheDao, Membership, StoredEntry, TokenRecord, keys};

/// KEYS[1] = `token:{token}`, KEYS[2] = `token:sha256:{hex}`, KEYS[3] = `token_list:{user_id}`;
/// ARGV[1] = the token, ARGV[2] = `sha256:{hex}`. Returns 1 when moved, 0 when the plain form
/// was no longer whole (revoked since it was read, or in its last millisecond): then nothing
/// is written. PTTL is -1 only for a key without expiry; 0 is a key with under a millisecond
/// left, which must not become a key that never expires.
pub(crate) static MOVE_TO_HASHED: LazyLock<CacheScript> = LazyLock::new(|| {
    CacheScript::new(
        r"
local value = redis.call('GET', KEYS[1])
if not value then return 0 end
redis.call('LREM', KEYS[3], 0, ARGV[2])
local at = redis.call('LPOS', KEYS[3], ARGV[1])
if not at then return 0 end
local ttl = redis.call('PTTL', KEYS[1])
if ttl > 0 then
  redis.call('SET', KEYS[2], value, 'PX', ttl)
elseif ttl == -1 then
  redis.call('SET', KEYS[2], value)
else
  return 0
end
redis.call('LSET', KEYS[3], at, ARGV[2])
redis.call('LREM', KEYS[3], 0, ARGV[1])
redis.call('DEL', KEYS[1])
return 1
",
    )
});

impl CacheDao {
    /// Membership while migrating: the hashed form first; if it is not a valid session, the
    /// plain form, which is moved when it is one. Otherwise the more telling answer of the two
    /// (the hashed form's, unless it is missing).
    pub(crate) async fn membership_migrating(&self, token: &str) -> Result<Membership, CacheError> {
        let hashed = StoredEntry::hashed(token);
        let hashed_answer = self.entry_membership(&hashed).await?;
        if matches!(hashed_answer, Membership::Found { listed: true, .. }) {
            return Ok(hashed_answer);
        }
        let plain = StoredEntry::plain(token);
        match self.entry_membership(&plain).await? {
            Membership::Found { record, listed: true } => {
                if self.move_to_hashed(&record, &plain, &hashed).await? {
                    tracing::debug!("a plain token moved to the hashed form");
                    Ok(Membership::Found { record, listed: true })
                } else {
                    Ok(Membership::Missing)
                }
            }
            plain_answer if matches!(hashed_answer, Membership::Missing) => Ok(plain_answer),
            _ => Ok(hashed_answer),
        }
    }

    /// Moves a token from its plain form to its hashed form, keeping its remaining TTL.
    /// `false` when the plain form was revoked meanwhile (and nothing is left written).
    pub(crate) async fn move_to_hashed(
        &self,
        record: &TokenRecord,
        plain: &StoredEntry,
        hashed: &StoredEntry,
    ) -> Result<bool, CacheError> {
        let plain_key = keys::token(plain.as_str());
        let hashed_key = keys::token(hashed.as_str());
        let list = keys::token_list(record.user_id());
        if self.cache.runs_scripts() {
            let reply = self
                .cache
                .run_script(&MOVE_TO_HASHED, &[&plain_key, &hashed_key, &list], &[plain.as_str(), hashed.as_str()])
                .await?;
            return Ok(matches!(reply, ScriptReply::Integer(1)));
        }
        // 1. The hashed key, with the plain key's time left: not yet a session (not listed).
        //    NX makes one mover the creator; a concurrent mover (or a request racing one)
        //    leaves the rest to it: only the creator may undo, so movers never undo each other.
        let ttl = match self.cache.get_ttl(&plain_key).await? {
            Ttl::Missing => return Ok(false),
            Ttl::NoExpiry => None,
            // Under a millisecond left: expired for every purpose; never written without a TTL.
            Ttl::ExpiresIn(left) if left < Duration::from_millis(1) => return Ok(false),
            Ttl::ExpiresIn(left) => Some(left),
        };
        if !self.cache.set_value_if_absent(&hashed_key, record.json(), ttl).await? {
            return Ok(true);
        }
        // 2. The hashed entry: both forms are now whole.
        if self.cache.list_position(&list, hashed.as_str()).await?.is_none() {
            self.cache.push_to_list(&list, hashed.as_str(), ListEnd::Left).await?;
        }
        // 3. Was the plain form revoked while we wrote? Then the hashed one must go too.
        let plain_whole = self.cache.key_exists(&plain_key).await?
            && self.cache.list_position(&list, plain.as_str()).await?.is_some();
        if !plain_whole {
            self.cache.list_remove(&list, 0, hashed.as_str()).await?;
            self.cache.delete_key(&hashed_key).await?;
            return Ok(false);
        }
        // 4. The plain form goes: entry first, so no instant has a listed entry without its key.
        self.cache.list_remove(&list, 0, plain.as_str()).await?;
        self.cache.delete_key(&plain_key).await?;
        Ok(true)
    }
}
