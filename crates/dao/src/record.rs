//! [`TokenRecord`] (the metadata stored under `token:{token}`) and [`UserId`]. The stored JSON
//! text is kept verbatim, so fields Tessera does not know pass through untouched.

use std::{borrow::Cow, fmt};

use simd_json::{OwnedValue, StaticNode, owned::Object, prelude::ValueAsScalar};

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

    fn from_json(value: &OwnedValue) -> Result<Self, CorruptMetadata> {
        if let Some(text) = value.as_str() {
            return Self::text(text).map_err(|_| CorruptMetadata::BadUserId);
        }
        match value {
            OwnedValue::Static(StaticNode::I64(number)) => Ok(Self::Integer(i128::from(*number))),
            OwnedValue::Static(StaticNode::U64(number)) => Ok(Self::Integer(i128::from(*number))),
            _ => Err(CorruptMetadata::BadUserId),
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
#[derive(Clone, Debug)]
pub struct TokenRecord {
    user_id: UserId,
    fields: Object,
    json: String,
}

impl TokenRecord {
    /// Builds a record for a new token: `metadata` with `user_id` set to `user_id`.
    pub fn new(user_id: UserId, mut metadata: Object) -> Self {
        metadata.insert("user_id".to_owned(), user_id.to_json());
        let json = simd_json::to_string(&OwnedValue::Object(Box::new(metadata.clone())))
            .unwrap_or_else(|_| unreachable!("a JSON value built from JSON values always encodes"));
        Self { user_id, fields: metadata, json }
    }

    /// Decodes a stored value; the text is kept as it was.
    pub fn decode(json: String) -> Result<Self, CorruptMetadata> {
        let mut bytes = json.clone().into_bytes();
        let value = simd_json::to_owned_value(&mut bytes).map_err(|_| CorruptMetadata::NotJson)?;
        let OwnedValue::Object(fields) = value else { return Err(CorruptMetadata::NotAnObject) };
        let user_id = UserId::from_json(fields.get("user_id").ok_or(CorruptMetadata::NoUserId)?)?;
        Ok(Self { user_id, fields: *fields, json })
    }

    pub fn user_id(&self) -> &UserId {
        &self.user_id
    }

    /// The stored JSON text, exactly as stored.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Every field, `user_id` included.
    pub fn fields(&self) -> &Object {
        &self.fields
    }

    pub fn field(&self, name: &str) -> Option<&OwnedValue> {
        self.fields.get(name)
    }
}
