//! The revocation-propagation row: how long a token revoked on one tessera instance is still
//! accepted by another that had it in its near cache. Two instances (near cache on) share the
//! benchmark's Redis; per token: issue it (`POST /internal/sessions` on A), verify it on both
//! (so both cache it), revoke it (`POST /api/logout` with the token, on A), then poll
//! `GET /auth/verify` on both, one request after another with no pause, until both answer 401
//! or the deadline passes. The tokens are fresh ones for users of their own, so the seeded
//! users and their lists are left as the other rows found them.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use super::probe::HttpClient;
use super::report::Revocation;

/// How long a revoked token may stay accepted before the row gives up on it.
pub(super) const DEADLINE: Duration = Duration::from_secs(2);
/// The revocation tokens' users: far above the seeded `1..=USERS`.
const FIRST_USER: u64 = 1_000_000;
const INTERNAL_KEY_HEADER: &str = "X-Internal-Key";

/// Measures `tokens` revocations between the instances on ports `a` and `b`.
pub(super) fn measure(a: u16, b: u16, internal_key: &str, tokens: u64) -> Result<Revocation> {
    let mut issuer = HttpClient::connect(a)?;
    let mut on_a = HttpClient::connect(a)?;
    let mut on_b = HttpClient::connect(b)?;
    let mut revocation = Revocation { tokens, deadline_ms: DEADLINE.as_secs_f64() * 1_000.0, ..Revocation::default() };
    for index in 0..tokens {
        let user = FIRST_USER + index;
        let token = issue(&mut issuer, internal_key, user)?;
        for (name, client) in [("A", &mut on_a), ("B", &mut on_b)] {
            let status = client.get("/auth/verify", Some(&token))?;
            if status != 200 {
                bail!("instance {name} answered {status} for the fresh token of user {user}; expected 200");
            }
        }
        let bearer = [("Authorization", format!("Bearer {token}"))];
        let (status, body) = issuer.request("POST", "/api/logout", &bearer, b"")?;
        if status != 204 {
            bail!("POST /api/logout on instance A answered {status}: {}", String::from_utf8_lossy(&body));
        }
        let revoked = Instant::now();
        let (mut refused_by_a, mut refused_by_b) = (false, false);
        loop {
            if !refused_by_a {
                refused_by_a = refused(&mut on_a, &token, "A")?;
            }
            if !refused_by_b {
                refused_by_b = refused(&mut on_b, &token, "B")?;
            }
            let elapsed = revoked.elapsed();
            let both_refuse = refused_by_a && refused_by_b;
            if both_refuse || elapsed >= DEADLINE {
                revocation.samples_ms.push(elapsed.as_secs_f64() * 1_000.0);
                revocation.not_refused += u64::from(!both_refuse);
                break;
            }
        }
    }
    Ok(revocation)
}

/// Whether the instance refuses `token` now: 401 yes, 200 not yet, anything else an error.
fn refused(client: &mut HttpClient, token: &str, name: &str) -> Result<bool> {
    match client.get("/auth/verify", Some(token))? {
        401 => Ok(true),
        200 => Ok(false),
        status => bail!("instance {name} answered {status} for a revoked token; expected 401 or 200"),
    }
}

/// `POST /internal/sessions` for `user`; the new token.
fn issue(client: &mut HttpClient, internal_key: &str, user: u64) -> Result<String> {
    let body = format!("{{\"user_id\": {user}, \"metadata\": {{\"purpose\": \"revocation benchmark\"}}}}");
    let headers = [(INTERNAL_KEY_HEADER, internal_key.to_owned()), ("Content-Type", "application/json".to_owned())];
    let (status, answer) = client.request("POST", "/internal/sessions", &headers, body.as_bytes())?;
    let answer = String::from_utf8_lossy(&answer);
    if status != 201 {
        bail!("POST /internal/sessions on instance A answered {status}: {answer}");
    }
    json_string_field(&answer, "token").with_context(|| format!("no `token` in the 201 body {answer:?}"))
}

/// The value of the string field `name` of a JSON object; `None` when the text is not a JSON
/// object or the field is absent or not a string.
pub(super) fn json_string_field(json: &str, name: &str) -> Option<String> {
    let value: serde_json::Value = serde_json::from_str(json).ok()?;
    value.get(name)?.as_str().map(str::to_owned)
}
