//! The command line's parsing: durations, JSON metadata, ids, and clap errors made one line.

use std::time::Duration;

use clap::Parser;

use super::*;

#[test]
fn ttl_accepts_human_durations() {
    for (text, seconds) in
        [("90s", 90), ("30m", 1_800), ("1h", 3_600), ("1h30m", 5_400), ("7d", 604_800), (" 2m5s ", 125)]
    {
        assert_eq!(parse_ttl(text), Ok(Duration::from_secs(seconds)), "{text}");
    }
}

#[test]
fn ttl_refuses_what_is_not_a_duration_with_a_clear_reason() {
    for (text, reason) in [
        ("30", "has no unit"),
        ("", "is empty"),
        ("1x", "is not a duration"),
        ("m", "is not a duration"),
        ("1h m", "is not a duration"),
        ("-5m", "is not a duration"),
        ("0s", "is zero"),
        ("99999999999999999999s", "too long"),
        ("9999999999999999d", "too long"),
    ] {
        let error = parse_ttl(text).expect_err(text);
        assert!(error.contains(reason), "{text}: `{error}` should say `{reason}`");
    }
}

#[test]
fn metadata_must_be_a_json_object() {
    let object = parse_metadata(r#"{"username":"alice","roles":["a"]}"#).expect("an object");
    assert_eq!(object.len(), 2);
    assert!(parse_metadata("[1,2]").expect_err("an array").contains("JSON object"));
    assert!(parse_metadata("{nope").expect_err("not JSON").contains("not valid JSON"));
}

#[test]
fn user_ids_are_integers_when_they_are_digits() {
    assert_eq!(parse_user_id("42"), Ok(UserId::Integer(42)));
    assert_eq!(parse_user_id("alice"), Ok(UserId::Text("alice".to_owned())));
    assert!(parse_user_id("").is_err());
    assert!(parse_session_id("not-hex").is_err());
    assert!(parse_session_id(&"a".repeat(SessionId::LEN)).is_ok());
}

/// `token issue` takes only canonical ids, refused in one line that states the rule; `list`
/// and `revoke` also take an id another system stored, so its sessions can be revoked.
#[test]
fn issuing_takes_canonical_user_ids_and_revoking_any_stored_one() {
    for id in [" 42", "٤٢", "042", "a\u{202e}b"] {
        let line = refusal(&["tessera", "token", "issue", "--user-id", id]);
        assert!(!line.contains('\n') && line.contains("the rule:"), "{id:?}: {line}");
        let parsed = Cli::try_parse_from(["tessera", "token", "revoke", "--user-id", id]);
        assert!(parsed.is_ok(), "{id:?} can be revoked");
    }
}

#[test]
fn no_command_means_serve_and_a_token_argument_to_inspect_is_caught() {
    let cli = Cli::try_parse_from(["tessera"]).expect("no arguments");
    assert!(cli.command.is_none());
    let cli = Cli::try_parse_from(["tessera", "token", "inspect", "the-token"]).expect("parsed, refused later");
    let Some(Command::Token(TokenCommand::Inspect { from_command_line })) = cli.command else { panic!("inspect") };
    assert_eq!(from_command_line.len(), 1);
}

/// What `run` prints for a command line clap refuses.
fn refusal(args: &[&str]) -> String {
    let args: Vec<OsString> = args.iter().map(OsString::from).collect();
    let error = Cli::try_parse_from(&args).expect_err("clap refuses it");
    usage_error_line(&error.render().to_string(), &args)
}

#[test]
fn clap_errors_become_one_line() {
    let line = refusal(&["tessera", "token", "issue", "--ttl", "5x", "--user-id", "1"]);
    assert!(!line.contains('\n'), "{line}");
    assert!(line.starts_with("invalid value '5x' for '--ttl <TTL>'"), "{line}");
    assert!(line.contains("is not a duration"), "{line}");
    assert!(line.ends_with("(see tessera token issue --help)"), "{line}");

    assert_eq!(
        refusal(&["tessera", "token", "issue"]),
        "the following required arguments were not provided: --user-id <USER_ID> (see tessera token issue --help)"
    );
    let line = refusal(&["tessera", "token"]);
    assert!(line.starts_with("'tessera token' requires a subcommand"), "{line}");
    assert!(line.ends_with("(see tessera token --help)"), "{line}");
    assert_eq!(refusal(&["tessera", "bogus"]), "unrecognized subcommand 'bogus' (see tessera --help)");
}
