//! `docs/openapi.json` against the running server: it is served at `/openapi.json` without a
//! token; each documented path answers each documented method (HEAD wherever GET) with a status
//! the document lists, and every other method with 405 and an `Allow` header listing the
//! documented ones; the request examples are accepted.

use std::collections::BTreeSet;

use hyper::{Method, StatusCode};
use simd_json::{OwnedValue, prelude::*};

use crate::auth_api::{INTERNAL_KEY, app_on, bearer, issue};
use tests::{get, send};

const DOCUMENT_PATH: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");

/// Every method hyper serves; `Method::HEAD` is answered wherever GET is.
const METHODS: [Method; 8] = [
    Method::GET,
    Method::HEAD,
    Method::POST,
    Method::PUT,
    Method::PATCH,
    Method::DELETE,
    Method::OPTIONS,
    Method::TRACE,
];

fn document_text() -> String {
    std::fs::read_to_string(DOCUMENT_PATH).unwrap()
}

fn document() -> OwnedValue {
    simd_json::to_owned_value(&mut document_text().into_bytes()).unwrap()
}

/// What a local `$ref` names.
fn resolve<'a>(document: &'a OwnedValue, value: &'a OwnedValue) -> &'a OwnedValue {
    let Some(reference) = value.get("$ref").and_then(|reference| reference.as_str()) else { return value };
    reference.trim_start_matches("#/").split('/').fold(document, |found, step| found.get(step).unwrap())
}

/// `template` with each `{name}` replaced by its parameter's example.
fn example_path(document: &OwnedValue, template: &str, item: &OwnedValue) -> String {
    let mut path = template.to_owned();
    for parameter in item.get("parameters").and_then(|list| list.as_array()).into_iter().flatten() {
        let parameter = resolve(document, parameter);
        let name = parameter.get("name").and_then(|name| name.as_str()).unwrap();
        let example = parameter.get("example").and_then(|example| example.as_str()).unwrap();
        path = path.replace(&format!("{{{name}}}"), example);
    }
    path
}

fn paths(document: &OwnedValue) -> Vec<(String, &OwnedValue)> {
    document.get("paths").and_then(|paths| paths.as_object()).unwrap().iter().map(|(t, i)| (t.to_string(), i)).collect()
}

/// A fresh token and the internal key: whichever the route needs. (A fresh token per request,
/// since a documented method may be the logout.)
async fn credentials(app: &tests::TestApp) -> String {
    bearer(&issue(app, r#"{"user_id":"openapi-methods"}"#).await.0)
}

#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let app = app_on(tests::Backend::Embedded, &[]).await;
    let response = get(app.address, "/openapi.json").await;
    assert_eq!(response.status, StatusCode::OK, "{}", response.body);
    assert_eq!(response.header("content-type"), Some("application/json"));
    assert!(response.body == document_text(), "/openapi.json serves docs/openapi.json as it is");
    app.stop().await;
}

#[tokio::test]
async fn the_router_answers_exactly_the_documented_methods() {
    let app = app_on(tests::Backend::Embedded, &[]).await;
    let document = document();
    for (template, item) in paths(&document) {
        let path = example_path(&document, &template, item);
        let mut documented: BTreeSet<String> = METHODS
            .iter()
            .map(Method::as_str)
            .filter(|method| item.get(method.to_ascii_lowercase().as_str()).is_some())
            .map(str::to_owned)
            .collect();
        if documented.contains("GET") {
            documented.insert("HEAD".to_owned());
        }
        for method in METHODS {
            let name = method.as_str().to_ascii_lowercase();
            let operation =
                item.get(name.as_str()).or_else(|| (method == Method::HEAD).then(|| item.get("get")).flatten());
            let authorization = credentials(&app).await;
            let headers = [("x-internal-key", INTERNAL_KEY), ("authorization", authorization.as_str())];
            let response = send(app.address, method.clone(), &path, &headers, None).await;
            let status = response.status;
            match operation {
                None => {
                    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path} is not documented");
                    let allow: BTreeSet<String> =
                        response.header("allow").unwrap_or_default().split(", ").map(str::to_owned).collect();
                    assert_eq!(allow, documented, "{method} {path}: Allow");
                }
                Some(operation) => {
                    let responses = operation.get("responses").and_then(|responses| responses.as_object()).unwrap();
                    assert!(
                        responses.contains_key(status.as_str()),
                        "{method} {path} answered {status}, which the document does not list: {}",
                        response.body
                    );
                }
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn the_request_examples_are_accepted() {
    let app = app_on(tests::Backend::Embedded, &[]).await;
    let document = document();
    let mut sent = 0;
    for (template, item) in paths(&document) {
        let path = example_path(&document, &template, item);
        for (method, operation) in item.as_object().unwrap() {
            let Some(body) = operation.get("requestBody") else { continue };
            let content = resolve(&document, body).get("content").and_then(|content| content.as_object()).unwrap();
            for (media_type, media) in content {
                let schema = resolve(&document, media.get("schema").unwrap());
                for example in schema.get("examples").and_then(|examples| examples.as_array()).unwrap() {
                    let bytes = match media_type.as_ref() {
                        "application/json" => simd_json::to_vec(example).unwrap(),
                        "application/x-www-form-urlencoded" => form(example).into_bytes(),
                        other => panic!("{method} {template}: no example encoder for {other}"),
                    };
                    let method = Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
                    let authorization = credentials(&app).await;
                    let headers = [("x-internal-key", INTERNAL_KEY), ("authorization", authorization.as_str())];
                    let response = send(app.address, method.clone(), &path, &headers, Some((media_type, bytes))).await;
                    assert!(
                        response.status.is_success(),
                        "{method} {path} as {media_type}, {example}: {} {}",
                        response.status,
                        response.body
                    );
                    sent += 1;
                }
            }
        }
    }
    assert!(sent >= 3, "the document has request examples for issue and introspect (JSON and form)");
    app.stop().await;
}

/// A flat object of URL-safe strings as a form body.
fn form(example: &OwnedValue) -> String {
    let fields = example.as_object().unwrap().iter().map(|(name, value)| {
        let value = value.as_str().unwrap();
        assert!(value.bytes().all(|byte| byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte)), "{value}");
        format!("{name}={value}")
    });
    fields.collect::<Vec<_>>().join("&")
}
