//! Running other programs: to completion within a deadline with their output captured, or
//! sharing the terminal; how a command is named in messages; and how a child's exit status
//! becomes xtask's own.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, ExitCode, ExitStatus, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Runs `command` with captured stdout and stderr, killing it when it outlives `timeout`.
///
/// The pipes are drained on their own threads, so a chatty command cannot block on a full pipe
/// while we wait for it.
pub(crate) fn output_within(command: &mut Command, timeout: Duration) -> Result<Output> {
    let shown = describe(command);
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run `{shown}`"))?;
    let stdout = child.stdout.take().map(|pipe| thread::spawn(move || read_all(pipe)));
    let stderr = child.stderr.take().map(|pipe| thread::spawn(move || read_all(pipe)));
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().with_context(|| format!("waiting for `{shown}`"))? {
            break status;
        }
        if Instant::now() >= deadline {
            child.kill().ok();
            child.wait().ok();
            bail!("`{shown}` did not finish within {} s", timeout.as_secs());
        }
        thread::sleep(Duration::from_millis(20));
    };
    let joined =
        |reader: Option<thread::JoinHandle<Vec<u8>>>| reader.and_then(|handle| handle.join().ok()).unwrap_or_default();
    Ok(Output { status, stdout: joined(stdout), stderr: joined(stderr) })
}

/// Runs `command` on the terminal (inherited stdio) and returns its exit status.
pub(crate) fn status_of(command: &mut Command) -> Result<ExitStatus> {
    command.status().with_context(|| format!("cannot run `{}`", describe(command)))
}

/// `program arg arg ...`, for messages; an empty argument shows as `""`.
pub(crate) fn describe(command: &Command) -> String {
    let mut words = vec![command.get_program().to_string_lossy().into_owned()];
    for arg in command.get_args() {
        let arg = arg.to_string_lossy();
        words.push(if arg.is_empty() { "\"\"".to_owned() } else { arg.into_owned() });
    }
    words.join(" ")
}

/// stdout and stderr of a finished command, trimmed and joined, for an error message.
pub(crate) fn combined_output(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    [stdout.trim(), stderr.trim()].into_iter().filter(|text| !text.is_empty()).collect::<Vec<_>>().join("\n")
}

/// The exit code xtask should end with after a child ended with `status`: the child's own code,
/// or 128 + the signal that killed it, as shells report it.
pub(crate) fn exit_code(status: ExitStatus) -> ExitCode {
    if status.success() {
        return ExitCode::SUCCESS;
    }
    let code = status
        .code()
        .or_else(|| status.signal().map(|signal| 128 + signal))
        .and_then(|code| u8::try_from(code).ok())
        .filter(|code| *code != 0)
        .unwrap_or(1);
    ExitCode::from(code)
}

fn read_all(mut pipe: impl Read) -> Vec<u8> {
    let mut bytes = Vec::new();
    pipe.read_to_end(&mut bytes).ok();
    bytes
}
