//! The embedded store's durability: an append-only journal in a locked data directory, in
//! the spirit of Redis's AOF. Every write appends, under the keyspace's lock and so in the
//! order writes were applied, the state it left its key in (`record.rs`); a writer thread
//! writes the appended bytes to `journal` and fsyncs them, every second ([`Fsync::EverySecond`])
//! or before the write is acknowledged ([`Fsync::Always`], where writers that arrive together
//! share one fsync). Start-up replays the journal into memory; reads never touch the disk.
//!
//! The journal is rewritten in the background once it is twice the size it had after its last
//! rewrite (and at least [`REWRITE_MIN_BYTES`]): a snapshot of the keyspace taken in key order,
//! a thousand keys per hold of the lock, while writes to keys the snapshot has passed are kept
//! aside and written after it. So a key is in the new file once, as of the snapshot, plus the
//! writes after it, in order; the switch to the new file holds the lock only to write what is
//! left aside and rename. `LOCK` (flock) keeps a second process out; it holds its owner's pid.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
    sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError, Weak},
    thread::JoinHandle,
    time::{Duration, SystemTime},
};

use tokio::{sync::watch, time::Instant};

use super::{
    keyspace::Keyspace,
    record::{self, Frame, MAGIC, Record},
};

/// The journal's file name in the data directory.
pub const JOURNAL_FILE: &str = "journal";
/// The lock file's name in the data directory.
pub const LOCK_FILE: &str = "LOCK";
const REWRITE_FILE: &str = "journal.rewrite";
/// No rewrite before the journal is this long: small journals are cheap to replay.
pub const REWRITE_MIN_BYTES: u64 = 64 * 1024 * 1024;
/// Keys a rewrite snapshots per hold of the keyspace's lock.
const REWRITE_CHUNK: usize = 1_000;
/// Below this, what a rewrite kept aside is written under the lock, at the switch.
const REWRITE_TAIL_BYTES: usize = 256 * 1024;
/// How often [`Fsync::EverySecond`] syncs.
const SYNC_PERIOD: Duration = Duration::from_secs(1);

/// When a write reaches the disk.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fsync {
    /// Before it is acknowledged; concurrent writers share one fsync.
    Always,
    /// Within about a second: a crash may lose the last second of writes.
    EverySecond,
}

/// Where and how the embedded store keeps its data.
#[derive(Clone, Debug)]
pub struct Durability {
    pub dir: PathBuf,
    pub fsync: Fsync,
    /// A rewrite starts once the journal is twice its size after the last one and at least
    /// this long ([`REWRITE_MIN_BYTES`] by default).
    pub rewrite_min_bytes: u64,
}

impl Durability {
    pub fn new(dir: impl Into<PathBuf>, fsync: Fsync) -> Self {
        Self { dir: dir.into(), fsync, rewrite_min_bytes: REWRITE_MIN_BYTES }
    }
}

/// Why the data directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DataDirError {
    #[error("the data directory {} is in use by process {holder}", dir.display())]
    Locked { dir: PathBuf, holder: String },
    #[error("cannot use the data directory {}: {source}", dir.display())]
    Io {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error(
        "{} is corrupt at byte {offset}: {problem}; `tessera data recover` keeps what is readable before it",
        file.display()
    )]
    Corrupt { file: PathBuf, offset: u64, problem: &'static str },
    #[error("{} is not a Tessera journal of this version", file.display())]
    NotAJournal { file: PathBuf },
}

/// What opening a data directory found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replayed {
    /// Live keys after replay.
    pub keys: usize,
    pub records: u64,
    /// The journal's length after replay.
    pub bytes: u64,
    /// Bytes of an incomplete last record that a crash left, cut off.
    pub torn_tail: Option<u64>,
}

/// What `recover` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// Whole records kept.
    pub records: u64,
    /// Bytes cut from the journal (nothing when it was whole).
    pub cut_bytes: u64,
    /// Where the journal as it was is kept, when something was cut.
    pub saved_as: Option<PathBuf>,
}

/// The writer's side of a data directory: what is appended, what reached the disk.
#[derive(Debug)]
pub(super) struct Journal {
    shared: Arc<Shared>,
    writer: Mutex<Option<JoinHandle<()>>>,
    /// Held (flocked) while the journal lives.
    _lock: File,
}

#[derive(Debug)]
struct Shared {
    dir: PathBuf,
    fsync: Fsync,
    rewrite_min_bytes: u64,
    pending: Mutex<Pending>,
    wake: Condvar,
    durable: watch::Sender<Durable>,
    keyspace: OnceLock<Weak<Mutex<Keyspace>>>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Appended, not yet handed to the writer.
    buffer: Vec<u8>,
    /// Records appended so far.
    appended: u64,
    /// An fsync up to this record was asked for (a lock's fencing counter).
    sync_requested: u64,
    rewrite: Option<Rewrite>,
    /// The rewritten journal, for the writer to continue on.
    switch_to: Option<File>,
    /// The journal's length as written, and after its last rewrite.
    written: u64,
    base: u64,
    stop: bool,
    failed: Option<Arc<str>>,
}

#[derive(Debug, Default)]
struct Rewrite {
    /// The last key snapshotted; every key once the snapshot is complete.
    cursor: Cursor,
    /// Records of keys the snapshot has passed, appended since.
    aside: Vec<u8>,
}

#[derive(Debug, Default)]
enum Cursor {
    #[default]
    Start,
    After(Arc<str>),
    End,
}

impl Cursor {
    fn passed(&self, key: &str) -> bool {
        match self {
            Self::Start => false,
            Self::After(last) => key <= &**last,
            Self::End => true,
        }
    }
}

#[derive(Clone, Debug, Default)]
struct Durable {
    /// Every record up to this one is on disk.
    synced: u64,
    failed: Option<Arc<str>>,
}

/// Milliseconds since the Unix epoch now.
fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_millis() as u64)
}

/// A deadline as the journal writes it: absolute Unix milliseconds.
fn deadline_ms(at: Option<Instant>, now: Instant, now_ms: u64) -> Option<u64> {
    at.map(|at| now_ms.saturating_add(at.saturating_duration_since(now).as_millis() as u64))
}

/// A journal deadline as the keyspace keeps it; a past one is `now` (expired).
fn deadline_instant(at_ms: Option<u64>, now: Instant, now_ms: u64) -> Option<Instant> {
    at_ms.map(|at| crate::saturating_deadline(now, Duration::from_millis(at.saturating_sub(now_ms))))
}

fn lock_or_recover<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Journal {
    /// Locks `durability.dir`, replays its journal into a new keyspace and starts the writer.
    pub(super) fn open(durability: &Durability) -> Result<(Journal, Keyspace, Replayed), DataDirError> {
        let dir = durability.dir.clone();
        let io_error = |source| DataDirError::Io { dir: dir.clone(), source };
        create_private_dir(&dir).map_err(io_error)?;
        let lock = lock_directory(&dir)?;
        let path = dir.join(JOURNAL_FILE);
        let mut keyspace = Keyspace::default();
        let (records, torn_tail, bytes) = replay(&path, &mut keyspace)?;
        let now = Instant::now();
        keyspace.sweep(now, usize::MAX);
        let loaded = Replayed { keys: keyspace.live_len(now), records, bytes, torn_tail };
        let file = OpenOptions::new().append(true).open(&path).map_err(io_error)?;
        let (durable, _) = watch::channel(Durable::default());
        let shared = Arc::new(Shared {
            dir: dir.clone(),
            fsync: durability.fsync,
            rewrite_min_bytes: durability.rewrite_min_bytes,
            pending: Mutex::new(Pending { written: bytes, base: bytes, ..Pending::default() }),
            wake: Condvar::new(),
            durable,
            keyspace: OnceLock::new(),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("tessera-journal".to_owned())
                .spawn(move || write_until_stopped(&shared, file))
                .map_err(io_error)?
        };
        Ok((Journal { shared, writer: Mutex::new(Some(writer)), _lock: lock }, keyspace, loaded))
    }

    /// The keyspace this journal records, for its rewrites.
    pub(super) fn follow(&self, keyspace: &Arc<Mutex<Keyspace>>) {
        let _ = self.shared.keyspace.set(Arc::downgrade(keyspace));
    }

    /// Appends `key`'s state as `keyspace` holds it now (its deletion when it holds none).
    /// Called with the keyspace's lock held, right after the write.
    pub(super) fn record_state(&self, keyspace: &Keyspace, key: &str, now: Instant) {
        let now_ms = unix_now_ms();
        self.append(key, |out| match keyspace.state_of(key, now) {
            Some((value, at)) => record::encode_put(out, key, &value, deadline_ms(at, now, now_ms)),
            None => record::encode_delete(out, key),
        });
    }

    /// Appends `key`'s deletion.
    pub(super) fn record_deletion(&self, key: &str) {
        self.append(key, |out| record::encode_delete(out, key));
    }

    /// Appends `key`'s new deadline.
    pub(super) fn record_deadline(&self, key: &str, at: Option<Instant>, now: Instant) {
        let at = deadline_ms(at, now, unix_now_ms());
        self.append(key, |out| record::encode_expire(out, key, at));
    }

    /// Appends bits set on `key` (a new bitmap when `fresh`) and its deadline.
    pub(super) fn record_bits(&self, key: &str, offsets: &[u64], fresh: bool, at: Option<Instant>, now: Instant) {
        let at = deadline_ms(at, now, unix_now_ms());
        self.append(key, |out| record::encode_set_bits(out, key, offsets, fresh, at));
    }

    fn append(&self, key: &str, encode: impl Fn(&mut Vec<u8>)) {
        let mut pending = lock_or_recover(&self.shared.pending);
        encode(&mut pending.buffer);
        if let Some(rewrite) = &mut pending.rewrite
            && rewrite.cursor.passed(key)
        {
            encode(&mut rewrite.aside);
        }
        pending.appended += 1;
        // Written at once either way (a killed process loses nothing the kernel has); the
        // policy decides when it is synced.
        self.shared.wake.notify_one();
    }

    /// Why writes cannot be kept, if the journal failed (a full disk, an I/O error).
    pub(super) fn failure(&self) -> Option<Arc<str>> {
        self.shared.durable.borrow().failed.clone()
    }

    /// Waits until every record appended so far is on disk, where the policy says a write
    /// waits for that ([`Fsync::Always`]) or `force` asks it (a lock's fencing counter, which
    /// must never go back after a crash).
    pub(super) async fn settle(&self, force: bool) -> Result<(), Arc<str>> {
        if self.shared.fsync == Fsync::EverySecond && !force {
            return self.failure().map_or(Ok(()), Err);
        }
        let target = {
            let mut pending = lock_or_recover(&self.shared.pending);
            if force {
                pending.sync_requested = pending.sync_requested.max(pending.appended);
            }
            pending.appended
        };
        self.shared.wake.notify_one();
        let mut durable = self.shared.durable.subscribe();
        let reached = durable.wait_for(|durable| durable.synced >= target || durable.failed.is_some()).await;
        match reached {
            Ok(durable) => durable.failed.clone().map_or(Ok(()), Err),
            Err(_) => Err(Arc::from("the journal's writer stopped")),
        }
    }

    /// Rewrites the journal now (tests; the writer starts rewrites by itself).
    pub(super) fn rewrite_now(&self) -> io::Result<()> {
        rewrite(&self.shared)
    }

    /// The journal's length as written so far.
    pub(super) fn written_bytes(&self) -> u64 {
        lock_or_recover(&self.shared.pending).written
    }
}

impl Drop for Journal {
    /// Writes and syncs what is pending, then lets the directory go.
    fn drop(&mut self) {
        lock_or_recover(&self.shared.pending).stop = true;
        self.shared.wake.notify_all();
        if let Some(writer) = lock_or_recover(&self.writer).take() {
            let _ = writer.join();
        }
    }
}

/// Takes `dir`'s lock file (flock, exclusive, without waiting) and writes this process's pid
/// in it; a held lock is [`DataDirError::Locked`], naming the pid its holder wrote.
fn lock_directory(dir: &Path) -> Result<File, DataDirError> {
    let path = dir.join(LOCK_FILE);
    let io_error = |source| DataDirError::Io { dir: dir.to_owned(), source };
    let mut file = {
        use std::os::unix::fs::OpenOptionsExt;
        OpenOptions::new().read(true).write(true).create(true).truncate(false).mode(0o600).open(&path)
    }
    .map_err(io_error)?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => {}
        Err(error) if error == rustix::io::Errno::WOULDBLOCK => {
            let holder =
                fs::read_to_string(&path).ok().map(|text| text.trim().to_owned()).filter(|pid| !pid.is_empty());
            return Err(DataDirError::Locked {
                dir: dir.to_owned(),
                holder: holder.unwrap_or_else(|| "unknown".to_owned()),
            });
        }
        Err(error) => return Err(io_error(error.into())),
    }
    file.set_len(0).map_err(io_error)?;
    writeln!(file, "{}", std::process::id()).map_err(io_error)?;
    Ok(file)
}

/// Replays the journal at `path` into `keyspace` (creating it when missing); returns the
/// records read, the bytes of a torn tail cut off, and the journal's length after.
fn replay(path: &Path, keyspace: &mut Keyspace) -> Result<(u64, Option<u64>, u64), DataDirError> {
    let dir = path.parent().unwrap_or(Path::new(".")).to_owned();
    let io_error = |source| DataDirError::Io { dir: dir.clone(), source };
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(error) if error.kind() == io::ErrorKind::NotFound => Vec::new(),
        Err(error) => return Err(io_error(error)),
    };
    if bytes.len() < MAGIC.len() {
        if !MAGIC.starts_with(&bytes) {
            return Err(DataDirError::NotAJournal { file: path.to_owned() });
        }
        // New, or a crash while it was being created.
        write_new_journal(path).map_err(io_error)?;
        return Ok((0, None, MAGIC.len() as u64));
    }
    if !bytes.starts_with(MAGIC) {
        return Err(DataDirError::NotAJournal { file: path.to_owned() });
    }
    let (now, now_ms) = (Instant::now(), unix_now_ms());
    let mut offset = MAGIC.len();
    let mut records = 0;
    while offset < bytes.len() {
        match record::read_frame(&bytes[offset..]) {
            Frame::Record(record, length) => {
                apply(keyspace, record, now, now_ms);
                records += 1;
                offset += length;
            }
            Frame::Torn => break,
            Frame::Corrupt(problem) => {
                if bytes[offset..].iter().all(|byte| *byte == 0) {
                    // A crash after the file grew but before its last blocks were written.
                    break;
                }
                return Err(DataDirError::Corrupt { file: path.to_owned(), offset: offset as u64, problem });
            }
        }
    }
    let torn = (offset < bytes.len()).then(|| (bytes.len() - offset) as u64);
    if let Some(cut) = torn {
        tracing::warn!(
            file = %path.display(),
            offset,
            cut_bytes = cut,
            "the journal ends in an incomplete record (a crash while it was written): cut back to the last whole record"
        );
        let file = OpenOptions::new().write(true).open(path).map_err(io_error)?;
        file.set_len(offset as u64).map_err(io_error)?;
        file.sync_all().map_err(io_error)?;
    }
    Ok((records, torn, offset as u64))
}

fn apply(keyspace: &mut Keyspace, record: Record, now: Instant, now_ms: u64) {
    match record {
        Record::Put { key, value, expires_at_ms } => {
            keyspace.restore(&key, value, deadline_instant(expires_at_ms, now, now_ms));
        }
        Record::SetBits { key, offsets, fresh, expires_at_ms } => {
            keyspace.restore_bits(&key, &offsets, fresh, deadline_instant(expires_at_ms, now, now_ms));
        }
        Record::Expire { key, expires_at_ms } => {
            keyspace.restore_expiry(&key, deadline_instant(expires_at_ms, now, now_ms));
        }
        Record::Delete { key } => keyspace.restore_deletion(&key),
    }
}

/// Creates `dir` (and its parents) readable by this user alone: the journal holds tokens
/// (in plain storage, the tokens themselves).
fn create_private_dir(dir: &Path) -> io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    if dir.is_dir() {
        return Ok(());
    }
    fs::DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// A new file readable and writable by this user alone.
fn create_private_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(path)
}

/// Writes an empty journal at `path` (its header), durably.
fn write_new_journal(path: &Path) -> io::Result<()> {
    let mut file = create_private_file(path)?;
    file.write_all(MAGIC)?;
    file.sync_all()?;
    sync_directory(path)
}

fn sync_directory(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(dir) => File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

/// The writer thread: writes what is appended, syncs as the policy says, publishes what is
/// on disk, starts rewrites; on an I/O error it records the failure (writes are refused from
/// then on) and stops.
fn write_until_stopped(shared: &Arc<Shared>, mut file: File) {
    let mut last_sync = std::time::Instant::now();
    let mut synced = 0;
    loop {
        let (batch, last, must_sync, stop) = {
            let mut pending = lock_or_recover(&shared.pending);
            loop {
                let due = last_sync.elapsed() >= SYNC_PERIOD && pending.appended > synced;
                let asked = pending.sync_requested > synced;
                if !pending.buffer.is_empty() || pending.stop || due || asked {
                    break;
                }
                pending = shared.wake.wait_timeout(pending, SYNC_PERIOD).unwrap_or_else(PoisonError::into_inner).0;
            }
            if let Some(rewritten) = pending.switch_to.take() {
                file = rewritten;
            }
            let batch = std::mem::take(&mut pending.buffer);
            pending.written += batch.len() as u64;
            let must_sync = shared.fsync == Fsync::Always || pending.sync_requested > synced || pending.stop;
            (batch, pending.appended, must_sync, pending.stop)
        };
        let written = file.write_all(&batch).and_then(|()| {
            if must_sync || last_sync.elapsed() >= SYNC_PERIOD {
                last_sync = std::time::Instant::now();
                file.sync_data().map(|()| true)
            } else {
                Ok(false)
            }
        });
        match written {
            Ok(true) => {
                synced = last;
                shared.durable.send_modify(|durable| durable.synced = durable.synced.max(last));
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!(dir = %shared.dir.display(), %error, "the embedded store cannot write its journal: writes are refused");
                let failure: Arc<str> =
                    Arc::from(format!("cannot write the journal in {}: {error}", shared.dir.display()));
                lock_or_recover(&shared.pending).failed = Some(Arc::clone(&failure));
                shared.durable.send_modify(|durable| durable.failed = Some(failure));
                return;
            }
        }
        if stop {
            return;
        }
        let rewrite_due = {
            let pending = lock_or_recover(&shared.pending);
            pending.rewrite.is_none()
                && pending.written >= shared.rewrite_min_bytes
                && pending.written >= pending.base.saturating_mul(2)
        };
        if rewrite_due {
            let shared = Arc::clone(shared);
            let spawned = std::thread::Builder::new().name("tessera-journal-rewrite".to_owned()).spawn(move || {
                if let Err(error) = rewrite(&shared) {
                    tracing::warn!(dir = %shared.dir.display(), %error, "the journal's rewrite failed; the journal goes on");
                }
            });
            if let Err(error) = spawned {
                tracing::warn!(%error, "cannot start the journal's rewrite");
            }
        }
    }
}

/// Rewrites the journal as a snapshot of the keyspace plus the writes made during it, then
/// switches to it (module docs).
fn rewrite(shared: &Arc<Shared>) -> io::Result<()> {
    let Some(keyspace) = shared.keyspace.get().and_then(Weak::upgrade) else { return Ok(()) };
    let path = shared.dir.join(REWRITE_FILE);
    let result = rewrite_into(shared, &keyspace, &path);
    if result.is_err() {
        lock_or_recover(&shared.pending).rewrite = None;
        let _ = fs::remove_file(&path);
    }
    result
}

fn rewrite_into(shared: &Arc<Shared>, keyspace: &Mutex<Keyspace>, path: &Path) -> io::Result<()> {
    {
        let _keyspace = lock_or_recover(keyspace);
        let mut pending = lock_or_recover(&shared.pending);
        if pending.rewrite.is_some() || pending.failed.is_some() {
            return Ok(());
        }
        pending.rewrite = Some(Rewrite::default());
    }
    let mut file = create_private_file(path)?;
    file.write_all(MAGIC)?;
    let mut after: Option<Arc<str>> = None;
    loop {
        let (chunk, done) = {
            let keyspace = lock_or_recover(keyspace);
            let (now, now_ms) = (Instant::now(), unix_now_ms());
            let (names, last) = keyspace.names_after(after.as_deref(), REWRITE_CHUNK);
            let mut chunk = Vec::new();
            for name in &names {
                if let Some((value, at)) = keyspace.state_of(name, now) {
                    record::encode_put(&mut chunk, name, &value, deadline_ms(at, now, now_ms));
                }
            }
            after = names.last().cloned().or(after);
            let mut pending = lock_or_recover(&shared.pending);
            if let Some(rewrite) = &mut pending.rewrite {
                rewrite.cursor = match (&after, last) {
                    (_, true) => Cursor::End,
                    (Some(last), false) => Cursor::After(Arc::clone(last)),
                    (None, false) => Cursor::Start,
                };
            }
            (chunk, last)
        };
        file.write_all(&chunk)?;
        if done {
            break;
        }
    }
    // What was set aside meanwhile, without the keyspace's lock while there is much of it.
    loop {
        let aside = {
            let mut pending = lock_or_recover(&shared.pending);
            match &mut pending.rewrite {
                Some(rewrite) if rewrite.aside.len() > REWRITE_TAIL_BYTES => std::mem::take(&mut rewrite.aside),
                _ => break,
            }
        };
        file.write_all(&aside)?;
    }
    file.sync_data()?;
    let journal = shared.dir.join(JOURNAL_FILE);
    let _keyspace = lock_or_recover(keyspace);
    let mut pending = lock_or_recover(&shared.pending);
    let aside = pending.rewrite.as_mut().map(|rewrite| std::mem::take(&mut rewrite.aside)).unwrap_or_default();
    file.write_all(&aside)?;
    file.sync_data()?;
    fs::rename(path, &journal)?;
    sync_directory(&journal)?;
    let length = file.metadata()?.len();
    // Every record appended so far is in the new journal (snapshot or set aside): what the
    // writer holds for the old one is not written again, and all of it is on disk.
    pending.buffer.clear();
    pending.rewrite = None;
    pending.switch_to = Some(file);
    pending.written = length;
    pending.base = length;
    let appended = pending.appended;
    drop(pending);
    shared.durable.send_modify(|durable| durable.synced = durable.synced.max(appended));
    tracing::info!(dir = %shared.dir.display(), bytes = length, "the journal was rewritten");
    Ok(())
}

/// Cuts the journal in `dir` back to its last whole record before the first bad one, keeping
/// the journal as it was beside it (`journal.corrupt-<unix seconds>`). Takes the directory's
/// lock, so it refuses to run beside a `tessera` that uses it.
pub fn recover(dir: &Path) -> Result<Recovered, DataDirError> {
    let _lock = lock_directory(dir)?;
    let io_error = |source| DataDirError::Io { dir: dir.to_owned(), source };
    let path = dir.join(JOURNAL_FILE);
    let bytes = fs::read(&path).map_err(io_error)?;
    if !bytes.starts_with(MAGIC) {
        return Err(DataDirError::NotAJournal { file: path });
    }
    let mut offset = MAGIC.len();
    let mut records = 0;
    while offset < bytes.len() {
        match record::read_frame(&bytes[offset..]) {
            Frame::Record(_, length) => {
                records += 1;
                offset += length;
            }
            Frame::Torn | Frame::Corrupt(_) => break,
        }
    }
    if offset == bytes.len() {
        return Ok(Recovered { records, cut_bytes: 0, saved_as: None });
    }
    let seconds = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let saved = dir.join(format!("{JOURNAL_FILE}.corrupt-{seconds}"));
    fs::copy(&path, &saved).map_err(io_error)?;
    let file = OpenOptions::new().write(true).open(&path).map_err(io_error)?;
    file.set_len(offset as u64).map_err(io_error)?;
    file.sync_all().map_err(io_error)?;
    Ok(Recovered { records, cut_bytes: (bytes.len() - offset) as u64, saved_as: Some(saved) })
}

#[cfg(test)]
mod tests;
