//! [`DecodedSlot`]: the decoded form of a stored text, kept beside it by the near cache's
//! entries and the embedded store's string values (`CacheClient::get_decoded_if_cached`). The
//! owner replaces the slot with the text, so a slot never outlives the text it was decoded from.

use std::{
    any::Any,
    sync::{Arc, OnceLock},
};

#[derive(Debug, Default)]
pub struct DecodedSlot(OnceLock<Arc<dyn Any + Send + Sync>>);

impl DecodedSlot {
    /// `text` decoded by `decode`: the first reader decodes and keeps the result, later readers
    /// share it. A reader asking for another type than the one kept decodes afresh.
    pub fn get_or_decode<T: Any + Send + Sync>(&self, text: &str, decode: impl Fn(&str) -> T) -> Arc<T> {
        self.get_or_decode_telling(text, decode).0
    }

    /// [`Self::get_or_decode`], and whether this call decoded the value it keeps (the near
    /// cache then weighs it against its budget).
    pub fn get_or_decode_telling<T: Any + Send + Sync>(
        &self,
        text: &str,
        decode: impl Fn(&str) -> T,
    ) -> (Arc<T>, bool) {
        let mut kept_now = false;
        let kept = self.0.get_or_init(|| {
            kept_now = true;
            Arc::new(decode(text))
        });
        match Arc::clone(kept).downcast::<T>() {
            Ok(decoded) => (decoded, kept_now),
            Err(_) => (Arc::new(decode(text)), false),
        }
    }
}
