//! Dead letters: records that could not become events, kept with the reason.

use crate::event::Origin;
use base64::Engine as _;
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A record that could not be parsed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeadLetter {
    pub reason: String,
    pub source: Origin,
    pub received_at: DateTime<Utc>,
    /// The record as text (invalid UTF-8 replaced).
    pub payload: String,
    /// The exact bytes, when they were not valid UTF-8.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payload_base64: Option<String>,
    /// The record exactly as received, for destinations that keep bytes (Kafka).
    #[serde(skip)]
    pub original: Vec<u8>,
    /// When the payload is only the beginning of the record: the whole
    /// record's size and hash.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub whole: Option<Whole>,
}

/// The size and SHA-256 of a record of which only a part is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Whole {
    pub bytes: u64,
    /// Lowercase hex.
    pub sha256: String,
}

impl Whole {
    pub fn of(bytes: u64, sha256: &[u8; 32]) -> Whole {
        Whole {
            bytes,
            sha256: hex(sha256),
        }
    }

    /// The size and hash of `data`.
    pub fn hash(data: &[u8]) -> Whole {
        use sha2::Digest;
        Whole::of(data.len() as u64, &sha2::Sha256::digest(data).into())
    }
}

/// Lowercase hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Longest reason kept, in characters: reasons quote what they found, and
/// travel in Kafka headers.
pub const MAX_REASON_CHARS: usize = 1000;

impl DeadLetter {
    pub fn new(reason: String, source: Origin, received_at: DateTime<Utc>, bytes: &[u8]) -> Self {
        let reason = match crate::vocab::text::shorten(&reason, MAX_REASON_CHARS) {
            std::borrow::Cow::Borrowed(_) => reason,
            std::borrow::Cow::Owned(short) => short,
        };
        let (payload, payload_base64) = match std::str::from_utf8(bytes) {
            Ok(text) => (text.trim_end_matches(['\n', '\r']).to_string(), None),
            Err(_) => (
                String::from_utf8_lossy(bytes).into_owned(),
                Some(base64::engine::general_purpose::STANDARD.encode(bytes)),
            ),
        };
        DeadLetter {
            reason,
            source,
            received_at,
            payload,
            payload_base64,
            original: bytes.to_vec(),
            whole: None,
        }
    }
}
