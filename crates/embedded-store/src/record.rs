//! The journal's records and their bytes. A record is the state one key is left in by an
//! operation (its whole value and deadline, its deletion, its new deadline, or bits set on a
//! bitmap), never the operation itself, so replaying it gives the same result whatever the clock
//! says. Deadlines are absolute Unix milliseconds: a key expires at the same instant after a
//! restart.
//!
//! The file is `MAGIC`, then frames: the payload's length (u32, little-endian), its CRC-32
//! (IEEE, `crc32fast`), the payload. A frame that runs past the end of the file is a write
//! that a crash cut short; a frame whose checksum does not match is corruption.

use std::collections::HashMap;
use std::collections::VecDeque;

use super::keyspace::{StoredValue, ValueRef};

/// The first bytes of a journal file: its format and version.
pub(super) const MAGIC: &[u8] = b"TESSERA-JOURNAL 1\n";
/// Bytes before each payload: its length and its checksum.
pub(super) const FRAME_HEADER: usize = 8;
/// No payload is longer: a length past it is not a record.
pub(super) const MAX_PAYLOAD: usize = 1 << 30;

const PUT_TEXT: u8 = 1;
const PUT_BYTES: u8 = 2;
const PUT_LIST: u8 = 3;
const PUT_HASH: u8 = 4;
const SET_BITS: u8 = 5;
const EXPIRE: u8 = 6;
const DELETE: u8 = 7;

/// One record, read back.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Record {
    Put { key: String, value: StoredValue, expires_at_ms: Option<u64> },
    SetBits { key: String, offsets: Vec<u64>, fresh: bool, expires_at_ms: Option<u64> },
    Expire { key: String, expires_at_ms: Option<u64> },
    Delete { key: String },
}

/// Appends one framed record to `out`; its payload is written by `payload`.
fn frame(out: &mut Vec<u8>, payload: impl FnOnce(&mut Vec<u8>)) {
    let start = out.len();
    out.extend_from_slice(&[0; FRAME_HEADER]);
    payload(out);
    let body = &out[start + FRAME_HEADER..];
    let length = u32::try_from(body.len()).unwrap_or(u32::MAX);
    let checksum = crc32fast::hash(body);
    out[start..start + 4].copy_from_slice(&length.to_le_bytes());
    out[start + 4..start + 8].copy_from_slice(&checksum.to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&u32::try_from(bytes.len()).unwrap_or(u32::MAX).to_le_bytes());
    out.extend_from_slice(bytes);
}

fn put_deadline(out: &mut Vec<u8>, expires_at_ms: Option<u64>) {
    match expires_at_ms {
        Some(at) => {
            out.push(1);
            out.extend_from_slice(&at.to_le_bytes());
        }
        None => out.push(0),
    }
}

/// `key` now holds `value` until `expires_at_ms`.
pub(super) fn encode_put(out: &mut Vec<u8>, key: &str, value: &ValueRef<'_>, expires_at_ms: Option<u64>) {
    frame(out, |out| {
        out.push(match value {
            ValueRef::Text(_) => PUT_TEXT,
            ValueRef::Bytes(_) => PUT_BYTES,
            ValueRef::List(_) => PUT_LIST,
            ValueRef::Hash(_) => PUT_HASH,
        });
        put_bytes(out, key.as_bytes());
        put_deadline(out, expires_at_ms);
        match value {
            ValueRef::Text(text) => put_bytes(out, text.as_bytes()),
            ValueRef::Bytes(bytes) => put_bytes(out, bytes),
            ValueRef::List(items) => put_items(out, items),
            ValueRef::Hash(fields) => {
                out.extend_from_slice(&u32::try_from(fields.len()).unwrap_or(u32::MAX).to_le_bytes());
                for (field, value) in fields.iter() {
                    put_bytes(out, field.as_bytes());
                    put_bytes(out, value.as_bytes());
                }
            }
        }
    });
}

fn put_items(out: &mut Vec<u8>, items: &VecDeque<String>) {
    out.extend_from_slice(&u32::try_from(items.len()).unwrap_or(u32::MAX).to_le_bytes());
    for item in items {
        put_bytes(out, item.as_bytes());
    }
}

/// Bits at `offsets` of `key` were set (on a new bitmap when `fresh`); the key's deadline is
/// now `expires_at_ms`.
pub(super) fn encode_set_bits(out: &mut Vec<u8>, key: &str, offsets: &[u64], fresh: bool, expires_at_ms: Option<u64>) {
    frame(out, |out| {
        out.push(SET_BITS);
        put_bytes(out, key.as_bytes());
        put_deadline(out, expires_at_ms);
        out.push(u8::from(fresh));
        out.extend_from_slice(&u32::try_from(offsets.len()).unwrap_or(u32::MAX).to_le_bytes());
        for offset in offsets {
            out.extend_from_slice(&offset.to_le_bytes());
        }
    });
}

/// `key`, if held, now has the deadline `expires_at_ms`.
pub(super) fn encode_expire(out: &mut Vec<u8>, key: &str, expires_at_ms: Option<u64>) {
    frame(out, |out| {
        out.push(EXPIRE);
        put_bytes(out, key.as_bytes());
        put_deadline(out, expires_at_ms);
    });
}

/// `key` is gone.
pub(super) fn encode_delete(out: &mut Vec<u8>, key: &str) {
    frame(out, |out| {
        out.push(DELETE);
        put_bytes(out, key.as_bytes());
    });
}

/// What the next frame of a journal holds.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Frame {
    /// A whole record, and the frame's length in bytes.
    Record(Record, usize),
    /// The bytes end inside the frame: a write a crash cut short, if it is the file's end.
    Torn,
    /// The frame is whole but its checksum or contents are wrong.
    Corrupt(&'static str),
}

/// Reads the frame at the start of `bytes` (not empty).
pub(super) fn read_frame(bytes: &[u8]) -> Frame {
    let Some(header) = bytes.get(..FRAME_HEADER) else { return Frame::Torn };
    let length = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let checksum = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if length > MAX_PAYLOAD {
        return Frame::Corrupt("a record length past the largest record");
    }
    let Some(payload) = bytes.get(FRAME_HEADER..FRAME_HEADER + length) else { return Frame::Torn };
    if crc32fast::hash(payload) != checksum {
        return Frame::Corrupt("a record whose checksum does not match");
    }
    match decode(payload) {
        Some(record) => Frame::Record(record, FRAME_HEADER + length),
        None => Frame::Corrupt("a record that cannot be read although its checksum matches"),
    }
}

/// Reads a payload; `None` when it is not a record this version writes.
fn decode(payload: &[u8]) -> Option<Record> {
    let mut reader = Reader { bytes: payload };
    let tag = reader.byte()?;
    let key = reader.text()?;
    let record = match tag {
        PUT_TEXT | PUT_BYTES | PUT_LIST | PUT_HASH => {
            let expires_at_ms = reader.deadline()?;
            let value = match tag {
                PUT_TEXT => StoredValue::Text(reader.text()?),
                PUT_BYTES => StoredValue::Bytes(reader.bytes()?.to_vec()),
                PUT_LIST => {
                    let count = reader.count()?;
                    StoredValue::List((0..count).map(|_| reader.text()).collect::<Option<_>>()?)
                }
                _ => {
                    let count = reader.count()?;
                    let fields: Option<HashMap<String, String>> =
                        (0..count).map(|_| Some((reader.text()?, reader.text()?))).collect();
                    let mut fields: Vec<(String, String)> = fields?.into_iter().collect();
                    fields.sort();
                    StoredValue::Hash(fields)
                }
            };
            Record::Put { key, value, expires_at_ms }
        }
        SET_BITS => {
            let expires_at_ms = reader.deadline()?;
            let fresh = reader.byte()? == 1;
            let count = reader.count()?;
            let offsets = (0..count).map(|_| reader.u64()).collect::<Option<_>>()?;
            Record::SetBits { key, offsets, fresh, expires_at_ms }
        }
        EXPIRE => Record::Expire { key, expires_at_ms: reader.deadline()? },
        DELETE => Record::Delete { key },
        _ => return None,
    };
    reader.bytes.is_empty().then_some(record)
}

struct Reader<'a> {
    bytes: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, count: usize) -> Option<&'a [u8]> {
        let (taken, rest) = (self.bytes.get(..count)?, self.bytes.get(count..)?);
        self.bytes = rest;
        Some(taken)
    }

    fn byte(&mut self) -> Option<u8> {
        self.take(1).map(|bytes| bytes[0])
    }

    fn count(&mut self) -> Option<usize> {
        let bytes = self.take(4)?;
        Some(u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize)
    }

    fn u64(&mut self) -> Option<u64> {
        let bytes = self.take(8)?;
        Some(u64::from_le_bytes(bytes.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let length = self.count()?;
        self.take(length)
    }

    fn text(&mut self) -> Option<String> {
        String::from_utf8(self.bytes()?.to_vec()).ok()
    }

    fn deadline(&mut self) -> Option<Option<u64>> {
        match self.byte()? {
            0 => Some(None),
            1 => Some(Some(self.u64()?)),
            _ => None,
        }
    }
}
