//! One round trip for a verification where the store runs scripts (Redis standalone and
//! sentinel): a Lua script reads `token:{t}`, finds `user_id` and checks `token_list:{user_id}`
//! with LPOS. Once a token was verified its user is remembered (a bounded map: a token's user
//! never changes), and later verifications send GET and LPOS together instead, also one round
//! trip and cheaper than the script for fred and Redis (docs/PERFORMANCE.md#known-token-pair).
//! Where scripts do not run (a cluster: the two keys live in different slots; the embedded
//! store), the first verification of a token takes two operations and later ones the same GET
//! and LPOS. With the near cache on, the script is not used either: Redis before 7.2 does not
//! track the list key it builds from ARGV, so cached verdicts come only from plain reads.
//!
//! The script's reading of `user_id` is only a guess made to save a round trip: Rust decodes
//! the metadata itself and uses the script's LPOS answer only when the script looked at the
//! very list Rust would have looked at; otherwise it asks again. The id is taken from the JSON
//! text as written, so a large integer (beyond a Lua double) keeps every digit.
//!
//! The script is the same for every [`crate::TokenStorage`]: it is given the entry (the token,
//! or its hashed form) and the entry's key.

use std::sync::{Arc, LazyLock};

use cache_toolkit::{CacheError, CacheErrorKind, CacheScript, ListVerdict, ScriptReply};

use crate::{CacheDao, CorruptMetadata, StoredEntry, TokenLookup, TokenRecord, keys};

/// KEYS[1] = `token:{entry}`; ARGV[1] = the entry; ARGV[2] = the (prefixed) `token_list:` key head.
/// Returns nil (no token key), `{value}` (no `user_id` it could read), or
/// `{value, user_id text, 1 | 0 | -1}` (listed, not listed, the list key holds another type).
///
/// It reads `user_id` with a pattern, not `cjson`: decoding every object in Lua cost Redis more
/// CPU than the round trip it saves. A string id with escapes, or a decoy `user_id` in a nested
/// object, only makes Rust ask again (see the module docs).
pub(crate) static VERIFY: LazyLock<CacheScript> = LazyLock::new(|| {
    CacheScript::new(
        r#"
local value = redis.call('GET', KEYS[1])
if not value then return false end
local _, head = string.find(value, '"user_id"%s*:%s*')
if not head then return {value} end
local part
if string.sub(value, head + 1, head + 1) == '"' then
  part = string.match(value, '^([^"\\]*)"', head + 2)
else
  part = string.match(value, '^(%-?%d+)', head + 1)
end
if not part or part == '' then return {value} end
local found = redis.pcall('LPOS', ARGV[2] .. part, ARGV[1])
if type(found) == 'table' and found.err then return {value, part, -1} end
if found then return {value, part, 1} end
return {value, part, 0}
"#,
    )
});

/// What the near cache keeps decoded beside a token's value: its record and the key of its
/// user's list (or why the value is corrupt).
struct CachedToken {
    record: TokenRecord,
    list_key: String,
    /// Whether the list holds this token, remembered against the cached list (near cache).
    listed: ListVerdict,
}

impl CachedToken {
    fn decode(value: &str) -> Result<Self, CorruptMetadata> {
        let record = TokenRecord::decode(value)?;
        Ok(Self { list_key: keys::token_list(record.user_id()), record, listed: ListVerdict::default() })
    }
}

/// What verification needs to know about a token.
#[derive(Debug)]
pub enum Membership {
    Missing,
    Corrupt(CorruptMetadata),
    Found { record: TokenRecord, listed: bool },
}

impl CacheDao {
    /// [`Self::membership`] of one stored form. A token whose record and list verdict are in
    /// memory (the near cache, the embedded store) is answered without awaiting anything; the
    /// store's path is boxed, so this future stays small for the hit (it is created, moved and
    /// dropped on every verification).
    pub(crate) async fn entry_membership(&self, entry: &StoredEntry) -> Result<Membership, CacheError> {
        let in_memory =
            self.cache.near_cache_enabled() || self.cache.store_kind() == cache_toolkit::StoreKind::Embedded;
        let cached = if in_memory {
            match self.cache.get_decoded_if_cached(&keys::token(entry.as_str()), CachedToken::decode) {
                Some(None) => return Ok(Membership::Missing),
                Some(Some(cached)) => match &*cached {
                    Err(corrupt) => return Ok(Membership::Corrupt(*corrupt)),
                    Ok(CachedToken { record, list_key, listed }) => {
                        if let Some(answer) = self.cache.list_contains_in_memory(list_key, entry.as_str(), listed) {
                            let listed = listed_or_not_a_list(answer)?;
                            return Ok(Membership::Found { record: record.clone(), listed });
                        }
                        Some(cached)
                    }
                },
                None => None,
            }
        } else {
            None
        };
        // Allocated before the future is built, so the compiler writes it there directly
        // instead of building it on the stack and copying it (about 15 KB of fred command
        // futures; the copy would cost 4–5 % of the server's CPU,
        // docs/PERFORMANCE.md#verification-future).
        let from_store = Box::write(Box::new_uninit(), self.entry_membership_from_store(entry, cached));
        Box::into_pin(from_store).await
    }

    /// [`Self::entry_membership`] when memory could not answer; `cached`: the token's record
    /// the near cache already holds (its list is what memory lacked).
    async fn entry_membership_from_store(
        &self,
        entry: &StoredEntry,
        cached: Option<Arc<Result<CachedToken, CorruptMetadata>>>,
    ) -> Result<Membership, CacheError> {
        // The near cache tracks only keys a command names: the script's list key, built from
        // ARGV, is not tracked before Redis 7.2, so cached verdicts come from plain reads.
        if self.cache.near_cache_enabled() || !self.cache.runs_scripts() {
            return self.membership_by_reads(entry, cached).await;
        }
        // A token verified before names its user: GET and LPOS sent together cost fred and
        // Redis less than the script (docs/PERFORMANCE.md#known-token-pair).
        if let Some(membership) = self.membership_if_user_known(entry).await? {
            return Ok(membership);
        }
        let stored = entry.as_str();
        let reply = match self.cache.run_script(&VERIFY, &[&keys::token(stored)], &[stored, &self.list_head]).await {
            Ok(reply) => reply,
            Err(error) if error.kind() == CacheErrorKind::WrongType => {
                return Ok(Membership::Corrupt(CorruptMetadata::NotAString));
            }
            Err(error) => return Err(error),
        };
        let mut items = match reply {
            ScriptReply::Nil => return Ok(Membership::Missing),
            ScriptReply::Array(items) => items.into_iter(),
            other => {
                tracing::warn!(?other, "unexpected reply from the verification script");
                return self.membership_in_two_steps(entry).await;
            }
        };
        let record = match items.next() {
            Some(ScriptReply::Text(value)) => match TokenRecord::decode(value) {
                Ok(record) => record,
                Err(corrupt) => return Ok(Membership::Corrupt(corrupt)),
            },
            Some(ScriptReply::Bytes(_)) => return Ok(Membership::Corrupt(CorruptMetadata::NotJson)),
            _ => return self.membership_in_two_steps(entry).await,
        };
        let listed = match (items.next(), items.next()) {
            (Some(ScriptReply::Text(part)), Some(ScriptReply::Integer(found)))
                if part == record.user_id().key_part() =>
            {
                found == 1
            }
            // The script read another user_id than Rust did (or none): ask again, exactly.
            _ => self.is_listed_or_not_a_list(&record, entry).await?,
        };
        self.known_users.insert(stored, record.user_id());
        Ok(Membership::Found { record, listed })
    }

    /// GET `token:{entry}` and the membership in `token_list:{user}` together (one round trip,
    /// or none from the near cache) when the entry's user is known from an earlier
    /// verification; otherwise in two steps, after which the user is known.
    async fn membership_by_reads(
        &self,
        entry: &StoredEntry,
        cached: Option<Arc<Result<CachedToken, CorruptMetadata>>>,
    ) -> Result<Membership, CacheError> {
        // The token's record is in the near cache, decoded once per stored value, and names the
        // list: only the list is read.
        if let Some(cached) = cached
            && let Ok(CachedToken { record, list_key, listed }) = &*cached
        {
            let answer = self.cache.list_contains_remembered(list_key, entry.as_str(), listed).await;
            return Ok(Membership::Found { record: record.clone(), listed: listed_or_not_a_list(answer)? });
        }
        if let Some(membership) = self.membership_if_user_known(entry).await? {
            return Ok(membership);
        }
        let membership = self.membership_in_two_steps(entry).await?;
        if let Membership::Found { record, .. } = &membership {
            self.known_users.insert(entry.as_str(), record.user_id());
        }
        Ok(membership)
    }

    /// When the entry's user is known from an earlier verification: GET `token:{entry}` and
    /// the membership in that user's list together, one round trip (or none from the near
    /// cache). `None` when the user is not known, or one of the keys holds another type (the
    /// two steps tell which).
    async fn membership_if_user_known(&self, entry: &StoredEntry) -> Result<Option<Membership>, CacheError> {
        let Some(user_id) = self.known_users.get(entry.as_str()) else { return Ok(None) };
        let token_key = keys::token(entry.as_str());
        let list_key = keys::token_list(&user_id);
        match self.cache.get_value_and_list_contains(&token_key, &list_key, entry.as_str()).await {
            Ok((None, _)) => Ok(Some(Membership::Missing)),
            Ok((Some(value), listed)) => {
                let record = match TokenRecord::decode(value) {
                    Ok(record) => record,
                    Err(corrupt) => return Ok(Some(Membership::Corrupt(corrupt))),
                };
                let listed = if record.user_id() == &user_id {
                    listed
                } else {
                    // Not what was remembered (a rewritten key): ask the right list.
                    self.known_users.insert(entry.as_str(), record.user_id());
                    self.is_listed_or_not_a_list(&record, entry).await?
                };
                Ok(Some(Membership::Found { record, listed }))
            }
            Err(error) if error.kind() == CacheErrorKind::WrongType => Ok(None),
            Err(error) => Err(error),
        }
    }

    async fn membership_in_two_steps(&self, entry: &StoredEntry) -> Result<Membership, CacheError> {
        Ok(match self.read_entry(entry).await? {
            TokenLookup::Missing => Membership::Missing,
            TokenLookup::Corrupt(corrupt) => Membership::Corrupt(corrupt),
            TokenLookup::Found(record) => {
                let listed = self.is_listed_or_not_a_list(&record, entry).await?;
                Membership::Found { record, listed }
            }
        })
    }

    /// LPOS, where a list key of another type counts as "not listed".
    async fn is_listed_or_not_a_list(&self, record: &TokenRecord, entry: &StoredEntry) -> Result<bool, CacheError> {
        self.holds_or_not_a_list(&keys::token_list(record.user_id()), entry).await
    }

    /// Whether the list `list_key` holds `entry`, where a key of another type counts as "no".
    async fn holds_or_not_a_list(&self, list_key: &str, entry: &StoredEntry) -> Result<bool, CacheError> {
        listed_or_not_a_list(self.cache.list_contains(list_key, entry.as_str()).await)
    }
}

/// A membership answer where a list key of another type counts as "not listed".
fn listed_or_not_a_list(answer: Result<bool, CacheError>) -> Result<bool, CacheError> {
    match answer {
        Err(error) if error.kind() == CacheErrorKind::WrongType => Ok(false),
        other => other,
    }
}
