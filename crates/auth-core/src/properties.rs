//! Property tests of token parsing: any text is either a token of one of the two formats or a
//! typed error that never repeats it, never a panic; v1 and v2 tokens round-trip; a v2 token
//! with any one character changed is refused by its checksum before any I/O.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use proptest::prelude::*;

use crate::{SessionId, Token, TokenFormat, TokenFormatError, token::crc32};

const BASE64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

fn is_base64url(text: &str) -> bool {
    text.bytes().all(|byte| BASE64URL.contains(&byte))
}

/// Texts near the accepted shapes as well as anything at all: base64url runs of every length
/// around the limits, with or without `tsr_`, with a stray character, or arbitrary Unicode.
fn token_like() -> impl Strategy<Value = String> {
    let alphabet = prop::sample::select(BASE64URL.to_vec()).prop_map(char::from);
    let run = prop::collection::vec(alphabet, 0..140).prop_map(String::from_iter);
    let stray = prop::sample::select(vec!['*', ':', ' ', '=', '+', '/', '.', 'é', '\0', '\n']);
    prop_oneof![
        run.clone(),
        run.clone().prop_map(|body| format!("{}{body}", Token::V2_PREFIX)),
        (run, any::<prop::sample::Index>(), stray).prop_map(|(body, at, stray)| {
            let mut characters: Vec<char> = body.chars().collect();
            characters.insert(at.index(characters.len() + 1), stray);
            String::from_iter(characters)
        }),
        any::<String>(),
    ]
}

/// A v2 token made by hand from its 32 random bytes, as the format defines it.
fn v2_token(random: &[u8; 32]) -> String {
    let mut bytes = random.to_vec();
    bytes.extend_from_slice(&crc32(random).to_be_bytes());
    format!("{}{}", Token::V2_PREFIX, URL_SAFE_NO_PAD.encode(bytes))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, failure_persistence: None, ..ProptestConfig::default() })]

    /// Whatever is presented, `parse` answers; a token it accepts has one of the two shapes,
    /// and a refusal is a reason that does not repeat what was presented.
    #[test]
    fn parse_accepts_only_the_two_formats_and_never_echoes_the_token(text in token_like()) {
        match Token::parse(&text) {
            Ok(token) => {
                prop_assert_eq!(token.expose(), text.as_str());
                prop_assert!(is_base64url(&text), "accepted a character outside base64url: {:?}", text);
                prop_assert!((Token::MIN_LEN..=Token::MAX_LEN).contains(&text.len()), "length {}", text.len());
                if text.starts_with(Token::V2_PREFIX) && text.len() != 43 {
                    prop_assert_eq!(text.len(), Token::V2_LEN);
                    let bytes = URL_SAFE_NO_PAD.decode(&text[Token::V2_PREFIX.len()..]).unwrap();
                    let checksum = crc32(&bytes[..32]).to_be_bytes();
                    prop_assert_eq!(&checksum[..], &bytes[32..]);
                }
                prop_assert!(!format!("{token:?}").contains(&text), "Debug shows the token");
            }
            Err(error) => {
                let message = error.to_string();
                prop_assert!(!message.is_empty() && !message.contains('\n'), "{:?}", message);
                if text.len() >= Token::MIN_LEN {
                    prop_assert!(!message.contains(&text), "the error repeats the token: {}", message);
                }
                let expected_kind = match error {
                    TokenFormatError::TooShort { .. } => text.len() < Token::MIN_LEN,
                    TokenFormatError::TooLong { .. } => text.len() > Token::MAX_LEN,
                    TokenFormatError::BadCharacter => !is_base64url(&text),
                    TokenFormatError::BadPrefixedLength => {
                        text.starts_with(Token::V2_PREFIX) && text.len() != Token::V2_LEN
                    }
                    TokenFormatError::BadChecksum => text.starts_with(Token::V2_PREFIX) && is_base64url(&text),
                };
                prop_assert!(expected_kind, "{:?} for {:?}", error, text);
            }
        }
    }

    /// Any 16-128 base64url characters not starting with `tsr_` are a v1 token, as they are.
    #[test]
    fn v1_tokens_round_trip(
        text in prop::collection::vec(prop::sample::select(BASE64URL.to_vec()).prop_map(char::from), 16..=128)
            .prop_map(String::from_iter)
            .prop_filter("not v2-prefixed", |text| !text.starts_with(Token::V2_PREFIX)),
    ) {
        let token = Token::parse(&text).unwrap();
        prop_assert_eq!(token.expose(), text.as_str());
        prop_assert_eq!(token.session_id(), Token::parse(&text).unwrap().session_id());
    }

    /// A v2 token of any 32 bytes is accepted; changing any one of its 48 characters to any
    /// other base64url character is caught by the checksum (a CRC32 catches every burst of
    /// up to 32 bits, and one character is 6).
    #[test]
    fn v2_tokens_round_trip_and_any_one_changed_character_is_refused(
        random in any::<[u8; 32]>(),
        at in 0..48_usize,
        replacement in prop::sample::select(BASE64URL.to_vec()),
    ) {
        let text = v2_token(&random);
        prop_assert_eq!(Token::parse(&text).map(|token| token.expose().to_owned()), Ok(text.clone()));
        let mut changed = text.into_bytes();
        let position = Token::V2_PREFIX.len() + at;
        prop_assume!(changed[position] != replacement);
        changed[position] = replacement;
        let changed = String::from_utf8(changed).unwrap();
        prop_assert_eq!(Token::parse(&changed).map(drop), Err(TokenFormatError::BadChecksum), "{}", changed);
    }

    /// What `generate_in` makes, `parse` takes back, in either format.
    #[test]
    fn generated_tokens_parse_back(v2 in any::<bool>()) {
        let format = if v2 { TokenFormat::V2 } else { TokenFormat::V1 };
        let token = Token::generate_in(format);
        let parsed = Token::parse(token.expose()).unwrap();
        prop_assert_eq!(parsed.expose(), token.expose());
        prop_assert_eq!(token.expose().len(), if v2 { Token::V2_LEN } else { 43 });
    }

    /// A session id from a URL: exactly 32 lowercase hex characters, or nothing.
    #[test]
    fn session_ids_parse_only_32_lowercase_hex(text in prop_oneof!["[0-9a-f]{32}", "[0-9a-fA-F]{30,34}", any::<String>()]) {
        let expected = text.len() == SessionId::LEN && text.bytes().all(|byte| matches!(byte, b'0'..=b'9' | b'a'..=b'f'));
        prop_assert_eq!(SessionId::parse(&text).map(|id| id.as_str().to_owned()), expected.then(|| text.clone()));
    }
}
