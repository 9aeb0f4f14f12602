//! `docs/openapi.json` against the code: the route table, the auth layer's rules, the error
//! codes and the wire types. (The methods each route answers are checked against the running
//! router by the integration test `openapi`.)

use std::collections::{BTreeMap, BTreeSet};

use hyper::body::Bytes;
use serde::{Deserialize, Serialize};
use simd_json::{OwnedValue, prelude::*};

use config::{AppEnv, Settings};

use super::DOCUMENT;
use crate::{
    error::ApiError,
    route::{Route, RouteName},
    wire,
};

/// The methods an OpenAPI path item may hold.
const METHODS: [&str; 8] = ["get", "put", "post", "delete", "options", "head", "patch", "trace"];

fn document() -> OwnedValue {
    simd_json::to_owned_value(&mut DOCUMENT.as_bytes().to_vec()).expect("docs/openapi.json is not JSON")
}

fn object<'a>(value: &'a OwnedValue, what: &str) -> &'a simd_json::owned::Object {
    value.as_object().unwrap_or_else(|| panic!("{what} is not an object"))
}

/// What a `$ref` names, looked up in the document (`#/components/...`).
fn resolve<'a>(document: &'a OwnedValue, value: &'a OwnedValue) -> &'a OwnedValue {
    let Some(reference) = value.get("$ref").and_then(|reference| reference.as_str()) else { return value };
    let pointer = reference.strip_prefix("#/").unwrap_or_else(|| panic!("{reference} is not local"));
    let mut found = document;
    for step in pointer.split('/') {
        found = found.get(step).unwrap_or_else(|| panic!("{reference} names nothing"));
    }
    found
}

/// The path template with each `{name}` replaced by its parameter's example.
fn example_path(document: &OwnedValue, template: &str, item: &OwnedValue) -> String {
    let mut path = template.to_owned();
    for parameter in item.get("parameters").and_then(|list| list.as_array()).into_iter().flatten() {
        let parameter = resolve(document, parameter);
        let name = parameter.get("name").and_then(|name| name.as_str()).unwrap();
        let example = parameter.get("example").and_then(|example| example.as_str());
        let example = example.unwrap_or_else(|| panic!("{template}: parameter {name} has no string example"));
        path = path.replace(&format!("{{{name}}}"), example);
    }
    assert!(!path.contains('{'), "{template}: a parameter has no example ({path})");
    path
}

/// `(method, operation)` of a path item.
fn operations(item: &OwnedValue) -> Vec<(&'static str, &OwnedValue)> {
    METHODS.iter().filter_map(|method| item.get(*method).map(|operation| (*method, operation))).collect()
}

#[test]
fn the_document_is_openapi_3_1_of_this_version() {
    let document = document();
    assert_eq!(document.get("openapi").and_then(|version| version.as_str()), Some("3.1.0"));
    let version = document.get("info").and_then(|info| info.get("version")).and_then(|version| version.as_str());
    assert_eq!(version, Some(env!("CARGO_PKG_VERSION")), "info.version is the server's version");
}

/// A route added to `Route` without a path in the document, or a documented path the router
/// does not know, fails here.
#[test]
fn every_route_is_documented_and_every_documented_path_is_a_route() {
    let document = document();
    let mut documented: BTreeMap<&str, String> = BTreeMap::new();
    for (template, item) in object(document.get("paths").unwrap(), "paths") {
        let path = example_path(&document, template, item);
        let route = Route::of(&path);
        assert_ne!(route, Route::Unknown, "{template} ({path}) is no route");
        if let Some(earlier) = documented.insert(route.name().label(), template.to_string()) {
            panic!("{template} and {earlier} are the same route, {}", route.name().label());
        }
    }
    let every_route: BTreeSet<&str> =
        RouteName::ALL.iter().filter(|name| **name != RouteName::Unknown).map(|name| name.label()).collect();
    let documented_routes: BTreeSet<&str> = documented.keys().copied().collect();
    assert_eq!(documented_routes, every_route, "routes (by label) documented vs in the route table");
}

/// The methods documented for a path (HEAD wherever GET) in upper case.
fn documented_methods(item: &OwnedValue) -> BTreeSet<String> {
    let mut methods: BTreeSet<String> =
        operations(item).iter().map(|(method, _)| method.to_ascii_uppercase()).collect();
    if methods.contains("GET") {
        methods.insert("HEAD".to_owned());
    }
    methods
}

/// `Route::methods` (the `Allow` header of a 405) lists what the document lists; the
/// integration test `openapi` checks both against what the running router answers.
#[test]
fn each_route_takes_the_documented_methods() {
    let document = document();
    for (template, item) in object(document.get("paths").unwrap(), "paths") {
        let route = Route::of(&example_path(&document, template, item));
        let allowed: BTreeSet<String> = route.methods().split(", ").map(str::to_owned).collect();
        assert_eq!(allowed, documented_methods(item), "{template}");
    }
}

/// Internal routes take the internal key, the default public paths nothing, every other route
/// a bearer token; the error answers each kind of route can give are documented.
#[test]
fn security_and_error_answers_follow_the_auth_layer() {
    let document = document();
    let public_paths = Settings::from_env_pairs(AppEnv::Dev, &[]).unwrap().http.public_paths;
    let default_security = document.get("security").unwrap();
    let internal = simd_json::json!([{ "internalKey": [] }, { "internalBearer": [] }]);
    let bearer = simd_json::json!([{ "bearerToken": [] }]);
    let public = simd_json::json!([]);
    for (template, item) in object(document.get("paths").unwrap(), "paths") {
        let path = example_path(&document, template, item);
        let route = Route::of(&path);
        let (expected, statuses): (&OwnedValue, &[&str]) = if route.is_internal() {
            (&internal, &["401", "404"])
        } else if public_paths.contains(&path) {
            (&public, &[])
        } else {
            (&bearer, &["400", "401", "503"])
        };
        for (method, operation) in operations(item) {
            let security = operation.get("security").unwrap_or(default_security);
            assert_eq!(security, expected, "{method} {template}: security");
            let responses = object(operation.get("responses").unwrap(), "responses");
            for status in statuses {
                assert!(responses.contains_key(*status), "{method} {template} does not document {status}");
            }
            if expected == &public {
                assert!(!responses.contains_key("401"), "{method} {template} is public: no 401");
            }
        }
    }
}

async fn error_code(error: ApiError) -> String {
    use http_body_util::BodyExt;
    let response: hyper::Response<http_body_util::Full<Bytes>> = error.into_response();
    let mut bytes = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    let parsed: wire::ErrorBody<'_> = simd_json::serde::from_slice(&mut bytes).unwrap();
    parsed.error.to_owned()
}

/// The `Error` schema's codes are exactly those `ApiError` answers with.
#[tokio::test]
async fn the_error_codes_are_those_the_server_sends() {
    let document = document();
    let codes = document
        .get("components")
        .and_then(|components| components.get("schemas"))
        .and_then(|schemas| schemas.get("Error"))
        .and_then(|error| error.get("properties"))
        .and_then(|properties| properties.get("error"))
        .and_then(|error| error.get("enum"))
        .and_then(|codes| codes.as_array())
        .unwrap();
    let documented: BTreeSet<String> = codes.iter().map(|code| code.as_str().unwrap().to_owned()).collect();
    let cause: Box<dyn std::error::Error + Send + Sync> = "redis is down".into();
    let mut sent = BTreeSet::new();
    for error in [
        ApiError::InvalidToken { presented: true },
        ApiError::InvalidInternalKey,
        ApiError::BadRequest("bad".to_owned()),
        ApiError::NotFound,
        ApiError::MethodNotAllowed { allow: "GET" },
        ApiError::PayloadTooLarge { limit: 1 },
        ApiError::BodyTimeout { timeout: std::time::Duration::from_millis(1) },
        ApiError::UnsupportedMediaType,
        ApiError::Unavailable(cause),
    ] {
        sent.insert(error_code(error).await);
    }
    assert_eq!(documented, sent);
}

/// Reads `text` into the wire type `T` (unknown fields refused, known ones required unless
/// optional) and writes it back: the field names it writes.
fn wire_fields<'a, T: Deserialize<'a> + Serialize>(text: &'a mut [u8]) -> Result<BTreeSet<String>, String> {
    let value: T = simd_json::serde::from_slice(text).map_err(|error| error.to_string())?;
    let mut written = simd_json::to_vec(&value).map_err(|error| error.to_string())?;
    let written = simd_json::to_owned_value(&mut written).map_err(|error| error.to_string())?;
    Ok(object(&written, "a wire value").keys().map(ToString::to_string).collect())
}

type WireCheck = fn(&mut [u8]) -> Result<BTreeSet<String>, String>;

/// Each response schema and the wire type that writes it; the document's examples read into the
/// type, and the type writes exactly the schema's properties, all of them required.
#[test]
fn response_schemas_are_the_wire_types() {
    let wire_types: &[(&str, WireCheck)] = &[
        ("Error", |text| wire_fields::<wire::ErrorBody<'_>>(text)),
        ("Health", |text| wire_fields::<wire::Health<'_>>(text)),
        ("Ready", |text| wire_fields::<wire::Ready<'_>>(text)),
        ("NotReady", |text| wire_fields::<wire::NotReady<'_>>(text)),
        ("IssuedSession", |text| wire_fields::<wire::IssuedSession<'_>>(text)),
        ("Sessions", |text| wire_fields::<wire::Sessions<'_>>(text)),
        ("SessionEntry", |text| wire_fields::<wire::SessionEntry<'_>>(text)),
        ("Revoked", |text| wire_fields::<wire::Revoked>(text)),
        ("Inactive", |text| wire_fields::<wire::Inactive>(text)),
    ];
    // Shapes that are no answer's wire type: the request bodies (`request_schemas_are_the_wire_types`),
    // stored metadata (passed through as stored), and the pieces they are made of.
    let not_wire_types = [
        "UserId",
        "Metadata",
        "StoredMetadata",
        "IssueSessionRequest",
        "SessionId",
        "IntrospectionRequest",
        "Introspection",
    ];
    let document = document();
    let schemas =
        object(document.get("components").and_then(|components| components.get("schemas")).unwrap(), "schemas");
    for name in schemas.keys() {
        let known =
            wire_types.iter().any(|(wire_name, _)| wire_name == name) || not_wire_types.contains(&name.as_str());
        assert!(known, "schema {name}: add its wire type to this test, or say why it has none");
    }
    let json_array = |value: Option<&OwnedValue>| value.and_then(|value| value.as_array()).cloned().unwrap_or_default();
    for (name, check) in wire_types {
        let schema = schemas.get(*name).unwrap_or_else(|| panic!("no schema {name}"));
        let properties: BTreeSet<String> =
            object(schema.get("properties").unwrap(), "properties").keys().map(ToString::to_string).collect();
        let required: BTreeSet<String> =
            json_array(schema.get("required")).iter().map(|field| field.as_str().unwrap().to_owned()).collect();
        assert_eq!(required, properties, "{name}: the wire type always writes every field");
        assert_eq!(schema.get("additionalProperties").and_then(|value| value.as_bool()), Some(false), "{name}");
        let examples = json_array(schema.get("examples"));
        assert!(!examples.is_empty(), "{name} has no example");
        for example in &examples {
            let written = check(&mut simd_json::to_vec(example).unwrap());
            let written = written.unwrap_or_else(|error| panic!("{name}: {example} is no wire value: {error}"));
            assert_eq!(written, properties, "{name}: fields written vs documented, for {example}");
        }
    }
}

/// The fields a `Deserialize` struct asks for, caught from its `deserialize_struct` call.
struct StructFields<'a>(&'a mut &'static [&'static str]);

impl<'de> serde::Deserializer<'de> for StructFields<'_> {
    type Error = serde::de::value::Error;

    fn deserialize_any<V: serde::de::Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(serde::de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: serde::de::Visitor<'de>>(
        self,
        _: &'static str,
        fields: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(serde::de::Error::custom("fields caught"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

fn struct_fields<T: serde::de::DeserializeOwned>() -> BTreeSet<String> {
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(StructFields(&mut fields));
    fields.iter().map(|field| (*field).to_owned()).collect()
}

/// Whether the JSON `value` reads into the request type `T`, as the server reads a body.
fn reads_into<T: serde::de::DeserializeOwned>(value: &OwnedValue) -> Result<(), String> {
    wire::read_request::<T>(&mut simd_json::to_vec(value).unwrap()).map(drop).map_err(|refused| refused.0)
}

type RequestCheck = (&'static str, fn() -> BTreeSet<String>, fn(&OwnedValue) -> Result<(), String>);

/// Each request body schema and the wire type the server reads it into, both ways: the type's
/// fields are the schema's properties, a property is required exactly when the type refuses a
/// body without it, the examples read into the type, and a field the schema does not name is
/// ignored (the schemas allow them).
#[test]
fn request_schemas_are_the_wire_types() {
    let request_types: &[RequestCheck] = &[
        ("IssueSessionRequest", struct_fields::<wire::IssueSessionRequest>, reads_into::<wire::IssueSessionRequest>),
        ("IntrospectionRequest", struct_fields::<wire::IntrospectionRequest>, reads_into::<wire::IntrospectionRequest>),
    ];
    let document = document();
    let schemas = document.get("components").and_then(|components| components.get("schemas")).unwrap();
    for (name, fields, reads) in request_types {
        let schema = schemas.get(*name).unwrap_or_else(|| panic!("no schema {name}"));
        let properties: BTreeSet<String> =
            object(schema.get("properties").unwrap(), "properties").keys().map(ToString::to_string).collect();
        assert!(!fields().is_empty(), "{name}: no fields caught");
        assert_eq!(fields(), properties, "{name}: the type's fields vs the schema's properties");
        assert_ne!(schema.get("additionalProperties").and_then(|value| value.as_bool()), Some(false), "{name}");
        let required: BTreeSet<String> = schema
            .get("required")
            .and_then(|required| required.as_array())
            .into_iter()
            .flatten()
            .map(|field| field.as_str().unwrap().to_owned())
            .collect();
        let examples = schema.get("examples").and_then(|examples| examples.as_array()).cloned().unwrap_or_default();
        let full = examples.iter().find(|example| object(example, "an example").len() == properties.len());
        let full = full.unwrap_or_else(|| panic!("{name}: no example gives every property"));
        for example in &examples {
            reads(example).unwrap_or_else(|refused| panic!("{name}: {example} is refused: {refused}"));
            let mut extended = example.clone();
            extended.as_object_mut().unwrap().insert("not_a_field".into(), OwnedValue::from(1));
            reads(&extended).unwrap_or_else(|refused| panic!("{name}: an unknown field is refused: {refused}"));
        }
        for property in &properties {
            let mut without = full.clone();
            without.as_object_mut().unwrap().remove(property.as_str());
            let refused = reads(&without).is_err();
            assert_eq!(refused, required.contains(property), "{name}: refused without {property}");
        }
    }
}
