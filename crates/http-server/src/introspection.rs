//! The RFC 7662 answer for a presented token, shared by `POST /internal/introspect` and
//! `tessera token inspect`: `{"active":false}`, or `active`, `sub`, `exp`, `iat`, `token_type`
//! from the token's record and its time left, and the other stored metadata fields. RFC 7662's
//! other claims (`scope`, `client_id`, `aud`, `iss`, `nbf`, `jti`) are never taken from
//! metadata: a resource server acts on them, and whoever wrote the metadata must not choose
//! them. Introspection never renews a token ([`Authenticator::inspect`]).

use std::time::{Duration, SystemTime};

use auth_core::{AuthError, Authenticator, MetadataValue, Verification};

/// RFC 7662's claims (section 2.2), which only Tessera's own record fields may fill; `username`
/// is the resource owner's name, which metadata holds.
const RESERVED_CLAIMS: [&str; 11] =
    ["active", "sub", "exp", "iat", "token_type", "scope", "client_id", "aud", "iss", "nbf", "jti"];

/// Verifies `token` with `auth` (never renewing it) and describes it; a store that cannot answer is an error.
pub(crate) async fn describe(auth: &Authenticator, token: &str) -> Result<MetadataValue, AuthError> {
    let Verification::Valid(principal) = auth.inspect(token).await? else {
        // The wire type the OpenAPI document's `Inactive` schema is checked against.
        return Ok(simd_json::serde::to_owned_value(crate::wire::Inactive { active: false })
            .unwrap_or_else(|_| unreachable!("a struct of one bool always converts")));
    };
    let exp = auth.time_left(&principal).await?.map(|left| expiry_second(SystemTime::now(), left));
    let mut body = principal.metadata().clone();
    for reserved in RESERVED_CLAIMS {
        body.remove(reserved);
    }
    if let Some(iat) = principal.issued_at() {
        body.insert("iat".to_owned(), MetadataValue::from(iat));
    }
    body.insert("active".to_owned(), MetadataValue::from(true));
    body.insert("sub".to_owned(), MetadataValue::from(principal.user_id().key_part().into_owned()));
    body.insert("token_type".to_owned(), MetadataValue::from("Bearer"));
    if let Some(exp) = exp {
        body.insert("exp".to_owned(), MetadataValue::from(exp));
    }
    Ok(MetadataValue::Object(Box::new(body)))
}

/// The Unix second in which a key `left` from `now` expires: the deadline is summed before it is
/// truncated, so every reading of one key gives the same second (truncating `now` and `left`
/// apart reads one second early whenever their fractions add up to more than one).
fn expiry_second(now: SystemTime, left: Duration) -> u64 {
    (now + left).duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    #[test]
    fn a_deadline_reads_as_the_same_second_whatever_the_fraction_of_now() {
        let deadline = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_661_434_400);
        for now_millis in [1_796_657_834_000, 1_796_657_834_700, 1_796_657_834_999, 1_796_661_434_399] {
            let now = SystemTime::UNIX_EPOCH + Duration::from_millis(now_millis);
            let left = deadline.duration_since(now).unwrap();
            assert_eq!(super::expiry_second(now, left), 1_796_661_434, "read at {now_millis} ms");
        }
    }
}
