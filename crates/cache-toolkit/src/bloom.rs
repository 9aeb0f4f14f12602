//! [`BloomGuard`]: a Bloom filter of "known keys" kept in the cache store, so a lookup for a key
//! that was never added can be refused without asking the source (cache penetration).
//!
//! The whole filter is one bitmap in one Redis string at `bloom:{NAME}` (behind the client's
//! key prefix): one key is one hash slot, so it works in a cluster, and every operation is one
//! round trip: BITFIELD SET to add, BITFIELD_RO GET to test, a large batch chunked into
//! commands pipelined on one connection. The embedded store holds the same bitmap with Redis's
//! bit layout.
//!
//! Several processes share one filter, so the bit positions of an item must be the same
//! everywhere and forever: they come from XXH64 (`xxhash-rust`, pinned by tests against the
//! reference implementation's outputs) with two fixed seeds, combined by Kirsch–Mitzenmacher
//! double hashing. Never std's or foldhash's hasher: those are seeded per process or may change
//! between versions.

use crate::{CacheClient, CacheError, Op};

/// Redis's largest string (`proto-max-bulk-len`, 512 MiB by default) in bits: BITFIELD refuses
/// offsets at or past it.
const MAX_BITS: u64 = 512 * 1024 * 1024 * 8;

/// The seed of the first 64-bit hash of an item.
const FIRST_SEED: u64 = 0;
/// The seed of the second 64-bit hash (the golden-ratio constant; any fixed value other than
/// [`FIRST_SEED`] would do, but it can never change: it is part of the stored format).
const SECOND_SEED: u64 = 0x9E37_79B9_7F4A_7C15;

/// A Bloom filter in the cache store: [`Self::add`] items, then ask [`Self::might_contain`].
/// `false` means the item was certainly never added (under this name, since the last
/// [`Self::clear`]); `true` means it probably was, wrong about one time in
/// `false_positive_rate` as long as no more than `expected_items` were added.
///
/// Every instance working on one name must be built with the same `expected_items` and
/// `false_positive_rate`: they decide the bit positions, and a mismatched instance would read
/// the wrong bits (false negatives). Items cannot be removed; [`Self::clear`] empties the
/// filter. Cheap to clone (a client handle and three numbers).
#[derive(Clone, Debug)]
pub struct BloomGuard {
    client: CacheClient,
    name: String,
    key: String,
    bits: u64,
    hashes: u32,
}

impl BloomGuard {
    /// A guard sized for `expected_items` at `false_positive_rate`:
    /// `bits = ceil(-n ln p / (ln 2)^2)`, `hashes = max(1, round(bits / n · ln 2))`.
    ///
    /// Touches nothing in the store (an empty filter is a missing key). Refused with an
    /// [`crate::CacheErrorKind::InvalidInput`] error: an empty name, zero items, a rate that is
    /// not strictly between 0 and 1 (NaN included), or a bitmap larger than Redis's 512 MiB
    /// string limit.
    pub fn new(
        client: &CacheClient,
        name: &str,
        expected_items: u64,
        false_positive_rate: f64,
    ) -> Result<BloomGuard, CacheError> {
        let key = bloom_key(name);
        let refuse = |reason: String| Err(CacheError::invalid_input(Op::BloomNew, Some(&client.key(&key)), reason));
        if name.is_empty() {
            return refuse("a bloom guard needs a name".to_owned());
        }
        let (bits, hashes) = match bloom_size(expected_items, false_positive_rate) {
            Ok(size) => size,
            Err(reason) => return refuse(reason),
        };
        Ok(BloomGuard { client: client.clone(), name: name.to_owned(), key, bits, hashes })
    }

    /// The name given at construction.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The store key holding the bitmap, without the client's prefix: `bloom:{NAME}`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The bitmap's size in bits (`m`).
    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// How many bits each item sets (`k`).
    pub fn hashes(&self) -> u32 {
        self.hashes
    }

    /// Adds one item: one BITFIELD SET on Redis.
    pub async fn add(&self, item: &str) -> Result<(), CacheError> {
        self.add_many(&[item]).await
    }

    /// Adds every item in one round trip (BITFIELD SET commands, pipelined on one connection
    /// when there are many). Nothing to add costs nothing.
    pub async fn add_many<Item: AsRef<str>>(&self, items: &[Item]) -> Result<(), CacheError> {
        if items.is_empty() {
            return Ok(());
        }
        let offsets = self.offsets(items);
        self.client.set_bits(Op::BloomAdd, &self.key, &offsets).await
    }

    /// Whether `item` may have been added; `false` is certain. One BITFIELD_RO GET on Redis.
    pub async fn might_contain(&self, item: &str) -> Result<bool, CacheError> {
        let answers = self.might_contain_many(&[item]).await?;
        Ok(answers.first().copied().unwrap_or(false))
    }

    /// [`Self::might_contain`] for each item, in order, in one round trip.
    pub async fn might_contain_many<Item: AsRef<str>>(&self, items: &[Item]) -> Result<Vec<bool>, CacheError> {
        if items.is_empty() {
            return Ok(Vec::new());
        }
        let offsets = self.offsets(items);
        let bits = self.client.get_bits(Op::BloomMightContain, &self.key, &offsets).await?;
        Ok(bits.chunks(self.hashes_len()).map(|item_bits| item_bits.iter().all(|&bit| bit)).collect())
    }

    /// Empties the filter (deletes its key, whatever it holds).
    pub async fn clear(&self) -> Result<(), CacheError> {
        self.client.delete_key(&self.key).await.map(drop)
    }

    fn hashes_len(&self) -> usize {
        usize::try_from(self.hashes).unwrap_or(usize::MAX)
    }

    /// The bit positions of every item, `hashes` per item, item after item.
    fn offsets(&self, items: &[impl AsRef<str>]) -> Vec<u64> {
        let mut offsets = Vec::with_capacity(items.len() * self.hashes_len());
        for item in items {
            offsets.extend(bit_positions(item.as_ref().as_bytes(), self.bits, self.hashes));
        }
        offsets
    }
}

/// The key of the bitmap named `name` (the braces make `name` the hash tag).
fn bloom_key(name: &str) -> String {
    format!("bloom:{{{name}}}")
}

/// `(bits, hashes)` for `expected_items` at `false_positive_rate`, or why not.
fn bloom_size(expected_items: u64, false_positive_rate: f64) -> Result<(u64, u32), String> {
    if expected_items == 0 {
        return Err("a bloom guard needs at least one expected item".to_owned());
    }
    if !(false_positive_rate > 0.0 && false_positive_rate < 1.0) {
        return Err(format!("the false positive rate must be strictly between 0 and 1, not {false_positive_rate}"));
    }
    let items = expected_items as f64;
    let bits = (-items * false_positive_rate.ln() / (std::f64::consts::LN_2 * std::f64::consts::LN_2)).ceil();
    if bits > MAX_BITS as f64 {
        return Err(format!(
            "{expected_items} items at a false positive rate of {false_positive_rate} need {bits} bits, \
             more than Redis's 512 MiB string ({MAX_BITS} bits)"
        ));
    }
    // 1 <= bits <= 2^32 here, so the cast is exact.
    let bits = (bits as u64).max(1);
    let hashes = (bits as f64 / items * std::f64::consts::LN_2).round().max(1.0);
    // bits / n · ln 2 is about log2(1/p), at most 1075 for the smallest positive f64.
    let hashes = hashes as u32;
    Ok((bits, hashes))
}

/// The `hashes` bit positions of `item` in a bitmap of `bits` bits, by Kirsch–Mitzenmacher
/// double hashing: `(h1 + i·h2) mod bits` for `i` in `0..hashes`, with `h1`, `h2` the XXH64 of
/// the item under [`FIRST_SEED`] and [`SECOND_SEED`]. A step of 0 would put every position on
/// the same bit, so it becomes 1.
fn bit_positions(item: &[u8], bits: u64, hashes: u32) -> impl Iterator<Item = u64> {
    let start = xxh64(item, FIRST_SEED) % bits;
    let step = match xxh64(item, SECOND_SEED) % bits {
        0 => 1 % bits,
        step => step,
    };
    (0..hashes).scan(start, move |position, _| {
        let current = *position;
        *position = (*position + step) % bits;
        Some(current)
    })
}

/// XXH64 (Yann Collet's xxHash, 64-bit) from `xxhash-rust`, which follows the specification:
/// the stored bit positions depend on it, so `bloom::tests::xxh64_matches_the_reference` pins its
/// outputs against the reference implementation's, and a version that changed them would fail.
fn xxh64(input: &[u8], seed: u64) -> u64 {
    xxhash_rust::xxh64::xxh64(input, seed)
}

impl CacheClient {
    /// Sets the bits at `offsets` of the string at `key` to 1 (Redis's layout), one round trip.
    pub async fn set_bits(&self, operation: Op, key: &str, offsets: &[u64]) -> Result<(), CacheError> {
        let key = self.key(key);
        self.call(
            operation,
            &key,
            async |pool| store::redis::set_bits(pool, &key, offsets).await,
            |store| store.set_bits(&key, offsets),
        )
        .await
    }

    /// Reads the bits at `offsets` of the string at `key` (0 past its end or when missing),
    /// one round trip.
    pub async fn get_bits(&self, operation: Op, key: &str, offsets: &[u64]) -> Result<Vec<bool>, CacheError> {
        let key = self.key(key);
        self.call(
            operation,
            &key,
            async |pool| store::redis::get_bits(pool, &key, offsets).await,
            |store| store.get_bits(&key, offsets),
        )
        .await
    }
}

#[cfg(test)]
mod tests;
