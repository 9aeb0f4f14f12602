//! `TESSERA_*` names in the environment or the profile's `.env` file that are no setting: a
//! typo would otherwise be ignored in silence. Each is reported with the closest known setting:
//! the fewest edits (Levenshtein, `strsim`), comparing whole names and names without `TESSERA_`.
//! The tooling's `TESSERA_TEST_*` and `TESSERA_BENCH_*` variables are not reported.

use std::{fmt, path::PathBuf};

use crate::{AppEnv, CONFIG_DIR_VARIABLE, DEFAULT_CONFIG_DIR, SETTINGS, dotenv::DotenvFile, environment};

/// The prefix of Tessera's own variables (the seed's `REDIS_*` names are shared with other
/// programs, so only this prefix is checked).
const PREFIX: &str = "TESSERA_";

/// Prefixes of the variables `cargo xtask` hands to tests and benchmarks; not settings.
const TOOLING_PREFIXES: [&str; 2] = ["TESSERA_TEST_", "TESSERA_BENCH_"];

/// A `TESSERA_*` name that no setting has.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnknownVariable {
    pub name: String,
    /// `environment` or `file PATH`.
    pub origin: String,
    /// The known setting whose name is closest.
    pub closest: &'static str,
}

impl fmt::Display for UnknownVariable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown setting {} (from {}) is ignored; did you mean {}?", self.name, self.origin, self.closest)
    }
}

/// The unknown `TESSERA_*` names of the process environment and of the `.env` file of the
/// profile `APP_ENV` names (none from the file when `APP_ENV` is not a profile or the file
/// cannot be read: loading the settings reports that).
pub fn unknown_variables() -> Vec<UnknownVariable> {
    let names = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    let mut unknown = unknown_among(names, environment::ENVIRONMENT_SOURCE);
    let app_env = match std::env::var("APP_ENV") {
        Err(_) => Some(AppEnv::Dev),
        Ok(text) => AppEnv::parse(&text),
    };
    if let Some(app_env) = app_env {
        let config_dir =
            std::env::var_os(CONFIG_DIR_VARIABLE).map_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR), PathBuf::from);
        let path = config_dir.join(format!(".env.{}", app_env.as_str()));
        if let Ok(entries) = DotenvFile::new(&path).entries() {
            let origin = format!("file {}", path.display());
            unknown.extend(unknown_among(entries.into_iter().map(|(name, _)| name), &origin));
        }
    }
    unknown
}

/// The names among `names` that start with `TESSERA_` and are neither a setting, nor
/// `TESSERA_CONFIG_DIR`, nor the tooling's.
pub(crate) fn unknown_among(names: impl IntoIterator<Item = String>, origin: &str) -> Vec<UnknownVariable> {
    let mut unknown: Vec<UnknownVariable> = names
        .into_iter()
        .filter(|name| name.starts_with(PREFIX))
        .filter(|name| name != CONFIG_DIR_VARIABLE && !SETTINGS.iter().any(|setting| setting.env == name))
        .filter(|name| !TOOLING_PREFIXES.iter().any(|prefix| name.starts_with(prefix)))
        .map(|name| UnknownVariable { closest: closest_setting(&name), name, origin: origin.to_owned() })
        .collect();
    unknown.sort_by(|left, right| left.name.cmp(&right.name));
    unknown
}

/// The known name with the fewest edits from `name`, comparing whole names and also the names
/// without `TESSERA_` (so `TESSERA_REDIS_HOST` finds the seed's `REDIS_HOST`). Ties go to the
/// setting listed first.
pub(crate) fn closest_setting(name: &str) -> &'static str {
    let bare = name.strip_prefix(PREFIX).unwrap_or(name);
    let known = SETTINGS.iter().map(|setting| setting.env).chain([CONFIG_DIR_VARIABLE]);
    known
        .min_by_key(|candidate| {
            let candidate_bare = candidate.strip_prefix(PREFIX).unwrap_or(candidate);
            strsim::levenshtein(name, candidate).min(strsim::levenshtein(bare, candidate_bare))
        })
        .unwrap_or(CONFIG_DIR_VARIABLE)
}
