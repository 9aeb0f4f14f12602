//! `tessera data recover`: cuts a corrupt journal of the embedded store back to its last whole
//! record before the damage (what a start-up refused with "corrupt at byte N"), keeping the
//! journal as it was beside it. It takes the directory's lock, so it refuses to run while a
//! server uses the directory.

use config::Settings;

use super::{CommandError, DataCommand};

pub(super) fn run(command: DataCommand) -> Result<(), CommandError> {
    let DataCommand::Recover { dir } = command;
    let dir = match dir {
        Some(dir) => dir,
        None => Settings::load()?.data.dir.ok_or_else(|| {
            CommandError::Usage("TESSERA_DATA_DIR is `none` (memory only): name the directory with --dir".to_owned())
        })?,
    };
    let recovered = infra::recover_data_dir(&dir).map_err(|error| CommandError::Runtime(error.to_string()))?;
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
