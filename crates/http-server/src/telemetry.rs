//! Logging set-up for the `tessera` binary: `pretty` or `json` lines on stdout, filtered by
//! `TESSERA_LOG` (a `tracing` filter such as `info,fred=warn`).

use tracing_subscriber::{EnvFilter, fmt};

use config::{LogFormat, Settings};

/// The filter text did not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting TESSERA_LOG: `{filter}` is not a tracing filter ({reason})")]
pub struct TelemetryError {
    filter: String,
    reason: String,
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(settings: &Settings) -> Result<(), TelemetryError> {
    let filter = EnvFilter::try_new(&settings.log_filter)
        .map_err(|error| TelemetryError { filter: settings.log_filter.clone(), reason: error.to_string() })?;
    let colors = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let builder = fmt().with_env_filter(filter).with_target(true).with_ansi(colors);
    let installed = match settings.log_format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|error| TelemetryError { filter: settings.log_filter.clone(), reason: error.to_string() })
}
