//! JSON for cached values: compact encoding (like the seed's orjson) and simd-json decoding
//! with per-thread reusable parse buffers. simd-json's plain `from_slice` allocates its tape
//! and string buffers on every call, which made it slower than serde_json on the ~200-byte
//! objects a session cache holds; reusing the buffers removes that cost.

use std::cell::RefCell;

use serde::{Serialize, de::DeserializeOwned};

/// Starting size of the per-thread buffers; they grow to the largest value seen.
const INITIAL_BUFFER_LEN: usize = 512;

thread_local! {
    static BUFFERS: RefCell<simd_json::Buffers> = RefCell::new(simd_json::Buffers::new(INITIAL_BUFFER_LEN));
}

/// Decodes JSON in place (simd-json rewrites `bytes`).
pub fn decode<T: DeserializeOwned>(bytes: &mut [u8]) -> Result<T, simd_json::Error> {
    BUFFERS.with(|buffers| match buffers.try_borrow_mut() {
        Ok(mut buffers) => simd_json::serde::from_slice_with_buffers(bytes, &mut buffers),
        // Only reachable if a Deserialize impl decodes JSON re-entrantly: fall back to fresh buffers.
        Err(_) => simd_json::serde::from_slice(bytes),
    })
}

/// Encodes as compact JSON.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<String, simd_json::Error> {
    simd_json::to_string(value)
}
