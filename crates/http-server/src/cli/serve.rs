//! `tessera` / `tessera serve`: settings, telemetry, build, run until SIGINT/SIGTERM.

use config::Settings;

use super::CommandError;
use crate::{Application, shutdown_signal, telemetry};

pub(super) fn run() -> Result<(), CommandError> {
    let settings = Settings::load()?;
    telemetry::init(&settings)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|error| CommandError::Runtime(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(async {
        let application = Application::build(settings).await.map_err(|error| {
            tracing::error!(%error, "tessera cannot start");
            CommandError::Runtime(error.to_string())
        })?;
        application.run_until_stopped(shutdown_signal()).await;
        Ok(())
    })
}
