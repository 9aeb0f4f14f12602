//! `tessera` / `tessera serve`: settings, telemetry, build, run until SIGINT/SIGTERM.

use config::{NearCacheMode, Settings, StoreKind};
use tokio::runtime::Builder;

use super::CommandError;
use crate::{Application, shutdown_signal, telemetry};

pub(super) fn run() -> Result<(), CommandError> {
    let settings = Settings::load()?;
    telemetry::init(&settings)?;
    let mut builder = Builder::new_multi_thread();
    builder.enable_all();
    let lifo_slot = if every_verification_goes_to_redis(&settings) { !disable_lifo_slot(&mut builder) } else { true };
    let runtime =
        builder.build().map_err(|error| CommandError::Runtime(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(async {
        tracing::info!(lifo_slot, "async runtime started");
        let application = Application::build(settings).await.map_err(|error| {
            tracing::error!(%error, "tessera cannot start");
            CommandError::Runtime(error.to_string())
        })?;
        application.run_until_stopped(shutdown_signal()).await;
        Ok(())
    })
}

/// Whether every verification sends commands to Redis: the store is Redis and the near cache
/// is off. Then the runtime does without its LIFO slot (docs/PERFORMANCE.md#the-runtime-without-its-lifo-slot):
/// a fred connection task woken by a request's command no longer runs right after that request
/// yields, so it finds the commands queued meanwhile and writes them in one system call.
fn every_verification_goes_to_redis(settings: &Settings) -> bool {
    settings.store == StoreKind::Redis && settings.near_cache.mode == NearCacheMode::Off
}

/// Turns the LIFO slot off; false when this build cannot (built without `--cfg tokio_unstable`,
/// which `.cargo/config.toml` sets: Tokio keeps the setting behind that flag).
#[cfg(tokio_unstable)]
fn disable_lifo_slot(builder: &mut Builder) -> bool {
    builder.disable_lifo_slot();
    true
}

#[cfg(not(tokio_unstable))]
fn disable_lifo_slot(_: &mut Builder) -> bool {
    false
}
