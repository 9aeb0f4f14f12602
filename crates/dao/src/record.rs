//! [`TokenRecord`] (the metadata stored under `token:{token}`) and [`UserId`]. The stored JSON
//! text is kept verbatim, so fields Tessera does not know pass through untouched.

use std::{
    borrow::Cow,
    fmt,
    sync::{Arc, OnceLock},
};

use simd_json::{OwnedValue, StaticNode, owned::Object};

/// A user id as the Python system stores it in the metadata: a JSON integer or a JSON string,
/// kept as given (an integer stays an integer when written back).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum UserId {
    Integer(i128),
    Text(String),
}

/// Why a user id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UserIdError {
    #[error("a user id may not be empty")]
    Empty,
    #[error("a user id is at most {max} bytes")]
    TooLong { max: usize },
    #[error("a user id may not contain control characters")]
    ControlCharacter,
}

impl UserId {
    pub const MAX_LEN: usize = 256;

    /// A string id, validated: non-empty, at most [`Self::MAX_LEN`] bytes, no control characters.
    pub fn text(text: &str) -> Result<Self, UserIdError> {
        if text.is_empty() {
            return Err(UserIdError::Empty);
        }
        if text.len() > Self::MAX_LEN {
            return Err(UserIdError::TooLong { max: Self::MAX_LEN });
        }
        if text.chars().any(char::is_control) {
            return Err(UserIdError::ControlCharacter);
        }
        Ok(Self::Text(text.to_owned()))
    }

    /// An id from a URL path segment: decimal digits that fit a 64-bit integer are the
    /// integer id (both name the same `token_list:` key anyway), anything else is text.
    pub fn from_path_segment(segment: &str) -> Result<Self, UserIdError> {
        let integer = segment.parse::<i64>().map(i128::from).or_else(|_| segment.parse::<u64>().map(i128::from));
        match integer {
            Ok(value) if value.to_string() == segment => Ok(Self::Integer(value)),
            _ => Self::text(segment),
        }
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
/// count more was another miss (docs/PERFORMANCE.md).
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
            IdValue::Text(text) => UserId::text(&text).map_err(|_| CorruptMetadata::BadUserId)?,
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
