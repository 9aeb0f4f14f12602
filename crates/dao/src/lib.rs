//! The Redis key space (`token:{token}`, `token_list:{user_id}`) and typed access to it (`CacheDao`).
//! Built in the token-auth issue. Depends only on `cache-toolkit`; knows nothing about HTTP.
