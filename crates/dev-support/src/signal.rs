//! Signals to child processes, sent with the `kill` system call (through `rustix`) rather
//! than by spawning `kill`: no process per signal, and an error that says why it failed.

use std::io;

/// The signals the tools send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: stop cleanly.
    Terminate,
    /// SIGKILL: stop now, like a crash.
    Kill,
    /// SIGSTOP: freeze (connections stay open, nothing answers).
    Stop,
    /// SIGCONT: run again after [`Signal::Stop`].
    Continue,
}

/// Sends `signal` to the process `pid`.
pub fn send(pid: u32, signal: Signal) -> io::Result<()> {
    let pid = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, format!("{pid} is no process id")))?;
    let signal = match signal {
        Signal::Terminate => rustix::process::Signal::TERM,
        Signal::Kill => rustix::process::Signal::KILL,
        Signal::Stop => rustix::process::Signal::STOP,
        Signal::Continue => rustix::process::Signal::CONT,
    };
    rustix::process::kill_process(pid, signal).map_err(io::Error::from)
}
