//! Run identifiers: ULID-like, sortable by creation time, safe as directory names.
//!
//! A `RunId` is 16 characters of Crockford base32: 10 for the milliseconds since
//! the Unix epoch, then 6 (30 bits) of randomness. Because the alphabet is in
//! ASCII order and the length is fixed, sorting the strings sorts the runs by
//! time, so `ls .runbook/runs` is already chronological.

use std::fmt;
use std::io::Read;
use std::str::FromStr;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Crockford's base32 alphabet (no I, L, O, U), in ascending ASCII order.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters encoding the millisecond timestamp.
const TIME_CHARS: usize = 10;
/// Characters encoding the random part.
const RAND_CHARS: usize = 6;
/// Bits in the random part.
const RAND_BITS: u32 = 5 * RAND_CHARS as u32;
/// Total length of a run id.
const LEN: usize = TIME_CHARS + RAND_CHARS;

/// Last `(millis, random)` handed out by this process; makes ids minted in the
/// same millisecond (or after the clock steps back) still sort in creation order.
static LAST: Mutex<Option<(u64, u32)>> = Mutex::new(None);

/// Identifier of one run: 16 chars of Crockford base32, sortable by creation time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RunId(String);

impl RunId {
    /// Mints a fresh id, strictly greater than every id this process minted before.
    pub fn generate() -> RunId {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut last = LAST.lock().unwrap_or_else(|p| p.into_inner());
        let (millis, rand) = match *last {
            Some((last_ms, last_rand)) if now <= last_ms => {
                // Same millisecond (or the clock went backwards): keep the last
                // timestamp and count up, like ULID's monotonic mode.
                if last_rand + 1 < (1 << RAND_BITS) {
                    (last_ms, last_rand + 1)
                } else {
                    (last_ms + 1, random_bits())
                }
            }
            _ => (now, random_bits()),
        };
        *last = Some((millis, rand));
        drop(last);
        RunId(encode(millis, rand))
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Milliseconds since the Unix epoch at which the id was minted.
    pub fn timestamp_ms(&self) -> u64 {
        // Always 16 chars by construction; `get` just keeps this panic-free.
        let time = self.0.as_bytes().get(..TIME_CHARS).unwrap_or_default();
        time.iter().fold(0u64, |acc, &c| {
            (acc << 5) | u64::from(digit(c).unwrap_or(0))
        })
    }
}

/// Encodes a timestamp and a random part as the 16-character id text.
fn encode(millis: u64, rand: u32) -> String {
    let mut out = String::with_capacity(LEN);
    for i in (0..TIME_CHARS).rev() {
        out.push(char::from(ALPHABET[((millis >> (5 * i)) & 31) as usize]));
    }
    for i in (0..RAND_CHARS).rev() {
        out.push(char::from(ALPHABET[((rand >> (5 * i)) & 31) as usize]));
    }
    out
}

/// Value of a Crockford base32 digit (uppercase only).
fn digit(c: u8) -> Option<u8> {
    ALPHABET
        .iter()
        .position(|&a| a == c)
        .and_then(|p| u8::try_from(p).ok())
}

/// 30 random bits: from /dev/urandom, or a mix of time, pid and a counter when
/// that is unavailable (uniqueness within a process comes from the counter in
/// `generate` anyway; randomness only separates concurrent processes).
fn random_bits() -> u32 {
    let mut buf = [0u8; 4];
    let from_urandom = std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .is_ok();
    let raw = if from_urandom {
        u32::from_le_bytes(buf)
    } else {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let seed = (u64::from(std::process::id()) << 32) ^ u64::from(nanos);
        // Truncation is the point: keep 32 well-mixed bits.
        splitmix64(seed) as u32
    };
    raw & ((1 << RAND_BITS) - 1)
}

/// One round of SplitMix64, a cheap bit mixer.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Why a string is not a run id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid run id {input:?}: expected {LEN} Crockford base32 characters")]
pub struct ParseRunIdError {
    /// The rejected input.
    pub input: String,
}

impl FromStr for RunId {
    type Err = ParseRunIdError;

    /// Parses an id, accepting lowercase and normalising it to the canonical uppercase.
    fn from_str(s: &str) -> Result<RunId, ParseRunIdError> {
        let upper = s.to_ascii_uppercase();
        let valid = upper.len() == LEN && upper.bytes().all(|c| digit(c).is_some());
        // The first character carries only the top bits of a 48-bit timestamp
        // (10 chars hold 50 bits); anything above '7' would overflow.
        let in_range = upper.as_bytes().first().is_some_and(|&c| c <= b'7');
        if valid && in_range {
            Ok(RunId(upper))
        } else {
            Err(ParseRunIdError {
                input: s.to_owned(),
            })
        }
    }
}

impl Serialize for RunId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RunId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<RunId, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_and_round_trip() {
        let id = RunId::generate();
        let text = id.to_string();
        assert_eq!(text.len(), 16);
        assert!(text.bytes().all(|c| ALPHABET.contains(&c)));
        assert_eq!(text.parse::<RunId>().unwrap(), id);
        assert_eq!(text.to_lowercase().parse::<RunId>().unwrap(), id);
    }

    #[test]
    fn encodes_timestamp() {
        let id = RunId(encode(1_700_000_000_123, 5));
        assert_eq!(id.timestamp_ms(), 1_700_000_000_123);
        assert!(id.as_str().ends_with("000005"));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64;
        let fresh = RunId::generate().timestamp_ms();
        assert!(fresh + 5_000 >= now && fresh <= now + 5_000);
    }

    #[test]
    fn ids_sort_in_creation_order() {
        let ids: Vec<RunId> = (0..10_000).map(|_| RunId::generate()).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted, "ids are unique and already in order");
        // Lexicographic order of the text agrees with the derived order.
        let texts: Vec<String> = ids.iter().map(ToString::to_string).collect();
        assert!(texts.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn time_dominates_randomness() {
        let earlier = RunId(encode(1000, (1 << RAND_BITS) - 1));
        let later = RunId(encode(1001, 0));
        assert!(earlier < later);
    }

    #[test]
    fn rejects_bad_input() {
        for bad in [
            "",
            "01ARZ3NDEK",
            "01ARZ3NDEKTSV4RRFFQ69G5FAV",
            "01ARZ3NDEKTSV4RI",
            "01ARZ3NDEK/SV4RR",
            "81ARZ3NDEKTSV4RR",
        ] {
            assert!(bad.parse::<RunId>().is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn serde_as_string() {
        let id: RunId = "01ARZ3NDEKTSV4RR".parse().unwrap();
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(json, "\"01ARZ3NDEKTSV4RR\"");
        assert_eq!(serde_json::from_str::<RunId>(&json).unwrap(), id);
        assert!(serde_json::from_str::<RunId>("\"nope\"").is_err());
    }
}
