//! Tessera in an axum service: one import, one constructor, the auth layer around the routes,
//! the caller's `Principal` as an `Extension`, and a cache-aside read with `get_or_load`.
//!
//! ```sh
//! cargo run -p tessera --example axum               # the embedded store
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p tessera --example axum
//! curl -s http://127.0.0.1:3000/me -H "Authorization: Bearer $TOKEN"   # TOKEN: printed at start
//! ```
//!
//! Its test (`cargo test -p tessera --example axum`) drives the same router in-process.

use std::{sync::Arc, time::Duration};

use axum::{Extension, Router, extract::State, http::StatusCode, routing::get};
use tessera::prelude::*;

/// What the handlers share: the cache and the one `LoadPolicy` of the profiles.
#[derive(Clone, Debug)]
struct AppState {
    cache: CacheClient,
    profiles: Arc<LoadPolicy>,
}

#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Profile {
    user_id: String,
    plan: String,
}

/// The service's routes behind Tessera's auth layer: `/healthz` is public, the rest needs a token.
fn app(tessera: &Tessera) -> Result<Router, LoadPolicyError> {
    let state = AppState {
        cache: tessera.cache().clone(),
        profiles: Arc::new(LoadPolicy::builder(Duration::from_secs(300)).build()?),
    };
    Ok(Router::new()
        .route("/me", get(me))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(state)
        .layer(tessera.auth_layer().public_paths(["/healthz"])))
}

/// The caller's profile, loaded once and then served from the cache.
async fn me(State(state): State<AppState>, Extension(principal): Extension<Principal>) -> Result<String, StatusCode> {
    let user_id = principal.user_id().to_string();
    let key = format!("profile:{user_id}");
    let profile = state
        .cache
        .get_or_load(&key, &state.profiles, move || async move {
            // Your database here; the loader runs once per miss, in its own task.
            Ok::<_, std::io::Error>(Loaded::Found(Profile { user_id, plan: "free".to_owned() }))
        })
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?
        .ok_or(StatusCode::NOT_FOUND)?;
    Ok(format!("user {} on the {} plan", profile.user_id, profile.plan))
}

#[tokio::main]
#[allow(clippy::print_stdout, reason = "an example: it shows the token to try it with")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let tessera = match std::env::var("REDIS_URL") {
        Ok(url) => Tessera::connect(&url).await?,
        Err(_) => Tessera::embedded().await?,
    };
    // A login service would do this; here it gives a token to try the route with.
    let issued = tessera.authenticator().issue(UserId::Integer(42), IssueOptions::default()).await?;
    println!("store: {}; token for user 42: {}", tessera.describe_store(), issued.token.expose());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    axum::serve(listener, app(&tessera)?).with_graceful_shutdown(tessera::shutdown_signal()).await?;
    tessera.close().await;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests: a panic is a failure with its message")]

    use axum::body::Body;
    use tower::ServiceExt;

    use super::*;

    async fn get(app: &Router, path: &str, token: Option<&str>) -> (StatusCode, String) {
        let mut request = axum::http::Request::get(path);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = app.clone().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let body = axum::body::to_bytes(response.into_body(), 64 * 1024).await.unwrap();
        (status, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn the_router_needs_a_token_and_hands_the_principal_to_the_handler() {
        let tessera = Tessera::embedded().await.unwrap();
        let app = app(&tessera).unwrap();

        let (status, body) = get(&app, "/me", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.contains("invalid_token"), "{body}");
        assert_eq!(get(&app, "/me", Some("unknown-token-unknown-token")).await.0, StatusCode::UNAUTHORIZED);
        assert_eq!(get(&app, "/healthz", None).await, (StatusCode::OK, "ok".to_owned()));

        let issued = tessera.authenticator().issue(UserId::Integer(42), IssueOptions::default()).await.unwrap();
        let (status, body) = get(&app, "/me", Some(issued.token.expose())).await;
        assert_eq!((status, body.as_str()), (StatusCode::OK, "user 42 on the free plan"));
        // `get_or_load` cached the profile on the store.
        assert!(tessera.cache().key_exists("profile:42").await.unwrap());

        tessera.authenticator().logout(issued.token.expose()).await.unwrap();
        assert_eq!(get(&app, "/me", Some(issued.token.expose())).await.0, StatusCode::UNAUTHORIZED);
        tessera.close().await;
    }
}
