//! `tessera token issue|list|revoke|inspect`: the internal routes' operations, run from the
//! command line against the configured Redis through the server's own [`Authenticator`]
//! ([`Lifecycle::authenticator`]): same key prefix, token format, storage mode and session
//! cap, same audit events (on stderr), same JSON on stdout.
//!
//! The embedded store is refused (exit 2): it lives inside one server process, so a token
//! issued into a command's own would vanish when the command exits and no server would know it.

use std::io::BufRead;

use serde::Serialize;

use auth_core::{AuthError, Authenticator, IssueOptions};
use config::{NearCacheMode, Settings, StoreKind};

use super::{CommandError, TokenCommand};
use crate::{Lifecycle, audit, introspection, telemetry, wire};

/// Longest line read from stdin for `inspect`: far above any token, bounded all the same.
const MAX_TOKEN_LINE: u64 = 4096;

pub(super) fn run(command: TokenCommand) -> Result<(), CommandError> {
    let mut settings = Settings::load()?;
    if settings.store == StoreKind::Embedded {
        return Err(CommandError::Usage(
            "the token commands need Redis: the configured store is the embedded one, which lives only inside a \
             running server; set REDIS_URL or REDIS_HOST (or TESSERA_STORE=redis), or use the server's \
             /internal/sessions routes"
                .to_owned(),
        ));
    }
    // Read before connecting: a missing token needs no Redis.
    let presented = match &command {
        TokenCommand::Inspect { from_command_line } if !from_command_line.is_empty() => {
            return Err(CommandError::Usage(
                "the token is read from standard input, never from the command line: \
                 echo \"$TOKEN\" | tessera token inspect"
                    .to_owned(),
            ));
        }
        TokenCommand::Inspect { .. } => Some(read_token_from_stdin()?),
        _ => None,
    };
    telemetry::init_for_command(&settings)?;
    // One short-lived connection: no near cache (nothing would be read twice), a pool of one.
    settings.near_cache.mode = NearCacheMode::Off;
    settings.redis.pool_size = 1;
    if presented.is_some() {
        // Inspecting must not renew the token it looks at.
        settings.auth.sliding_expiry = false;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|error| CommandError::Runtime(format!("cannot start the async runtime: {error}")))?;
    runtime.block_on(async {
        let lifecycle = Lifecycle::start(&settings).await.map_err(|error| CommandError::Runtime(error.to_string()))?;
        let auth = lifecycle.authenticator(&settings);
        let outcome = execute(&auth, command, presented.as_deref()).await;
        lifecycle.stop().await;
        println!("{}", outcome?);
        Ok(())
    })
}

/// Carries out `command` and returns the JSON to print.
async fn execute(auth: &Authenticator, command: TokenCommand, presented: Option<&str>) -> Result<String, CommandError> {
    match command {
        TokenCommand::Issue { user_id, metadata, ttl } => {
            let issued = auth
                .issue(user_id.clone(), IssueOptions { metadata: metadata.unwrap_or_default(), ttl })
                .await
                .map_err(failure)?;
            audit::issued(&user_id, &issued.session_id);
            json(&wire::IssuedSession::of(&issued))
        }
        TokenCommand::List { user_id } => {
            let sessions = auth.list_sessions(&user_id).await.map_err(failure)?;
            json(&wire::Sessions::of(&user_id, &sessions))
        }
        TokenCommand::Revoke { user_id, session: Some(session_id) } => {
            let removed = auth.revoke_session(&user_id, &session_id).await.map_err(failure)?;
            audit::session_ended("revoke", &user_id, &session_id, removed);
            if !removed {
                return Err(CommandError::Runtime(format!("user {user_id} has no session {}", session_id.as_str())));
            }
            json(&wire::Revoked { revoked: 1 })
        }
        TokenCommand::Revoke { user_id, session: None } => {
            let revoked = auth.revoke_all(&user_id).await.map_err(failure)?;
            audit::revoked_all(&user_id, revoked);
            json(&wire::Revoked { revoked })
        }
        TokenCommand::Inspect { .. } => {
            let presented = presented.unwrap_or_default();
            json(&introspection::describe(auth, presented).await.map_err(failure)?)
        }
    }
}

/// The first line of stdin, trimmed; at most [`MAX_TOKEN_LINE`] bytes.
fn read_token_from_stdin() -> Result<String, CommandError> {
    let stdin = std::io::stdin();
    if std::io::IsTerminal::is_terminal(&stdin) {
        eprintln!("tessera: paste the token and press Enter");
    }
    let mut line = String::new();
    std::io::Read::take(stdin.lock(), MAX_TOKEN_LINE)
        .read_line(&mut line)
        .map_err(|error| CommandError::Usage(format!("cannot read the token from standard input: {error}")))?;
    let token = line.trim();
    if token.is_empty() {
        return Err(CommandError::Usage(
            "no token on standard input: echo \"$TOKEN\" | tessera token inspect".to_owned(),
        ));
    }
    Ok(token.to_owned())
}

/// An authenticator error as one line that names no key (a plain-storage key holds the token).
fn failure(error: AuthError) -> CommandError {
    match error {
        AuthError::InvalidInput(problem) => CommandError::Usage(problem),
        AuthError::Unavailable(cause) => {
            let reason = std::error::Error::source(&cause).map(ToString::to_string).unwrap_or_default();
            CommandError::Runtime(format!(
                "the session store cannot answer: {} failed ({}: {reason})",
                cause.operation(),
                cause.kind().as_str()
            ))
        }
    }
}

fn json(value: &impl Serialize) -> Result<String, CommandError> {
    simd_json::to_string(value).map_err(|error| CommandError::Runtime(format!("cannot encode the answer: {error}")))
}
