//! The `tessera` binary: settings, telemetry, build, run until SIGINT/SIGTERM.
//! Start-up errors are one line on stderr and a non-zero exit; never a panic or a backtrace.

#![allow(clippy::print_stderr, reason = "the binary reports start-up failures on stderr before logging exists")]

use std::process::ExitCode;

use config::Settings;
use http_server::{Application, shutdown_signal, telemetry};

/// Settings or logging set-up is wrong: the operator must fix the configuration.
const EXIT_CONFIG: u8 = 2;
/// The server could not start (port taken, store unreachable).
const EXIT_START: u8 = 1;

fn main() -> ExitCode {
    let settings = match Settings::load() {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("tessera: {error}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    if let Err(error) = telemetry::init(&settings) {
        eprintln!("tessera: {error}");
        return ExitCode::from(EXIT_CONFIG);
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("tessera: cannot start the async runtime: {error}");
            return ExitCode::from(EXIT_START);
        }
    };
    runtime.block_on(async {
        match Application::build(settings).await {
            Ok(application) => {
                application.run_until_stopped(shutdown_signal()).await;
                ExitCode::SUCCESS
            }
            Err(error) => {
                tracing::error!(%error, "tessera cannot start");
                eprintln!("tessera: {error}");
                ExitCode::from(EXIT_START)
            }
        }
    })
}
