//! Servers a test or a tool runs as child processes (the `tessera` binary, nginx): their output goes to
//! files a failing assertion can quote, and dropping the handle stops them — SIGTERM first, so
//! nginx's master takes its workers down with it, then SIGKILL — on success and on panic alike.

use std::{
    fs::File,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tokio::net::TcpStream;

use crate::signal::{self, Signal};

/// How long a server may take to exit after SIGTERM before it gets SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How long a server may take to start listening.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// A server process this test owns; stopped when dropped.
#[derive(Debug)]
pub struct ServerProcess {
    name: String,
    child: Child,
    logs: Vec<PathBuf>,
}

impl ServerProcess {
    /// Spawns `command` with stdin closed and stdout and stderr written to `output`.
    pub fn spawn(name: &str, mut command: Command, output: &Path) -> Self {
        let file = File::create(output).unwrap_or_else(|error| panic!("cannot create {}: {error}", output.display()));
        let program = command.get_program().to_string_lossy().into_owned();
        let child = command
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {name} ({program}): {error}"));
        Self { name: name.to_owned(), child, logs: vec![output.to_owned()] }
    }

    /// Adds a log file the server writes itself (nginx's error log) to those [`Self::logs`] quotes.
    pub fn with_log(mut self, path: &Path) -> Self {
        self.logs.push(path.to_owned());
        self
    }

    /// Waits (at most 10 s) until something accepts connections on `address`; fails at once,
    /// quoting the logs, when the server exits first.
    pub async fn wait_until_listening(&mut self, address: SocketAddr) {
        let started = Instant::now();
        while TcpStream::connect(address).await.is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited ({status}) before listening on {address}\n{}", self.name, self.logs());
            }
            assert!(
                started.elapsed() < START_DEADLINE,
                "{} did not listen on {address} within {START_DEADLINE:?}\n{}",
                self.name,
                self.logs()
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Sends `signal` to the server (SIGKILL: a crash; SIGTERM: a clean stop).
    pub fn signal(&self, signal: Signal) {
        signal::send(self.child.id(), signal).unwrap_or_else(|error| panic!("cannot signal {}: {error}", self.name));
    }

    /// Waits (at most `timeout`) for the server to exit; its exit status.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(Instant::now() < deadline, "{} did not exit within {timeout:?}\n{}", self.name, self.logs());
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Every log file's contents under its path, for a failing assertion's message.
    pub fn logs(&self) -> String {
        self.logs
            .iter()
            .map(|path| {
                let text = std::fs::read_to_string(path).unwrap_or_else(|error| format!("(unreadable: {error})"));
                format!("--- {} {}:\n{}", self.name, path.display(), text.trim_end())
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        let _ = signal::send(self.child.id(), Signal::Terminate);
        let deadline = Instant::now() + STOP_GRACE;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("{} did not exit within {STOP_GRACE:?} of SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
