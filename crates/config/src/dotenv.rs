//! A figment provider for the seed's `configs/.env.{APP_ENV}` files (`KEY=VALUE` lines).
//!
//! Keys map to settings exactly as process environment variables do ([`crate::setting_key`]),
//! so a line can be moved between the file and the environment unchanged.

use std::path::{Path, PathBuf};

use figment::{
    Error, Metadata, Profile, Provider,
    value::{Dict, Map, Value},
};

#[derive(Debug)]
pub(crate) struct DotenvFile {
    path: PathBuf,
}

impl DotenvFile {
    pub(crate) fn new(path: &Path) -> Self {
        Self { path: path.to_owned() }
    }

    /// The file's `NAME=VALUE` lines in order, names and raw values trimmed; none when the file
    /// does not exist. Names that are not settings are kept (the caller decides). The error
    /// says which file and line.
    pub(crate) fn entries(&self) -> Result<Vec<(String, String)>, String> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(error) => return Err(format!("cannot read {}: {error}", self.path.display())),
        };
        let mut entries = Vec::new();
        for (number, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let line = line.strip_prefix("export ").unwrap_or(line);
            let Some((name, value)) = line.split_once('=') else {
                return Err(format!("{} line {}: expected NAME=VALUE", self.path.display(), number + 1));
            };
            entries.push((name.trim().to_owned(), value.trim().to_owned()));
        }
        Ok(entries)
    }
}

impl Provider for DotenvFile {
    fn metadata(&self) -> Metadata {
        Metadata::from("dotenv file", self.path.as_path())
    }

    fn data(&self) -> Result<Map<Profile, Dict>, Error> {
        let mut dict = Dict::new();
        for (name, value) in self.entries().map_err(Error::from)? {
            if let Some(key) = crate::environment::setting_key(&name) {
                dict.insert(key.to_owned(), parse_value(key, &value));
            }
        }
        Ok(Profile::Default.collect(dict))
    }
}

/// Quoted values are taken literally; a bare value loses a trailing ` # comment` and is then
/// typed exactly as the same environment variable would be.
fn parse_value(key: &str, raw: &str) -> Value {
    for quote in ['"', '\''] {
        if let Some(inner) = raw.strip_prefix(quote).and_then(|rest| rest.strip_suffix(quote)) {
            return Value::from(inner.to_owned());
        }
    }
    let bare = raw.split(" #").next().unwrap_or(raw).trim();
    crate::environment::typed_value(key, bare)
}
