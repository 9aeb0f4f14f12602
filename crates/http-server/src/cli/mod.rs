//! The `tessera` command line (clap): `tessera` or `tessera serve` runs the server,
//! `check-config` reports the effective settings, `token issue|list|revoke|inspect` work on the
//! sessions in the configured Redis through the same authenticator as the server, and `data
//! recover` repairs the embedded store's journal.
//!
//! Exit codes: 0 success, 2 a usage or settings error, 1 a runtime failure (Redis unreachable,
//! no such session). Every failure is one line on stderr, `tessera: …`; command results go to
//! stdout. Unknown `TESSERA_*` variables are warned about on stderr before any command runs.

#![allow(clippy::print_stdout, clippy::print_stderr, reason = "a command line reports on stdout and stderr")]

mod check_config;
mod data;
mod serve;
#[cfg(test)]
mod tests;
mod token;

use std::{ffi::OsString, process::ExitCode, time::Duration};

use clap::{CommandFactory, Parser, Subcommand};

use auth_core::{MetadataObject, SessionId, UserId};

/// Exit code of a runtime failure: the store cannot be reached, the server cannot start.
const EXIT_RUNTIME: u8 = 1;
/// Exit code of a usage or settings error: the operator must fix the command or the settings.
const EXIT_USAGE: u8 = 2;

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "Opaque bearer tokens in Redis: the server, and commands to check its settings and manage sessions.",
    after_help = "Settings come from the environment, configs/.env.{APP_ENV} and configs/{APP_ENV}.toml (README, \
                  Configuration). Exit codes: 0 success, 2 usage or settings error, 1 runtime failure."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server until SIGINT or SIGTERM (what `tessera` alone does).
    Serve,
    /// Print the effective settings and where each came from; exit 2 when one is invalid.
    CheckConfig,
    /// Issue, list, revoke or inspect sessions in the configured Redis (not the embedded store,
    /// which lives only inside a running server).
    #[command(subcommand, arg_required_else_help = false)]
    Token(TokenCommand),
    /// Work on the embedded store's data directory (TESSERA_DATA_DIR) while no server uses it.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Cut a corrupt journal back to its last whole record before the damage, keeping the
    /// journal as it was beside it (journal.corrupt-<time>); the start-up error names the byte.
    Recover {
        /// The data directory (default: TESSERA_DATA_DIR as the server reads it).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
    /// Rewrite the journal as a snapshot of what it holds (what a running server does by
    /// itself as the journal grows); prints its size before and after.
    Compact {
        /// The data directory (default: TESSERA_DATA_DIR as the server reads it).
        #[arg(long)]
        dir: Option<std::path::PathBuf>,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Issue a token; prints the JSON `POST /internal/sessions` answers.
    Issue {
        /// The user: decimal digits are an integer id, anything else a string id; either under
        /// the canonical rule (no surrounding whitespace, no control, format or bidi characters,
        /// NFC, no number written another way such as `042`).
        #[arg(long, value_parser = parse_new_user_id)]
        user_id: UserId,
        /// The session's metadata, a JSON object (e.g. '{"username":"alice"}').
        #[arg(long, value_parser = parse_metadata)]
        metadata: Option<MetadataObject>,
        /// The token's lifetime, e.g. 90s, 30m, 1h, 1h30m, 7d (default ACCESS_TOKEN_EXPIRE_MINUTES).
        #[arg(long, value_parser = parse_ttl)]
        ttl: Option<Duration>,
    },
    /// List a user's live sessions (their ids, never their tokens).
    List {
        #[arg(long, value_parser = parse_user_id)]
        user_id: UserId,
    },
    /// Revoke one session of a user (--session), or all of them.
    Revoke {
        #[arg(long, value_parser = parse_user_id)]
        user_id: UserId,
        /// The session id `token list` shows.
        #[arg(long, value_parser = parse_session_id)]
        session: Option<SessionId>,
    },
    /// Describe the token read from standard input (RFC 7662 JSON); never renews it.
    Inspect {
        /// Refused: a token on the command line would show in the process list and the
        /// shell history.
        #[arg(hide = true, num_args = 0..)]
        from_command_line: Vec<OsString>,
    },
}

/// Why a command failed; its text is the one line printed after `tessera: `.
#[derive(Debug, thiserror::Error)]
enum CommandError {
    /// The command line or a setting is wrong (exit 2).
    #[error("{0}")]
    Usage(String),
    /// The command could not be carried out (exit 1).
    #[error("{0}")]
    Runtime(String),
}

impl CommandError {
    fn exit_code(&self) -> ExitCode {
        ExitCode::from(match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::Runtime(_) => EXIT_RUNTIME,
        })
    }
}

impl From<config::ConfigError> for CommandError {
    fn from(error: config::ConfigError) -> Self {
        Self::Usage(error.to_string())
    }
}

impl From<crate::telemetry::TelemetryError> for CommandError {
    fn from(error: crate::telemetry::TelemetryError) -> Self {
        Self::Usage(error.to_string())
    }
}

/// Runs the command line the process was started with; what `main` returns.
pub fn main() -> ExitCode {
    run(std::env::args_os())
}

fn run(args: impl IntoIterator<Item = OsString>) -> ExitCode {
    let args: Vec<OsString> = args.into_iter().collect();
    let cli = match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(error) if !error.use_stderr() => {
            // --help and --version: printed on stdout, success.
            let _ = error.print();
            return ExitCode::SUCCESS;
        }
        Err(error) => {
            eprintln!("tessera: {}", usage_error_line(&error.render().to_string(), &args));
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for unknown in config::unknown_variables() {
        eprintln!("tessera: warning: {unknown}");
    }
    let outcome = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve::run(),
        Command::CheckConfig => check_config::run(),
        Command::Token(command) => token::run(command),
        Command::Data(command) => data::run(command),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("tessera: {error}");
            error.exit_code()
        }
    }
}

/// clap's error (the problem over one or more lines, then a tip or the usage) as one line:
/// the problem, and the help of the (sub)command `args` name.
fn usage_error_line(rendered: &str, args: &[OsString]) -> String {
    let first_paragraph = rendered.split("\n\n").next().unwrap_or_default();
    let problem = first_paragraph.lines().map(str::trim).filter(|line| !line.is_empty()).collect::<Vec<_>>().join(" ");
    let problem = problem.strip_prefix("error: ").unwrap_or(&problem);
    let mut command = Cli::command();
    let mut path = vec![command.get_name().to_owned()];
    for arg in args.iter().skip(1) {
        let Some(sub) = arg.to_str().and_then(|name| command.find_subcommand(name)).cloned() else { break };
        path.push(sub.get_name().to_owned());
        command = sub;
    }
    format!("{problem} (see {} --help)", path.join(" "))
}

/// A user to issue for: the canonical rule.
fn parse_new_user_id(text: &str) -> Result<UserId, String> {
    UserId::parse(text).map_err(|error| error.to_string())
}

/// A user to list or revoke: any id the store may hold, so sessions another system wrote
/// for a non-canonical id can still be revoked.
fn parse_user_id(text: &str) -> Result<UserId, String> {
    UserId::existing(text).map_err(|error| error.to_string())
}

fn parse_session_id(text: &str) -> Result<SessionId, String> {
    SessionId::parse(text).ok_or_else(|| format!("not a session id: expected {} hex digits", SessionId::LEN))
}

fn parse_metadata(text: &str) -> Result<MetadataObject, String> {
    let mut bytes = text.as_bytes().to_vec();
    match simd_json::to_owned_value(&mut bytes) {
        Ok(auth_core::MetadataValue::Object(object)) => Ok(*object),
        Ok(_) => Err("must be a JSON object, e.g. '{\"username\":\"alice\"}'".to_owned()),
        Err(_) => Err("is not valid JSON; expected an object such as '{\"username\":\"alice\"}'".to_owned()),
    }
}

/// A human duration (`90s`, `30m`, `1h30m`), as the settings take them.
fn parse_ttl(text: &str) -> Result<Duration, String> {
    config::parse_duration(text)
}
