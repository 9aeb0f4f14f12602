//! The RFC 7662 answer for a presented token, shared by `POST /internal/introspect` and
//! `tessera token inspect`: `{"active":false}`, or `active`, `sub`, `exp`, `iat`, `token_type`
//! from the token's record and its time left, and the other stored metadata fields. RFC 7662's
//! other claims (`scope`, `client_id`, `aud`, `iss`, `nbf`, `jti`) are never taken from
//! metadata: a resource server acts on them, and whoever wrote the metadata must not choose
//! them. Introspection never renews a token ([`Authenticator::inspect`]).

use std::time::SystemTime;

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
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let exp = auth.time_left(&principal).await?.map(|left| now + left.as_secs());
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
