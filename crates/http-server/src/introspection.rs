//! The RFC 7662 answer for a presented token, shared by `POST /internal/introspect` and
//! `tessera token inspect`: `{"active":false}`, or `active`, `sub`, `exp`, `token_type` and
//! the stored metadata fields (which cannot override those four).

use std::time::SystemTime;

use auth_core::{AuthError, Authenticator, MetadataValue, Verification};

/// Verifies `token` with `auth` and describes it; a store that cannot answer is an error.
pub(crate) async fn describe(auth: &Authenticator, token: &str) -> Result<MetadataValue, AuthError> {
    let Verification::Valid(principal) = auth.verify(token).await? else {
        // The wire type the OpenAPI document's `Inactive` schema is checked against.
        return Ok(simd_json::serde::to_owned_value(crate::wire::Inactive { active: false })
            .unwrap_or_else(|_| unreachable!("a struct of one bool always converts")));
    };
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |since| since.as_secs());
    let exp = auth.time_left(&principal).await?.map(|left| now + left.as_secs());
    let mut body = principal.metadata().clone();
    for reserved in ["active", "sub", "exp", "token_type"] {
        body.remove(reserved);
    }
    body.insert("active".to_owned(), MetadataValue::from(true));
    body.insert("sub".to_owned(), MetadataValue::from(principal.user_id().key_part().into_owned()));
    body.insert("token_type".to_owned(), MetadataValue::from("Bearer"));
    if let Some(exp) = exp {
        body.insert("exp".to_owned(), MetadataValue::from(exp));
    }
    Ok(MetadataValue::Object(Box::new(body)))
}
