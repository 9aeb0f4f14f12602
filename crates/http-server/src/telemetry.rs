//! Logging set-up for the `tessera` binary: `pretty` or `json` lines, filtered by `TESSERA_LOG`
//! (a `tracing` filter such as `info,fred=warn`) on stdout for the server; for the `tessera token`
//! commands on stderr (stdout carries their result) with warnings and the audit events only
//! (fred's own warnings, such as a QUIT to a client that never connected, are left out).

use tracing_subscriber::{EnvFilter, fmt, fmt::MakeWriter};

use config::{LogFormat, Settings};

use crate::audit::AUDIT_TARGET;

/// The filter text did not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid setting TESSERA_LOG: `{filter}` is not a tracing filter ({reason})")]
pub struct TelemetryError {
    filter: String,
    reason: String,
}

/// Installs the server's global subscriber. Call once, before anything logs.
pub fn init(settings: &Settings) -> Result<(), TelemetryError> {
    let colors = std::io::IsTerminal::is_terminal(&std::io::stdout());
    install(settings.log_format, &settings.log_filter, colors, std::io::stdout)
}

/// Installs the subscriber of a one-shot command: warnings and the audit trail
/// (`tessera::audit`) on stderr, in `TESSERA_LOG_FORMAT`; `TESSERA_LOG` is the server's.
pub fn init_for_command(settings: &Settings) -> Result<(), TelemetryError> {
    let colors = std::io::IsTerminal::is_terminal(&std::io::stderr());
    install(settings.log_format, &format!("warn,fred=error,{AUDIT_TARGET}=info"), colors, std::io::stderr)
}

fn install<W>(format: LogFormat, filter: &str, colors: bool, writer: W) -> Result<(), TelemetryError>
where
    W: for<'writer> MakeWriter<'writer> + Send + Sync + 'static,
{
    let error = |reason: String| TelemetryError { filter: filter.to_owned(), reason };
    let env_filter = EnvFilter::try_new(filter).map_err(|parse| error(parse.to_string()))?;
    let builder = fmt().with_env_filter(env_filter).with_target(true).with_ansi(colors).with_writer(writer);
    let installed = match format {
        LogFormat::Pretty => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.map_err(|install| error(install.to_string()))
}
