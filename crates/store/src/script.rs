//! Server-side scripts: [`CacheScript`] (Lua source plus its SHA-1, sent by EVALSHA and
//! reloaded on NOSCRIPT) and [`ScriptReply`], a script's answer as plain Rust data.
//!
//! `cache-toolkit` runs them only where `CacheClient::runs_scripts` holds (standalone or
//! Sentinel Redis: not a cluster, whose scripts may not span slots, nor the embedded store), and
//! [`load`] (its `load_script`) may put one on every primary ahead of its first use.

use fred::{
    error::Error as FredError,
    interfaces::{ClientLike, LuaInterface},
    types::{Value, scripts::Script},
};

use crate::route::Route;

/// A Lua script run with `cache_toolkit::CacheClient::run_script`. Build it once (e.g. in a
/// `LazyLock`) and reuse it: the SHA-1 is computed at construction.
#[derive(Debug)]
pub struct CacheScript {
    lua: &'static str,
    script: Script,
}

impl CacheScript {
    pub fn new(lua: &'static str) -> Self {
        Self { lua, script: Script::from_lua(lua) }
    }

    pub fn lua(&self) -> &'static str {
        self.lua
    }
}

/// What a script returned (Lua `false`/`nil` is `Nil`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScriptReply {
    Nil,
    Integer(i64),
    Text(String),
    /// A reply that was not valid UTF-8.
    Bytes(Vec<u8>),
    Array(Vec<ScriptReply>),
}

impl ScriptReply {
    fn from_value(value: Value) -> Self {
        match value {
            Value::Null | Value::Queued => Self::Nil,
            Value::Boolean(flag) => Self::Integer(i64::from(flag)),
            Value::Integer(number) => Self::Integer(number),
            Value::Double(number) => Self::Text(number.to_string()),
            Value::String(text) => Self::Text(text.to_string()),
            Value::Bytes(bytes) => match String::from_utf8(bytes.to_vec()) {
                Ok(text) => Self::Text(text),
                Err(error) => Self::Bytes(error.into_bytes()),
            },
            Value::Array(items) => Self::Array(items.into_iter().map(Self::from_value).collect()),
            Value::Map(map) => Self::Array(
                map.inner()
                    .into_iter()
                    .flat_map(|(key, value)| [Self::from_value(Value::from(key)), Self::from_value(value)])
                    .collect(),
            ),
        }
    }
}

pub async fn run(
    route: &Route,
    script: &CacheScript,
    keys: Vec<String>,
    args: Vec<String>,
) -> Result<ScriptReply, FredError> {
    let pool = route.pool_for(keys.first().map_or("", String::as_str))?;
    let value: Value = script.script.evalsha_with_reload(pool.next(), keys, args).await?;
    Ok(ScriptReply::from_value(value))
}

/// SCRIPT LOAD on every primary, so the first EVALSHA finds it.
pub async fn load(route: &Route, script: &CacheScript) -> Result<(), FredError> {
    for node in route.pools() {
        let client = node.pool.next();
        if client.is_clustered() {
            client.script_load_cluster::<String, _>(script.lua).await?;
        } else {
            for client in node.pool.clients() {
                client.script_load::<String, _>(script.lua).await?;
            }
        }
    }
    Ok(())
}
