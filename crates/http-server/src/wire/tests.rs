//! The request bodies read from JSON: what they accept, and the one line each kind of bad body
//! is refused with.

use std::time::Duration;

use simd_json::prelude::ValueAsScalar;

use auth_core::UserId;

use super::*;

fn issue(body: &str) -> Result<IssueSessionRequest, BadRequestBody> {
    read_request(&mut body.as_bytes().to_vec())
}

#[test]
fn issue_session_bodies_are_read_into_their_fields() {
    let full = issue(r#"{"user_id":42,"metadata":{"username":"alice"},"ttl_seconds":1800,"extra":[1]}"#).unwrap();
    assert_eq!(full.user_id.0, UserId::Integer(42));
    assert_eq!(full.metadata.unwrap().get("username").and_then(|name| name.as_str()), Some("alice"));
    assert_eq!(full.ttl_seconds.map(|seconds| Duration::from_secs(seconds.0.get())), Some(Duration::from_secs(1800)));
    let bare = issue(r#"{"user_id":"alice","metadata":null,"ttl_seconds":null}"#).unwrap();
    assert_eq!(bare.user_id.0, UserId::Text("alice".to_owned()));
    assert!(bare.metadata.is_none() && bare.ttl_seconds.is_none());
    let whole = issue(r#"{"user_id":42.0,"ttl_seconds":34098.0}"#).unwrap();
    assert_eq!(whole.user_id.0, UserId::Integer(42), "JSON Schema's integer includes 42.0");
    assert_eq!(whole.ttl_seconds.map(|seconds| seconds.0.get()), Some(34_098));
    let extremes = [("-9223372036854775808", i128::from(i64::MIN)), ("18446744073709551615", i128::from(u64::MAX))];
    for (number, expected) in extremes {
        let read = issue(&format!(r#"{{"user_id":{number}}}"#)).unwrap();
        assert_eq!(read.user_id.0, UserId::Integer(expected), "{number}");
    }
}

#[test]
fn bad_issue_session_bodies_say_what_is_wrong() {
    let cases = [
        ("not json", "the body is not valid JSON"),
        (r#"{"user_id":1"#, "the body is not valid JSON"),
        ("[1]", "the body must be a JSON object"),
        ("\"text\"", "the body must be a JSON object"),
        (r#"{"metadata":{}}"#, "missing field `user_id`"),
        (r#"{"user_id":null}"#, "invalid type: null, expected `user_id` as a string or an integer"),
        (r#"{"user_id":1.5}"#, "invalid type: floating point `1.5`, expected `user_id` as a string or an integer"),
        (r#"{"user_id":1e300}"#, "invalid type: a number too large to be an exact integer, expected `user_id` as a"),
        (r#"{"user_id":1,"ttl_seconds":1e300}"#, "invalid type: a number too large to be an exact integer, expected"),
        (r#"{"user_id":" 42"}"#, "`user_id`: a user id may not start or end with whitespace; the rule:"),
        (r#"{"user_id":"٤٢"}"#, "`user_id`: a user id that reads as a number must be written in ASCII digits"),
        (r#"{"user_id":"a\u202eb"}"#, "`user_id`: a user id may not contain format (bidi, zero-width) characters"),
        (r#"{"user_id":[1]}"#, "invalid type: sequence, expected `user_id` as a string or an integer"),
        (r#"{"user_id":""}"#, "`user_id`: a user id may not be empty"),
        (r#"{"user_id":"a\u0001b"}"#, "`user_id`: a user id may not contain control characters"),
        (r#"{"user_id":1,"metadata":[1]}"#, "`metadata` must be a JSON object or null"),
        (r#"{"user_id":1,"metadata":"x"}"#, "`metadata` must be a JSON object or null"),
        (
            r#"{"user_id":1,"ttl_seconds":0}"#,
            "invalid value: integer `0`, expected `ttl_seconds` as a positive integer",
        ),
        (r#"{"user_id":1,"ttl_seconds":-5}"#, "invalid value: integer `-5`, expected `ttl_seconds` as a positive"),
        (r#"{"user_id":1,"ttl_seconds":1.5}"#, "invalid type: floating point `1.5`, expected `ttl_seconds` as a"),
        (r#"{"user_id":1,"ttl_seconds":"60"}"#, "invalid type: string \"60\", expected `ttl_seconds` as a"),
        (r#"{"user_id":1,"user_id":2}"#, "duplicate field `user_id`"),
    ];
    for (body, expected) in cases {
        match issue(body) {
            Ok(read) => panic!("{body} was read as {read:?}"),
            Err(BadRequestBody(message)) => {
                assert!(message.contains(expected), "{body}: {message:?} lacks {expected:?}")
            }
        }
    }
}

#[test]
fn introspection_bodies_need_a_string_token() {
    let read: IntrospectionRequest = read_request(&mut br#"{"token":"abc","other":1}"#.to_vec()).unwrap();
    assert_eq!(read.token, "abc");
    for (body, expected) in [
        (r#"{}"#, "missing field `token`"),
        (r#"{"token":5}"#, "invalid type: integer `5`, expected `token` as a string"),
    ] {
        let refused = read_request::<IntrospectionRequest>(&mut body.as_bytes().to_vec()).unwrap_err();
        assert!(refused.0.contains(expected), "{body}: {refused:?}");
    }
}
