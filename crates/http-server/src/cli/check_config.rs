//! `tessera check-config`: loads the settings exactly as the server would and prints each
//! one's effective value and origin (secrets redacted), then the store they select. Invalid
//! settings fail with the server's one-line error (exit 2). Nothing is connected to.

use config::{Settings, StoreKind};

use super::CommandError;

/// Values longer than this do not widen the value column.
const MAX_VALUE_COLUMN: usize = 40;

pub(super) fn run() -> Result<(), CommandError> {
    let (settings, sources) = Settings::load_with_sources()?;
    print!("{}", report(&settings, &sources));
    Ok(())
}

fn report(settings: &Settings, sources: &config::Sources) -> String {
    let rows = sources.effective(settings);
    let name_width = rows.iter().map(|row| row.name.len()).max().unwrap_or(0);
    let value_width = rows.iter().map(|row| row.value.chars().count()).max().unwrap_or(0).min(MAX_VALUE_COLUMN);
    let mut text = format!("{:<name_width$}  {:<value_width$}  FROM\n", "SETTING", "VALUE");
    for row in &rows {
        text.push_str(&format!("{:<name_width$}  {:<value_width$}  {}\n", row.name, row.value, row.origin));
    }
    text.push_str(&format!("store: {}\n", describe_store(settings)));
    text
}

/// The store the settings select, by topology and `host:port` only (never the URL).
fn describe_store(settings: &Settings) -> String {
    match settings.store {
        StoreKind::Embedded => match &settings.data.dir {
            Some(dir) => format!(
                "embedded (in-process, not shared between processes; data in {}, fsync {})",
                dir.display(),
                settings.data.fsync.as_str()
            ),
            None => "embedded (in-process, not shared between processes; memory only, lost on restart)".to_owned(),
        },
        StoreKind::Redis => {
            let target = &settings.redis.target;
            let tls = if settings.redis.tls.is_some() { " over TLS" } else { "" };
            format!("redis {} {}{tls}", target.topology(), target.addresses())
        }
    }
}
