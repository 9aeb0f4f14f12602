//! Tokens: format and validation, issue, verify, revoke, list. Built in the token-auth issue.
//! Depends only on `dao` (and `cache-toolkit` below it); knows nothing about HTTP.
