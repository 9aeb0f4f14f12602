//! [`TokenRecord`] (the metadata stored under `token:{token}`) and [`UserId`]. The stored JSON
//! text is kept verbatim, so fields Tessera does not know pass through untouched.
//!
//! New user ids follow the canonical rule ([`UserId::CANONICAL_RULE`]: an integer in decimal
//! ASCII, or a 1–128-byte NFC string without surrounding whitespace, control, format or
//! separator characters, that does not read as a number written another way), so two ids that
//! read as the same user are the same id. Ids another system already stored are read
//! leniently ([`UserId::existing`]), so listing and revoking still reach them. A stored value
//! that cannot be used is a [`CorruptMetadata`], for logs and metrics, never for clients.

use std::{
    borrow::Cow,
    fmt,
    sync::{Arc, OnceLock},
};

use simd_json::{OwnedValue, StaticNode, owned::Object};
use unicode_normalization::is_nfc;
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// A user id as the Python system stores it in the metadata: a JSON integer or a JSON string,
/// kept as given (an integer stays an integer when written back).
///
/// New ids follow the canonical rule ([`UserId::CANONICAL_RULE`], [`UserId::text`],
/// [`UserId::parse`]): two ids that a person, an HTTP parser or Python's `int()` would read as
/// the same user must be the same id, or a token issued for `" 42"` reaches the application
/// as user `42` (HTTP trims header values) while revoking user `42` misses it. Ids already
/// stored by another system are read as they are ([`UserId::existing`]), so such sessions stay
/// readable and revocable.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UserId {
    Integer(i128),
    Text(String),
}

/// Why a user id was refused. Each message ends with the rule ([`UserId::CANONICAL_RULE`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("a user id may not be empty; {}", UserId::CANONICAL_RULE)]
    Empty,
    #[error("a user id is at most {max} bytes; {}", UserId::CANONICAL_RULE)]
    TooLong { max: usize },
    #[error("a user id may not contain control characters; {}", UserId::CANONICAL_RULE)]
    ControlCharacter,
    #[error("a user id may not start or end with whitespace; {}", UserId::CANONICAL_RULE)]
    SurroundingWhitespace,
    #[error("a user id may not contain {kind} characters; {}", UserId::CANONICAL_RULE)]
    ForbiddenCharacter { kind: &'static str },
    #[error("a user id must be in Unicode normalization form C (NFC); {}", UserId::CANONICAL_RULE)]
    NotNormalized,
    #[error(
        "a user id that reads as a number must be written in ASCII digits without sign, leading zeros or \
         separators (`42`, `-7`); {}",
        UserId::CANONICAL_RULE
    )]
    NotCanonicalNumber,
}

impl UserId {
    /// The longest string id accepted from a caller.
    pub const MAX_LEN: usize = 128;
    /// The longest string id read from the store (written by another system).
    pub const MAX_STORED_LEN: usize = 256;
    /// The rule, as refusals state it.
    pub const CANONICAL_RULE: &str = "the rule: an integer id in decimal ASCII digits (`42`, `-7`), or a string \
        of 1-128 bytes in NFC without leading or trailing whitespace, without control, format, bidi or line \
        separator characters or whitespace other than the space, that does not read as a number";

    /// A string id from a caller, under the canonical rule: 1 to [`Self::MAX_LEN`] bytes, no
    /// leading or trailing whitespace, no control (Cc), format (Cf, which holds the bidi
    /// controls and zero-width characters) or line/paragraph separator (Zl, Zp) characters,
    /// no whitespace but the ASCII space, in NFC, and no number written in another way than
    /// canonical ASCII decimal (`٤٢`, `042`, `+42`, `4_2`: Python's `int()` reads each as 42).
    /// Canonical decimal digits stay a string id (`"42"` names the same list as `42`).
    pub fn text(text: &str) -> Result<Self, UserIdError> {
        check_canonical(text)?;
        Ok(Self::Text(text.to_owned()))
    }

    /// An id from a path segment or a command-line argument, under the canonical rule:
    /// canonical decimal digits that fit a 64-bit integer are the integer id, anything else
    /// must be a canonical string id ([`Self::text`]).
    pub fn parse(text: &str) -> Result<Self, UserIdError> {
        match canonical_integer(text) {
            Some(value) => Ok(Self::Integer(value)),
            None => Self::text(text),
        }
    }

    /// Whether this id follows the canonical rule ([`Self::text`]); an integer always does.
    /// Issuing checks it, so an id built as `UserId::Text(..)` directly cannot skip the rule.
    pub fn check_canonical(&self) -> Result<(), UserIdError> {
        match self {
            Self::Integer(_) => Ok(()),
            Self::Text(text) => check_canonical(text),
        }
    }

    /// An id that may already be stored (a path or argument naming a user to list or revoke):
    /// anything [`Self::existing_text`] accepts, so sessions another system wrote for an id
    /// that breaks the canonical rule can still be listed and revoked; canonical decimal
    /// digits are the integer id.
    pub fn existing(text: &str) -> Result<Self, UserIdError> {
        match canonical_integer(text) {
            Some(value) => Ok(Self::Integer(value)),
            None => Self::existing_text(text),
        }
    }

    /// A string id as the store may hold it: non-empty, at most [`Self::MAX_STORED_LEN`]
    /// bytes, no control characters (which a key or a header could not carry).
    pub fn existing_text(text: &str) -> Result<Self, UserIdError> {
        if text.is_empty() {
            return Err(UserIdError::Empty);
        }
        if text.len() > Self::MAX_STORED_LEN {
            return Err(UserIdError::TooLong { max: Self::MAX_STORED_LEN });
        }
        if text.chars().any(char::is_control) {
            return Err(UserIdError::ControlCharacter);
        }
        Ok(Self::Text(text.to_owned()))
    }

    /// The text used in `token_list:{user_id}`: what Python's f-string gives for the value.
    pub fn key_part(&self) -> Cow<'_, str> {
        match self {
            Self::Integer(value) => Cow::Owned(value.to_string()),
            Self::Text(text) => Cow::Borrowed(text),
        }
    }

    /// `f` applied to [`Self::key_part`], with an integer id written on the stack instead of
    /// into a new `String` (the forward-auth header is built from it on every request).
    pub fn with_key_part<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        match self {
            Self::Integer(value) => {
                use std::io::Write;
                // i128::MIN has 40 characters.
                let mut digits = [0_u8; 40];
                let mut cursor = std::io::Cursor::new(&mut digits[..]);
                let written = write!(cursor, "{value}").map(|()| cursor.position() as usize);
                match written.ok().and_then(|len| std::str::from_utf8(&digits[..len]).ok()) {
                    Some(text) => f(text),
                    None => f(&value.to_string()),
                }
            }
            Self::Text(text) => f(text),
        }
    }

    /// The id as a JSON value of its own type.
    pub fn to_json(&self) -> OwnedValue {
        match self {
            Self::Integer(value) => match i64::try_from(*value) {
                Ok(small) => OwnedValue::Static(StaticNode::I64(small)),
                Err(_) => OwnedValue::Static(StaticNode::U64(u64::try_from(*value).unwrap_or(u64::MAX))),
            },
            Self::Text(text) => OwnedValue::String(text.clone()),
        }
    }
}

impl fmt::Display for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key_part())
    }
}

/// `Some(value)` when `text` is an integer in canonical ASCII decimal (`0`, `42`, `-7`; no
/// sign but `-`, no leading zero) that fits a 64-bit integer, signed or not.
fn canonical_integer(text: &str) -> Option<i128> {
    let value = text.parse::<i64>().map(i128::from).or_else(|_| text.parse::<u64>().map(i128::from)).ok()?;
    (value.to_string() == text).then_some(value)
}

/// Whether `text` is a number as Python's `int()` reads one: an optional sign, then groups of
/// Unicode decimal digits (any script) joined by single underscores.
fn reads_as_a_number(text: &str) -> bool {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    !digits.is_empty()
        && digits.split('_').all(|group| {
            !group.is_empty()
                && group.chars().all(|character| character.general_category() == GeneralCategory::DecimalNumber)
        })
}

/// The canonical rule for a string id ([`UserId::text`]).
fn check_canonical(text: &str) -> Result<(), UserIdError> {
    if text.is_empty() {
        return Err(UserIdError::Empty);
    }
    if text.len() > UserId::MAX_LEN {
        return Err(UserIdError::TooLong { max: UserId::MAX_LEN });
    }
    if text.starts_with(char::is_whitespace) || text.ends_with(char::is_whitespace) {
        return Err(UserIdError::SurroundingWhitespace);
    }
    for character in text.chars() {
        let kind = match character.general_category() {
            GeneralCategory::Control => Some("control"),
            GeneralCategory::Format => Some("format (bidi, zero-width)"),
            GeneralCategory::LineSeparator | GeneralCategory::ParagraphSeparator => Some("line separator"),
            _ if character.is_whitespace() && character != ' ' => Some("whitespace other than the space"),
            _ => None,
        };
        if let Some(kind) = kind {
            return Err(if kind == "control" {
                UserIdError::ControlCharacter
            } else {
                UserIdError::ForbiddenCharacter { kind }
            });
        }
    }
    if !is_nfc(text) {
        return Err(UserIdError::NotNormalized);
    }
    if reads_as_a_number(text) && canonical_integer_text(text).is_none() {
        return Err(UserIdError::NotCanonicalNumber);
    }
    Ok(())
}

/// `Some(())` when `text` is canonical ASCII decimal of any length (`-?(0|[1-9][0-9]*)`): the
/// digits Python's f-string writes for that integer, so the same list.
fn canonical_integer_text(text: &str) -> Option<()> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.bytes().all(|byte| byte.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && text != "-0";
    canonical.then_some(())
}

/// Why a stored `token:{token}` value cannot be used. For logs and metrics, never for clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CorruptMetadata {
    #[error("the token key holds a list, hash or other non-string value")]
    NotAString,
    #[error("the stored metadata is not valid JSON")]
    NotJson,
    #[error("the stored metadata is not a JSON object")]
    NotAnObject,
    #[error("the stored metadata has no user_id")]
    NoUserId,
    #[error("the stored user_id is neither a non-empty string nor a 64-bit integer")]
    BadUserId,
}

impl CorruptMetadata {
    /// A short label for metrics.
    pub fn label(self) -> &'static str {
        match self {
            Self::NotAString => "not_a_string",
            Self::NotJson => "not_json",
            Self::NotAnObject => "not_an_object",
            Self::NoUserId => "no_user_id",
            Self::BadUserId => "bad_user_id",
        }
    }
}

/// Token metadata: a JSON object holding `user_id`, plus any other fields.
///
/// Decoding reads only `user_id` (and checks the rest is well-formed JSON); the other fields
/// are parsed the first time someone asks for them — the verify path usually does not.
///
/// A clone shares everything (one reference count), so a record kept by the near cache is
/// handed to each request cheaply: on a hit the count's cache line is usually cold, and each
/// extra count is another cache miss (docs/PERFORMANCE.md#token-record).
#[derive(Clone, Debug)]
pub struct TokenRecord(Arc<RecordParts>);

#[derive(Debug)]
struct RecordParts {
    user_id: UserId,
    json: Arc<str>,
    fields: OnceLock<Object>,
}

impl TokenRecord {
    /// Builds a record for a new token: `metadata` with `user_id` set to `user_id`.
    pub fn new(user_id: UserId, mut metadata: Object) -> Self {
        metadata.insert("user_id".to_owned(), user_id.to_json());
        let json = simd_json::to_string(&OwnedValue::Object(Box::new(metadata.clone())))
            .unwrap_or_else(|_| unreachable!("a JSON value built from JSON values always encodes"));
        Self(Arc::new(RecordParts { user_id, json: Arc::from(json), fields: OnceLock::from(metadata) }))
    }

    /// Decodes a stored value; the text is kept as it was.
    pub fn decode(json: impl Into<Arc<str>>) -> Result<Self, CorruptMetadata> {
        let json: Arc<str> = json.into();
        let mut bytes = json.as_bytes().to_vec();
        if json.trim_start().as_bytes().first() != Some(&b'{') {
            // Not an object: say whether it is JSON at all (a rare, already-failing path).
            return Err(match simd_json::to_borrowed_value(&mut bytes) {
                Ok(_) => CorruptMetadata::NotAnObject,
                Err(_) => CorruptMetadata::NotJson,
            });
        }
        let head: Head = cache_toolkit::json::decode(&mut bytes).map_err(|_| CorruptMetadata::NotJson)?;
        let user_id = match head.user_id {
            IdValue::Missing => return Err(CorruptMetadata::NoUserId),
            IdValue::Integer(value) => UserId::Integer(value),
            IdValue::Text(text) => UserId::existing_text(&text).map_err(|_| CorruptMetadata::BadUserId)?,
            IdValue::Other => return Err(CorruptMetadata::BadUserId),
        };
        Ok(Self(Arc::new(RecordParts { user_id, json, fields: OnceLock::new() })))
    }

    pub fn user_id(&self) -> &UserId {
        &self.0.user_id
    }

    /// The stored JSON text, exactly as stored.
    pub fn json(&self) -> &str {
        &self.0.json
    }

    /// Every field, `user_id` included (parsed on first use). `decode` accepted only a JSON
    /// object, so the parse cannot fail; if it ever did, the record shows no fields rather than
    /// taking the server down.
    pub fn fields(&self) -> &Object {
        self.0.fields.get_or_init(|| {
            let mut bytes = self.0.json.as_bytes().to_vec();
            match simd_json::to_owned_value(&mut bytes) {
                Ok(OwnedValue::Object(object)) => *object,
                _ => {
                    tracing::error!("token metadata accepted by decode() did not parse as an object");
                    Object::new()
                }
            }
        })
    }

    pub fn field(&self, name: &str) -> Option<&OwnedValue> {
        self.fields().get(name)
    }

    /// A field holding a non-negative JSON integer (such as `iat`); `None` for anything else.
    pub fn unsigned_field(&self, name: &str) -> Option<u64> {
        match self.field(name)? {
            OwnedValue::Static(StaticNode::U64(value)) => Some(*value),
            OwnedValue::Static(StaticNode::I64(value)) => u64::try_from(*value).ok(),
            _ => None,
        }
    }
}

/// The one field decoding needs; serde skips the others without building them.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(default)]
    user_id: IdValue,
}

/// A `user_id` as found: absent, an integer, a string, or anything else (`null` included),
/// which is corrupt.
#[derive(Default)]
enum IdValue {
    #[default]
    Missing,
    Integer(i128),
    Text(String),
    Other,
}

impl<'de> serde::Deserialize<'de> for IdValue {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(IdVisitor)
    }
}

struct IdVisitor;

impl<'de> serde::de::Visitor<'de> for IdVisitor {
    type Value = IdValue;

    fn expecting(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str("a user id")
    }

    fn visit_i64<E>(self, value: i64) -> Result<IdValue, E> {
        Ok(IdValue::Integer(i128::from(value)))
    }

    fn visit_u64<E>(self, value: u64) -> Result<IdValue, E> {
        Ok(IdValue::Integer(i128::from(value)))
    }

    fn visit_str<E>(self, value: &str) -> Result<IdValue, E> {
        Ok(IdValue::Text(value.to_owned()))
    }

    fn visit_f64<E>(self, _: f64) -> Result<IdValue, E> {
        Ok(IdValue::Other)
    }

    fn visit_bool<E>(self, _: bool) -> Result<IdValue, E> {
        Ok(IdValue::Other)
    }

    fn visit_unit<E>(self) -> Result<IdValue, E> {
        Ok(IdValue::Other)
    }

    fn visit_none<E>(self) -> Result<IdValue, E> {
        Ok(IdValue::Other)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<IdValue, A::Error> {
        while seq.next_element::<serde::de::IgnoredAny>()?.is_some() {}
        Ok(IdValue::Other)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<IdValue, A::Error> {
        while map.next_entry::<serde::de::IgnoredAny, serde::de::IgnoredAny>()?.is_some() {}
        Ok(IdValue::Other)
    }
}
