//! `tessera data recover|compact`, on the embedded store's data directory while no server uses
//! it (both take the directory's lock, so they refuse to run beside a `tessera` on it).
//! `recover` cuts a corrupt journal back to its last whole record before the damage (what a
//! start-up refused with "corrupt at byte N"), keeping the journal as it was beside it;
//! `compact` rewrites the journal as a snapshot of what it holds.

use std::path::{Path, PathBuf};

use cache_toolkit::{Durability, EmbeddedStore, Fsync};
use config::Settings;

use super::{CommandError, DataCommand};

pub(super) fn run(command: DataCommand) -> Result<(), CommandError> {
    match command {
        DataCommand::Recover { dir } => recover(&directory(dir)?),
        DataCommand::Compact { dir } => compact(&directory(dir)?),
    }
}

/// `--dir`, else the directory the settings name.
fn directory(dir: Option<PathBuf>) -> Result<PathBuf, CommandError> {
    match dir {
        Some(dir) => Ok(dir),
        None => Settings::load()?.data.dir.ok_or_else(|| {
            CommandError::Usage("TESSERA_DATA_DIR is `none` (memory only): name the directory with --dir".to_owned())
        }),
    }
}

fn recover(dir: &Path) -> Result<(), CommandError> {
    let recovered = infra::recover_data_dir(dir).map_err(|error| CommandError::Runtime(error.to_string()))?;
    match &recovered.saved_as {
        None => println!("{}: the journal is whole ({} records); nothing to do", dir.display(), recovered.records),
        Some(saved) => println!(
            "{}: kept {} records, cut {} bytes; the journal as it was is {}",
            dir.display(),
            recovered.records,
            recovered.cut_bytes,
            saved.display()
        ),
    }
    Ok(())
}

fn compact(dir: &Path) -> Result<(), CommandError> {
    if !dir.join(cache_toolkit::JOURNAL_FILE).is_file() {
        return Err(CommandError::Runtime(format!("{}: no journal to compact", dir.display())));
    }
    let failed = |error: &dyn std::fmt::Display| CommandError::Runtime(format!("{}: {error}", dir.display()));
    let (store, replayed) =
        EmbeddedStore::open(&Durability::new(dir, Fsync::Always)).map_err(|error| failed(&error))?;
    store.rewrite_journal().map_err(|error| failed(&error))?;
    drop(store);
    let after = std::fs::metadata(dir.join(cache_toolkit::JOURNAL_FILE)).map_err(|error| failed(&error))?.len();
    println!("{}: {} keys; the journal went from {} to {after} bytes", dir.display(), replayed.keys, replayed.bytes);
    Ok(())
}
