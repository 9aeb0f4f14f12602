//! Each setting's effective value and where it came from (`default`, a file, `environment`),
//! for `tessera check-config`. Secrets are reported as set or not, never shown. A default
//! worked out at load (the store, its data directory, the pool size, the per-peer connection cap) is reported as the
//! value the server runs with, not as unset.

use figment::value::{Empty, Value};

use crate::{CONFIG_DIR_VARIABLE, DEFAULT_ORIGIN, NearCacheMode, RawSettings, SETTINGS, Settings, Sources, origin};

/// What a secret that is set is reported as.
pub const REDACTED: &str = "[redacted]";
/// What a setting that nothing sets (and that has no default value) is reported as.
pub const NOT_SET: &str = "(not set)";

/// One setting as loaded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectiveSetting {
    /// The environment variable name (what messages call the setting).
    pub name: &'static str,
    /// The value as text: [`REDACTED`] for a secret that is set, [`NOT_SET`] when unset.
    pub value: String,
    /// `default`, `environment`, or `file PATH` (a `.toml` or `.env` file).
    pub origin: String,
}

impl Sources {
    /// Every setting of [`SETTINGS`], after `APP_ENV` and `TESSERA_CONFIG_DIR`, with its value
    /// and origin. `settings` (loaded from these sources) supplies the defaults worked out at
    /// load time: the store, the pool size.
    pub fn effective(&self, settings: &Settings) -> Vec<EffectiveSetting> {
        let defaults = Value::serialize(RawSettings::default()).ok();
        let mut rows = vec![
            EffectiveSetting {
                name: "APP_ENV",
                value: self.app_env.as_str().to_owned(),
                origin: self.app_env_origin.to_owned(),
            },
            EffectiveSetting {
                name: CONFIG_DIR_VARIABLE,
                value: self.config_dir.display().to_string(),
                origin: self.config_dir_origin.to_owned(),
            },
        ];
        for setting in SETTINGS {
            let (value, origin) = match self.figment.find_value(setting.key) {
                Ok(value) => (value, origin(self.figment.find_metadata(setting.key))),
                Err(_) => (
                    defaults
                        .as_ref()
                        .and_then(|defaults| defaults.find_ref(setting.key))
                        .cloned()
                        .unwrap_or(Value::from(Empty::None)),
                    DEFAULT_ORIGIN.to_owned(),
                ),
            };
            let value = match value {
                Value::Empty(..) => worked_out_default(setting.key, settings).unwrap_or_else(|| NOT_SET.to_owned()),
                Value::String(_, text) if text.is_empty() => "(empty)".to_owned(),
                _ if setting.is_secret() => REDACTED.to_owned(),
                value => text_of(&value),
            };
            rows.push(EffectiveSetting { name: setting.env, value, origin });
        }
        rows
    }
}

/// The defaults that depend on other settings or on the machine.
fn worked_out_default(key: &str, settings: &Settings) -> Option<String> {
    match key {
        "store" => Some(settings.store.as_str().to_owned()),
        "redis_pool_size" => Some(settings.redis.pool_size.to_string()),
        "max_connections_per_ip" => Some(settings.http.max_connections_per_ip.to_string()),
        "data_dir" => Some(match &settings.data.dir {
            Some(dir) => dir.display().to_string(),
            None => "none (memory only)".to_owned(),
        }),
        "near_cache" if settings.near_cache.mode == NearCacheMode::Auto => {
            Some("auto (on for Redis 7.0 and newer)".to_owned())
        }
        _ => None,
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::String(_, text) => text.clone(),
        Value::Char(_, character) => character.to_string(),
        Value::Bool(_, flag) => flag.to_string(),
        Value::Num(_, number) => number
            .to_i128()
            .map(|integer| integer.to_string())
            .or_else(|| number.to_u128().map(|integer| integer.to_string()))
            .or_else(|| number.to_f64().map(|float| float.to_string()))
            .unwrap_or_default(),
        Value::Empty(..) => NOT_SET.to_owned(),
        Value::Dict(..) => "(a table)".to_owned(),
        Value::Array(..) => "(a list)".to_owned(),
    }
}
