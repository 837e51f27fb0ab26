//! Secret redaction for everything a run writes to disk: journal lines and the
//! chunked stdout/stderr byte streams of steps.
//!
//! A secret value is replaced by `[redacted:NAME]` so the record still says
//! *which* secret was there without saying what it was.

use std::sync::Arc;

/// Replaces every occurrence of known secret values with `[redacted:NAME]`.
///
/// Cheap to clone: the secret table is shared.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    inner: Arc<Table>,
}

#[derive(Debug, Default)]
struct Table {
    /// Sorted longest value first, so that at any position the longest secret
    /// wins (a secret that contains another is never half-redacted).
    secrets: Vec<Secret>,
    /// `first_byte[b]` is true when some secret starts with byte `b`; lets the
    /// scanner skip the overwhelmingly common bytes that start nothing.
    first_byte: Vec<bool>,
    /// Length in bytes of the longest secret value (0 when there is none).
    max_len: usize,
}

#[derive(Debug)]
struct Secret {
    value: String,
    replacement: Vec<u8>,
    /// The value as it appears inside a JSON string literal, when escaping
    /// changes it (quotes, backslashes, control characters).
    json_escaped: Option<String>,
}

impl Redactor {
    /// Builds a redactor from `(name, value)` pairs; empty values are ignored.
    pub fn new(secrets: Vec<(String, String)>) -> Redactor {
        let mut table: Vec<Secret> = secrets
            .into_iter()
            // An empty value would "match" everywhere; it cannot be a secret.
            .filter(|(_, value)| !value.is_empty())
            .map(|(name, value)| {
                let escaped = serde_json::to_string(&value).ok().and_then(|quoted| {
                    let inner = quoted.get(1..quoted.len().saturating_sub(1))?.to_owned();
                    (inner != value).then_some(inner)
                });
                Secret {
                    replacement: format!("[redacted:{name}]").into_bytes(),
                    value,
                    json_escaped: escaped,
                }
            })
            .collect();
        // Longest first; ties broken by value so the order never depends on input order.
        table.sort_by(|a, b| {
            b.value
                .len()
                .cmp(&a.value.len())
                .then_with(|| a.value.cmp(&b.value))
        });
        table.dedup_by(|a, b| a.value == b.value);
        let mut first_byte = vec![false; 256];
        for secret in &table {
            if let Some(&b) = secret.value.as_bytes().first() {
                first_byte[usize::from(b)] = true;
            }
        }
        let max_len = table.first().map_or(0, |s| s.value.len());
        Redactor {
            inner: Arc::new(Table {
                secrets: table,
                first_byte,
                max_len,
            }),
        }
    }

    /// True when there is no (non-empty) secret to redact.
    pub fn is_empty(&self) -> bool {
        self.inner.secrets.is_empty()
    }

    /// Length in bytes of the longest secret value (0 when empty).
    pub fn max_len(&self) -> usize {
        self.inner.max_len
    }

    /// Returns `text` with every secret value replaced by `[redacted:NAME]`.
    pub fn redact_str(&self, text: &str) -> String {
        if !self.contains_secret(text) {
            return text.to_owned();
        }
        let out = self.redact_bytes(text.as_bytes());
        // Matches start and end on char boundaries (both sides are UTF-8), so
        // this never actually loses anything; lossy is just the panic-free path.
        match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// Returns `bytes` with every secret value replaced by `[redacted:NAME]`.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        self.scan(bytes, true, &mut out);
        out
    }

    /// True when some secret value occurs verbatim in `text`.
    pub fn contains_secret(&self, text: &str) -> bool {
        // `str::contains` uses a substring search far faster than a byte scan.
        self.inner
            .secrets
            .iter()
            .any(|s| text.contains(s.value.as_str()))
    }

    /// True when some secret occurs in `json` text, raw or in its JSON-escaped form.
    pub fn may_occur_in_json(&self, json: &str) -> bool {
        self.contains_secret(json)
            || self.inner.secrets.iter().any(|s| {
                s.json_escaped
                    .as_deref()
                    .is_some_and(|esc| json.contains(esc))
            })
    }

    /// Redacts every string (object keys included) inside a JSON value in place.
    ///
    /// Working on decoded strings rather than the JSON text keeps the result
    /// valid JSON whatever the secret contains, and catches secrets that JSON
    /// escaping would have disguised.
    pub fn redact_json_value(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(s) => {
                if self.contains_secret(s) {
                    *s = self.redact_str(s);
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json_value(v)),
            Value::Object(map) => {
                let needs_key_rewrite = map.keys().any(|k| self.contains_secret(k));
                if needs_key_rewrite {
                    let old = std::mem::take(map);
                    for (k, mut v) in old {
                        self.redact_json_value(&mut v);
                        map.insert(self.redact_str(&k), v);
                    }
                } else {
                    map.values_mut().for_each(|v| self.redact_json_value(v));
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// Starts a streaming redactor sharing this redactor's secrets.
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor {
            redactor: self.clone(),
            pending: Vec::new(),
        }
    }

    /// Redacts `input` into `out` and returns how many input bytes were consumed.
    ///
    /// With `at_end == false` the scan stops at the first position where the
    /// remaining input is a proper prefix of a secret that a longer chunk might
    /// complete; those bytes are left unconsumed for the caller to hold back.
    fn scan(&self, input: &[u8], at_end: bool, out: &mut Vec<u8>) -> usize {
        let table = &self.inner;
        let mut i = 0;
        // Start of the run of plain bytes not yet copied to `out`.
        let mut plain_from = 0;
        'outer: while i < input.len() {
            if !table.first_byte[usize::from(input[i])] {
                i += 1;
                continue;
            }
            let rest = &input[i..];
            for secret in &table.secrets {
                let v = secret.value.as_bytes();
                if rest.len() >= v.len() {
                    if rest.starts_with(v) {
                        out.extend_from_slice(&input[plain_from..i]);
                        out.extend_from_slice(&secret.replacement);
                        i += v.len();
                        plain_from = i;
                        continue 'outer;
                    }
                } else if !at_end && v.starts_with(rest) {
                    // A longer secret than any full match here may still be
                    // completing in the next chunk: decide later.
                    out.extend_from_slice(&input[plain_from..i]);
                    return i;
                }
            }
            i += 1;
        }
        out.extend_from_slice(&input[plain_from..]);
        input.len()
    }
}

/// Redacts a byte stream that arrives in chunks, catching secrets split across chunks.
#[derive(Debug)]
pub struct StreamRedactor {
    redactor: Redactor,
    /// Trailing bytes held back because they could be the start of a secret;
    /// never longer than the longest secret minus one.
    pending: Vec<u8>,
}

impl StreamRedactor {
    /// Feeds a chunk and returns the redacted bytes that are now safe to write.
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        if self.redactor.is_empty() {
            return chunk.to_vec();
        }
        self.pending.extend_from_slice(chunk);
        let mut out = Vec::with_capacity(self.pending.len());
        let consumed = self.redactor.scan(&self.pending, false, &mut out);
        self.pending.drain(..consumed);
        out
    }

    /// Ends the stream and returns the redacted held-back bytes.
    pub fn finish(mut self) -> Vec<u8> {
        let pending = std::mem::take(&mut self.pending);
        self.redactor.redact_bytes(&pending)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redactor(pairs: &[(&str, &str)]) -> Redactor {
        Redactor::new(
            pairs
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn replaces_every_occurrence() {
        let r = redactor(&[("TOKEN", "s3cr3t")]);
        assert_eq!(
            r.redact_str("a s3cr3t b s3cr3ts3cr3t"),
            "a [redacted:TOKEN] b [redacted:TOKEN][redacted:TOKEN]"
        );
        assert_eq!(r.redact_str("nothing here"), "nothing here");
    }

    #[test]
    fn longest_value_wins() {
        let r = redactor(&[("SHORT", "abc"), ("LONG", "abcdef")]);
        assert_eq!(
            r.redact_str("xabcdefx abcx"),
            "x[redacted:LONG]x [redacted:SHORT]x"
        );
    }

    #[test]
    fn empty_values_are_ignored() {
        let r = redactor(&[("EMPTY", ""), ("K", "key")]);
        assert_eq!(r.redact_str("a key"), "a [redacted:K]");
        assert!(redactor(&[("EMPTY", "")]).is_empty());
    }

    #[test]
    fn unicode_is_preserved() {
        let r = redactor(&[("P", "pässwörd")]);
        assert_eq!(r.redact_str("é pässwörd ü"), "é [redacted:P] ü");
    }

    #[test]
    fn secret_split_across_chunks_is_redacted() {
        let r = redactor(&[("TOKEN", "hunter2")]);
        let mut s = r.stream();
        let mut out = s.push(b"password is hun");
        // Only the possibly-secret tail is held back.
        assert_eq!(out, b"password is ");
        out.extend(s.push(b"ter2, ok"));
        out.extend(s.finish());
        assert_eq!(out, b"password is [redacted:TOKEN], ok");
    }

    #[test]
    fn stream_matches_whole_input_for_every_split() {
        let r = redactor(&[("A", "abcab"), ("B", "bca"), ("C", "cc")]);
        let input = b"xxabcabcabccabcaxbcccab".to_vec();
        let whole = r.redact_bytes(&input);
        for cut1 in 0..=input.len() {
            for cut2 in cut1..=input.len() {
                let mut s = r.stream();
                let mut out = s.push(&input[..cut1]);
                out.extend(s.push(&input[cut1..cut2]));
                out.extend(s.push(&input[cut2..]));
                out.extend(s.finish());
                assert_eq!(out, whole, "cuts at {cut1}/{cut2}");
            }
        }
    }

    #[test]
    fn stream_holds_back_less_than_max_len() {
        let r = redactor(&[("T", "abcdef")]);
        let mut s = r.stream();
        let out = s.push(b"zzzabcde");
        assert_eq!(out, b"zzz");
        assert!(s.pending.len() < r.max_len());
        assert_eq!(s.finish(), b"abcde");
    }

    #[test]
    fn json_values_are_redacted_and_stay_valid() {
        let r = redactor(&[("Q", "a\"b"), ("K", "tok")]);
        let mut v = serde_json::json!({"cmd": "echo a\"b", "tok": ["x tok", 1]});
        let text = v.to_string();
        assert!(r.may_occur_in_json(&text));
        r.redact_json_value(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"cmd": "echo [redacted:Q]", "[redacted:K]": ["x [redacted:K]", 1]})
        );
        assert!(!r.may_occur_in_json("{\"a\":\"b\"}"));
    }
}
