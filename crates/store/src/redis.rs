//! The Redis side of each operation, over a fred pool: the exact commands sent. Nothing here
//! counts, logs or maps errors: `CacheStore::run` turns a failure into a [`crate::StoreFailure`],
//! and `cache-toolkit`'s `CacheClient::call` does the rest around every call.
//!
//! Each key goes to the pool of its primary ([`Route::pool_for`]), so multi-key work stays
//! inside a hash slot: UNLINK groups its keys by slot on a cluster, each group sent to its
//! slot's primary at once (chunks of `UNLINK_CHUNK` elsewhere), and a pattern delete SCANs
//! every primary, never KEYS. The scripts here (a lock taken with its fencing counter,
//! compare-and-delete, compare-and-pexpire, and the capped push: LPUSH then LTRIM, answering
//! what it evicted) each touch one key or keys of one slot, so they run on a cluster too,
//! unlike a [`crate::CacheScript`], which runs only on standalone or Sentinel Redis. GET and
//! LPOS of a known token are sent together, one round trip ([`get_and_list_position`]).

use std::{
    collections::HashMap,
    future::{Future, poll_fn},
    pin::pin,
    sync::LazyLock,
    task::Poll,
    time::Duration,
};

use fred::{
    clients::{Client, Pool},
    error::{Error as FredError, ErrorKind as FredErrorKind},
    interfaces::{ClientLike, HashesInterface, KeysInterface, ListInterface},
    types::{
        ClusterHash, CustomCommand, Expiration, SetOptions, Value, config::Options, scan::Scanner, scripts::Script,
    },
};
use futures::StreamExt;

use crate::{ListEnd, Ttl, route::Route};

/// Keys per UNLINK outside a cluster: big enough to amortize the round trip, small enough not
/// to block Redis noticeably.
const UNLINK_CHUNK: usize = 500;
/// SCAN's COUNT hint.
const SCAN_PAGE: u32 = 500;
/// Bit operations per BITFIELD command: one command never grows past a few thousand
/// arguments (a long command blocks Redis); more operations are pipelined on one connection.
const BITFIELD_CHUNK: usize = 1_024;

static RELEASE_IF_EQUALS: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end",
    )
});

static PEXPIRE_IF_EQUALS: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end",
    )
});

/// SET NX PX of the lock key and INCR of its fencing counter (same hash slot), atomically:
/// the token exists exactly when the lock was taken. Answers nil when the lock is held. If the
/// INCR fails (the counter holds another type), the lock key just set is removed again and the
/// error returned, so a failed acquisition never leaves a lock behind.
static ACQUIRE_FENCED: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        "if not redis.call('set', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return false end \
         local token = redis.pcall('incr', KEYS[2]) \
         if type(token) == 'table' and token.err then redis.call('del', KEYS[1]) end \
         return token",
    )
});

/// LPUSH of ARGV[2..] (one element at a time: LPUSH a b leaves b first, and so does this),
/// then LTRIM to the first ARGV[1] elements, in one atomic step on one key (so it runs on a
/// cluster too). Answers `{length after, the removed elements in list order}`; a cap of 0
/// deletes the list (`LTRIM 0 -1` would keep everything).
static PUSH_CAPPED: LazyLock<Script> = LazyLock::new(|| {
    Script::from_lua(
        "for index = 2, #ARGV do redis.call('lpush', KEYS[1], ARGV[index]) end \
         local evicted = redis.call('lrange', KEYS[1], ARGV[1], -1) \
         if #evicted > 0 then \
           if tonumber(ARGV[1]) == 0 then redis.call('del', KEYS[1]) \
           else redis.call('ltrim', KEYS[1], 0, tonumber(ARGV[1]) - 1) end \
         end \
         return {redis.call('llen', KEYS[1]), evicted}",
    )
});

pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

pub async fn get(route: &Route, key: &str) -> Result<Option<String>, FredError> {
    route.on_key(key, |client: Client| async move { client.get(key).await }).await
}

/// SET with PX and, for locks, NX. Returns whether the value was written.
pub async fn set(
    route: &Route,
    key: &str,
    value: &str,
    ttl: Option<Duration>,
    only_if_absent: bool,
) -> Result<bool, FredError> {
    route
        .on_key(key, |client: Client| async move {
            let expire = ttl.map(|ttl| Expiration::PX(millis(ttl)));
            let options = only_if_absent.then_some(SetOptions::NX);
            // NX that did not write answers nil, which fred refuses to read as a bool (docs/FRED.md).
            let reply: Option<String> = client.set(key, value, expire, options, false).await?;
            Ok(reply.is_some())
        })
        .await
}

pub async fn expire(route: &Route, key: &str, ttl: Duration) -> Result<bool, FredError> {
    route.on_key(key, |client: Client| async move { client.pexpire(key, millis(ttl), None).await }).await
}

pub async fn exists(route: &Route, key: &str) -> Result<bool, FredError> {
    route
        .on_key(key, |client: Client| async move {
            let count: i64 = client.exists(key).await?;
            Ok(count > 0)
        })
        .await
}

/// One EXISTS per key: a cluster refuses multi-key EXISTS across slots. Pipelined on one
/// connection, or, where Tessera routes a cluster itself, sent to each key's primary at once.
pub async fn existing(route: &Route, keys: &[String]) -> Result<Vec<bool>, FredError> {
    let counts: Vec<i64> = match route {
        Route::Pool(pool) => {
            let pipeline = pool.next().pipeline();
            for key in keys {
                let () = pipeline.exists(key.as_str()).await?;
            }
            pipeline.all().await?
        }
        Route::Cluster(_) => {
            futures::future::try_join_all(keys.iter().map(async |key| {
                route.on_key(key, |client: Client| async move { client.exists(key.as_str()).await }).await
            }))
            .await?
        }
    };
    Ok(counts.into_iter().map(|count| count > 0).collect())
}

pub async fn ttl(route: &Route, key: &str) -> Result<Ttl, FredError> {
    route
        .on_key(key, |client: Client| async move {
            let millis: i64 = client.pttl(key).await?;
            Ok(match millis {
                -2 => Ttl::Missing,
                -1 => Ttl::NoExpiry,
                left => Ttl::ExpiresIn(Duration::from_millis(u64::try_from(left).unwrap_or(0))),
            })
        })
        .await
}

pub async fn hash_set(route: &Route, name: &str, field: &str, value: &str) -> Result<bool, FredError> {
    route
        .on_key(name, |client: Client| async move {
            let added: i64 = client.hset(name, (field, value)).await?;
            Ok(added > 0)
        })
        .await
}

pub async fn hash_get(route: &Route, name: &str, field: &str) -> Result<Option<String>, FredError> {
    route.on_key(name, |client: Client| async move { client.hget(name, field).await }).await
}

pub async fn hash_get_all(route: &Route, name: &str) -> Result<HashMap<String, String>, FredError> {
    route.on_key(name, |client: Client| async move { client.hgetall(name).await }).await
}

pub async fn hash_delete(route: &Route, name: &str, field: &str) -> Result<bool, FredError> {
    route
        .on_key(name, |client: Client| async move {
            let removed: i64 = client.hdel(name, field).await?;
            Ok(removed > 0)
        })
        .await
}

pub async fn list_push(route: &Route, name: &str, values: Vec<String>, end: ListEnd) -> Result<u64, FredError> {
    let values = &values;
    route
        .on_key(name, |client: Client| async move {
            // Cloned per attempt: a redirected push is sent again.
            match end {
                ListEnd::Left => client.lpush(name, values.clone()).await,
                ListEnd::Right => client.rpush(name, values.clone()).await,
            }
        })
        .await
}

pub async fn list_len(route: &Route, name: &str) -> Result<u64, FredError> {
    route.on_key(name, |client: Client| async move { client.llen(name).await }).await
}

pub async fn list_range(route: &Route, name: &str, start: i64, stop: i64) -> Result<Vec<String>, FredError> {
    route.on_key(name, |client: Client| async move { client.lrange(name, start, stop).await }).await
}

pub async fn list_pop(route: &Route, name: &str, end: ListEnd) -> Result<Option<String>, FredError> {
    route
        .on_key(name, |client: Client| async move {
            match end {
                ListEnd::Left => client.lpop(name, None).await,
                ListEnd::Right => client.rpop(name, None).await,
            }
        })
        .await
}

pub async fn list_position(route: &Route, name: &str, value: &str) -> Result<Option<u64>, FredError> {
    route.on_key(name, |client: Client| async move { client.lpos(name, value, None, None, None).await }).await
}

/// GET `key` and LPOS `list` `element` in one round trip without a script: sent together on
/// one connection, or, when the two keys live on two primaries of a cluster Tessera routes
/// itself, to both at once.
pub async fn get_and_list_position(
    route: &Route,
    key: &str,
    list: &str,
    element: &str,
) -> Result<(Option<String>, Option<u64>), FredError> {
    match send_get_and_list_position(route, key, list, element).await {
        // A slot moving (or moved): each command on its own, redirects followed.
        Err(error) if matches!(route, Route::Cluster(_)) && crate::Redirect::of(&error).is_some() => {
            futures::future::try_join(get(route, key), list_position(route, list, element)).await
        }
        answer => answer,
    }
}

async fn send_get_and_list_position(
    route: &Route,
    key: &str,
    list: &str,
    element: &str,
) -> Result<(Option<String>, Option<u64>), FredError> {
    let pool = route.pool_for(key)?;
    let list_pool = match route {
        Route::Pool(_) => None,
        Route::Cluster(_) => Some(route.pool_for(list)?).filter(|list_pool| !crate::route::same_pool(&pool, list_pool)),
    };
    // Two commands sent at once, on one client where both keys live together: fred writes them
    // back to back (one round trip) and feeds them without a flush of their own when other
    // commands are queued, which costs less than a `Pipeline`
    // (docs/PERFORMANCE.md#known-token-pair).
    let client = pool.next();
    let list_client = list_pool.as_ref().map_or(client, Pool::next);
    // One bound for the pair, at the client's command timeout, instead of fred's timer per
    // command: the two commands carry none of their own (a timer per command costs about 8 % of
    // this path's throughput, docs/PERFORMANCE.md#pair-timeout), and the pair is given up as one.
    let bound = client.perf_config().default_command_timeout;
    let unbounded = Options { timeout: Some(Duration::ZERO), ..Options::default() };
    let (client, list_client) = (client.with_options(&unbounded), list_client.with_options(&unbounded));
    // Polled where they lie, not through `futures::join`: its `MaybeDone` moves a finished
    // future's whole state to take the output, and a fred command's state is about 7 KB (with
    // `join`, memmove tops this path's profile at 12–14 % of the samples,
    // docs/PERFORMANCE.md#pair-polling).
    let mut value = pin!(client.get::<Value, _>(key));
    let mut position = pin!(list_client.lpos::<Value, _, _>(list, element, None, None, None));
    let (mut value_reply, mut position_reply) = (None, None);
    // Both replies first, converted after: a server error (WRONGTYPE) from either command wins
    // over a value that is not UTF-8, as in a pipeline.
    let both = poll_fn(|context| {
        if value_reply.is_none()
            && let Poll::Ready(reply) = value.as_mut().poll(context)
        {
            value_reply = Some(reply);
        }
        if position_reply.is_none()
            && let Poll::Ready(reply) = position.as_mut().poll(context)
        {
            position_reply = Some(reply);
        }
        match (value_reply.take(), position_reply.take()) {
            (Some(value), Some(position)) => Poll::Ready((value, position)),
            (value, position) => {
                (value_reply, position_reply) = (value, position);
                Poll::Pending
            }
        }
    });
    let (value, position) = if bound.is_zero() {
        both.await
    } else {
        tokio::time::timeout(bound, both)
            .await
            .map_err(|_| FredError::new(FredErrorKind::Timeout, "Request timed out."))?
    };
    let (value, position) = (value?, position?);
    Ok((value.convert()?, position.convert()?))
}

pub async fn list_remove(route: &Route, name: &str, count: i64, value: &str) -> Result<u64, FredError> {
    route.on_key(name, |client: Client| async move { client.lrem(name, count, value).await }).await
}

pub async fn list_trim(route: &Route, name: &str, start: i64, stop: i64) -> Result<(), FredError> {
    route.on_key(name, |client: Client| async move { client.ltrim(name, start, stop).await }).await
}

/// LPUSH `values` then trim to `max_len` elements, atomically (see `PUSH_CAPPED`); returns
/// the new length and the evicted elements.
pub async fn push_capped(
    route: &Route,
    name: &str,
    values: &[String],
    max_len: u64,
) -> Result<(u64, Vec<String>), FredError> {
    route
        .on_key(name, |client: Client| async move {
            let mut args = Vec::with_capacity(1 + values.len());
            args.push(max_len.to_string());
            args.extend_from_slice(values);
            let reply: Value = PUSH_CAPPED.evalsha_with_reload(&client, name, args).await?;
            let malformed = || {
                FredError::new(FredErrorKind::Parse, "the capped push answered something else than {length, evicted}")
            };
            let Value::Array(mut parts) = reply else { return Err(malformed()) };
            let (Some(Value::Array(evicted)), Some(Value::Integer(len)), None) =
                (parts.pop(), parts.pop(), parts.pop())
            else {
                return Err(malformed());
            };
            let evicted =
                evicted.into_iter().map(|item| item.into_string().ok_or_else(malformed)).collect::<Result<_, _>>()?;
            Ok((u64::try_from(len).map_err(|_| malformed())?, evicted))
        })
        .await
}

/// Compare-and-delete in one atomic script (EVALSHA, reloaded on NOSCRIPT).
pub async fn delete_if_equals(route: &Route, key: &str, expected: &str) -> Result<bool, FredError> {
    route
        .on_key(key, |client: Client| async move {
            let deleted: i64 = RELEASE_IF_EQUALS.evalsha_with_reload(&client, key, expected).await?;
            Ok(deleted > 0)
        })
        .await
}

/// Compare-and-pexpire in one atomic script (EVALSHA, reloaded on NOSCRIPT).
pub async fn expire_if_equals(route: &Route, key: &str, expected: &str, ttl: Duration) -> Result<bool, FredError> {
    route
        .on_key(key, |client: Client| async move {
            let args = vec![expected.to_owned(), millis(ttl).to_string()];
            let extended: i64 = PEXPIRE_IF_EQUALS.evalsha_with_reload(&client, key, args).await?;
            Ok(extended > 0)
        })
        .await
}

/// Takes a lock and its fencing token in one atomic script (EVALSHA, reloaded on NOSCRIPT);
/// `None` when the lock is held. Both keys share a hash slot, so this runs on a cluster too.
pub async fn acquire_fenced(
    route: &Route,
    key: &str,
    counter: &str,
    identifier: &str,
    lease: Duration,
) -> Result<Option<u64>, FredError> {
    route
        .on_key(key, |client: Client| async move {
            let keys = vec![key.to_owned(), counter.to_owned()];
            let args = vec![identifier.to_owned(), millis(lease).to_string()];
            let token: Option<i64> = ACQUIRE_FENCED.evalsha_with_reload(&client, keys, args).await?;
            // Counters only this module writes start at 1; a negative one (written by someone else)
            // still means "acquired" and reads as 0.
            Ok(token.map(|token| u64::try_from(token).unwrap_or(0)))
        })
        .await
}

/// UNLINKs stored keys. In a cluster a multi-key command must stay inside one hash slot, so the
/// keys are grouped by slot and the groups pipelined (sent to each group's primary at once where
/// Tessera routes the cluster itself); elsewhere, chunks of `UNLINK_CHUNK`.
pub async fn unlink(route: &Route, keys: &[String]) -> Result<u64, FredError> {
    if keys.is_empty() {
        return Ok(0);
    }
    let by_slot = || {
        let mut by_slot: std::collections::BTreeMap<u16, Vec<String>> = std::collections::BTreeMap::new();
        for key in keys {
            by_slot.entry(fred::util::redis_keyslot(key.as_bytes())).or_default().push(key.clone());
        }
        by_slot
    };
    let pool = match route {
        Route::Pool(pool) => pool,
        Route::Cluster(nodes) => {
            let counts = futures::future::try_join_all(by_slot().into_iter().map(async |(slot, group)| {
                nodes
                    .on_slot(slot, |client: Client| {
                        let group = group.clone();
                        async move { client.unlink::<u64, _>(group).await }
                    })
                    .await
            }))
            .await?;
            return Ok(counts.into_iter().sum());
        }
    };
    let client = pool.next();
    let groups: Vec<Vec<String>> = if client.is_clustered() {
        by_slot().into_values().collect()
    } else {
        keys.chunks(UNLINK_CHUNK).map(<[String]>::to_vec).collect()
    };
    if let [only] = groups.as_slice() {
        return pool.unlink(only.clone()).await;
    }
    let pipeline = client.pipeline();
    for group in groups {
        let () = pipeline.unlink(group).await?;
    }
    let counts: Vec<u64> = pipeline.all().await?;
    Ok(counts.into_iter().sum())
}

/// SCANs every primary (never KEYS) and UNLINKs each page as it comes.
pub async fn delete_matching(route: &Route, pattern: &str) -> Result<u64, FredError> {
    match route {
        Route::Pool(pool) => {
            let client = pool.next();
            if client.is_clustered() {
                unlink_pages(route, client.scan_cluster(pattern, Some(SCAN_PAGE), None)).await
            } else {
                unlink_pages(route, client.scan(pattern, Some(SCAN_PAGE), None)).await
            }
        }
        Route::Cluster(nodes) => {
            let mut deleted = 0;
            for node in nodes.nodes() {
                deleted += unlink_pages(route, node.pool.next().scan(pattern, Some(SCAN_PAGE), None)).await?;
            }
            Ok(deleted)
        }
    }
}

async fn unlink_pages(
    route: &Route,
    pages: impl futures::Stream<Item = Result<fred::types::scan::ScanResult, FredError>>,
) -> Result<u64, FredError> {
    let mut pages = std::pin::pin!(pages);
    let mut deleted = 0;
    while let Some(page) = pages.next().await {
        let mut page = page?;
        deleted += unlink(route, &page_keys(page.take_results())).await?;
        page.next();
    }
    Ok(deleted)
}

fn page_keys(keys: Option<Vec<fred::types::Key>>) -> Vec<String> {
    keys.unwrap_or_default().into_iter().filter_map(|key| key.into_string()).collect()
}

/// Sets each bit at `offsets` to 1 (bit 0 is the most significant bit of byte 0; the string
/// grows with zero bytes): `BITFIELD key SET u1 <offset> 1 …`, chunks of `BITFIELD_CHUNK`
/// pipelined on one connection, so one round trip. fred has no BITFIELD method: it is sent as
/// a custom command routed by its key (its first argument).
pub async fn set_bits(route: &Route, key: &str, offsets: &[u64]) -> Result<(), FredError> {
    bitfield(route, key, offsets, "BITFIELD", "SET", Some(1)).await.map(drop)
}

/// Reads the bit at each of `offsets`, in order (0 past the end or when the key is missing):
/// `BITFIELD_RO key GET u1 <offset> …`, chunked and pipelined like [`set_bits`].
pub async fn get_bits(route: &Route, key: &str, offsets: &[u64]) -> Result<Vec<bool>, FredError> {
    bitfield(route, key, offsets, "BITFIELD_RO", "GET", None).await
}

/// One BITFIELD(_RO) command per chunk of `offsets`, sent as one pipeline; returns the reply
/// integer of every operation in order (the old bit for SET, the bit for GET) as a bool.
async fn bitfield(
    route: &Route,
    key: &str,
    offsets: &[u64],
    command: &'static str,
    operation: &'static str,
    value: Option<i64>,
) -> Result<Vec<bool>, FredError> {
    route
        .on_key(key, |client: Client| async move {
            if offsets.is_empty() {
                return Ok(Vec::new());
            }
            let custom = || CustomCommand::new_static(command, ClusterHash::FirstKey, false);
            let arguments = |chunk: &[u64]| -> Result<Vec<Value>, FredError> {
                let mut arguments = Vec::with_capacity(1 + chunk.len() * 4);
                arguments.push(Value::from(key));
                for &offset in chunk {
                    let offset = i64::try_from(offset)
                        .map_err(|_| FredError::new(FredErrorKind::InvalidArgument, "bit offset out of range"))?;
                    arguments.extend([Value::from(operation), Value::from("u1"), Value::Integer(offset)]);
                    arguments.extend(value.map(Value::Integer));
                }
                Ok(arguments)
            };
            let client = client;
            let replies: Vec<Value> = if offsets.len() <= BITFIELD_CHUNK {
                vec![client.custom(custom(), arguments(offsets)?).await?]
            } else {
                let pipeline = client.pipeline();
                for chunk in offsets.chunks(BITFIELD_CHUNK) {
                    let () = pipeline.custom(custom(), arguments(chunk)?).await?;
                }
                pipeline.try_all::<Value>().await.into_iter().collect::<Result<_, _>>()?
            };
            let mut bits = Vec::with_capacity(offsets.len());
            for reply in replies {
                let Value::Array(items) = reply else {
                    return Err(FredError::new(
                        FredErrorKind::Parse,
                        format!("{command} answered {reply:?}, not an array"),
                    ));
                };
                for item in items {
                    let bit = item
                        .as_i64()
                        .ok_or_else(|| FredError::new(FredErrorKind::Parse, format!("{command} answered {item:?}")))?;
                    bits.push(bit != 0);
                }
            }
            if bits.len() != offsets.len() {
                return Err(FredError::new(
                    FredErrorKind::Parse,
                    format!("{command} answered {} bits for {} offsets", bits.len(), offsets.len()),
                ));
            }
            Ok(bits)
        })
        .await
}
