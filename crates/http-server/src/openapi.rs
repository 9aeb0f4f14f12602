//! This API's OpenAPI 3.1 document: `docs/openapi.json`, compiled in and served as is at
//! `GET /openapi.json`. The file is the source; the tests beside it hold it to the route table
//! (every route documented, nothing else), to the auth layer's rules (security per route) and to
//! the wire types (its examples deserialize into them, their fields are its properties). The
//! integration test `openapi` holds it to the running router's methods, and `cargo xtask ci`
//! fuzzes the running server from it.

/// `docs/openapi.json`.
pub(crate) const DOCUMENT: &str = include_str!("../../../docs/openapi.json");

#[cfg(test)]
mod tests;
