//! Secret redaction for everything a run writes to disk: journal lines and the
//! chunked stdout/stderr byte streams of steps.
//!
//! A secret value is replaced by `[redacted:NAME]` so the record still says
//! *which* secret was there without saying what it was.
//!
//! # What is caught
//!
//! Every secret value is looked for in the forms a leak takes, all in one
//! left-to-right scan where, at any position, the longest pattern wins:
//!
//! - **the value as text**, where each byte may also appear URL-encoded
//!   (`%XX`, either hex case; `+` for a space) or backslash-escaped as in JSON
//!   and most string literals (`\"`, `\\`, `\/`, `\n`, `\r`, `\t`, `\b`, `\f`,
//!   `\u00XX` for ASCII). Forms may mix, so whichever subset of characters an
//!   encoder escapes (`encodeURIComponent`, `quote_plus`, `jq @uri`, JSON) is
//!   caught with one pattern;
//! - **hex**, lowercase and uppercase (values of 4 bytes or more);
//! - **base64**, standard and URL-safe alphabets, with or without padding. A
//!   value's base64 depends on its alignment in the encoded data (how many
//!   bytes precede it, modulo 3), and the first and last characters of its
//!   stretch mix bits of the neighbouring bytes. So for each of the three
//!   alignments only the *stable inner part* is matched: the characters made
//!   of the value's bits alone. The whole encoding of the value on its own
//!   (alignment 0, padded or not) is matched too, so `printf %s value | base64`
//!   output is replaced entirely. An inner part shorter than 8 characters is
//!   not used, to keep short secrets from matching ordinary text: values of 7
//!   bytes or more are caught at every alignment, 6-byte values only at
//!   alignment 0 (a multiple of 3 bytes before them), shorter ones not in
//!   base64 at all. A character or two of the encoding around the marker can
//!   remain; they hold at most a few bits of the value.
//!
//! Between any two characters of a form, up to [`MAX_GAP`] bytes of noise are
//! skipped: ANSI escape sequences (CSI such as `\x1b[31m`, and `ESC ( B`-style
//! charset selections), line breaks (`\n`, `\r\n`, as a terminal or `base64`
//! wrapping a long line inserts) and their JSON-escaped spellings (`\n`, `\r`,
//! `\u001b[…`). So `se\x1b[1mcret` and a base64 dump wrapped at 76 columns are
//! caught. Only the matched span (first to last character of the secret,
//! noise inside included) is replaced; everything else is copied byte for byte.
//!
//! Known limits: other encodings (double escaping, HTML entities, `\u` escapes
//! of non-ASCII characters, hex with separators as in `xxd` dumps, gzip, …)
//! and values cut by more than [`MAX_GAP`] noise bytes between two characters
//! are not recognised.
//!
//! # Cost
//!
//! Patterns are indexed by first byte, and a table of the byte pairs a match
//! can start with filters positions first, so a position that starts no
//! pattern costs one bit test; one that does costs comparisons that almost
//! always fail within a byte or two. The scan is linear in the input, and the
//! streaming form holds back only a tail that is still a possible beginning of
//! a match, never more than [`Redactor::max_held_back`] bytes.

use std::sync::Arc;

/// Most noise bytes (ANSI escape sequences, line breaks) skipped between two
/// consecutive characters of a secret's form.
pub const MAX_GAP: usize = 32;

/// Shortest encoded (hex, base64) pattern used: shorter ones would match
/// ordinary text.
const MIN_ENCODED: usize = 8;

const BASE64_STD: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const BASE64_URL: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// Replaces every occurrence of known secret values, raw or encoded, with
/// `[redacted:NAME]`.
///
/// Cheap to clone: the secret table is shared.
#[derive(Debug, Clone, Default)]
pub struct Redactor {
    inner: Arc<Table>,
}

#[derive(Debug, Default)]
struct Table {
    /// `[redacted:NAME]` per secret, indexed by [`Pattern::secret`].
    replacements: Vec<Vec<u8>>,
    /// Every form of every secret, longest first.
    patterns: Vec<Pattern>,
    /// `by_first[b]` lists, longest first, the patterns whose match can start
    /// with byte `b`; lets the scanner skip the overwhelmingly common bytes
    /// that start nothing with one lookup.
    by_first: Vec<Vec<u32>>,
    /// Bit `256 * a + b` is set when some pattern's match can start with bytes
    /// `a b`: a second, sharper filter before trying patterns.
    pairs: Vec<u64>,
    /// Length in bytes of the longest secret value (0 when there is none).
    max_len: usize,
    /// Longest input a match can span, noise included.
    max_span: usize,
}

#[derive(Debug, PartialEq, Eq)]
struct Pattern {
    bytes: Vec<u8>,
    /// The value as text: each byte may also appear `%XX`-, `+`- or
    /// backslash-escaped. Otherwise (hex, base64) bytes match literally.
    text: bool,
    /// Index into [`Table::replacements`].
    secret: usize,
}

impl Pattern {
    /// Longest input a match can span: every byte in its longest spelling
    /// (`\u00XX`) and the most noise between every two.
    fn max_span(&self) -> usize {
        let per_byte = if self.text { 6 } else { 1 };
        self.bytes.len() * per_byte + self.bytes.len().saturating_sub(1) * MAX_GAP
    }
}

/// How a pattern (or one of its pieces) fares at a position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Found {
    /// Matched, spanning this many input bytes.
    Len(usize),
    /// The input ended first: more input could still make it match.
    Partial,
    /// Cannot match here.
    Miss,
}

impl Redactor {
    /// Builds a redactor from `(name, value)` pairs; empty values are ignored.
    ///
    /// Values are not refused here whatever their length (`runbook run`
    /// refuses secrets shorter than 4 characters before it gets here); hex and
    /// base64 forms are only looked for when they are at least 8 characters.
    pub fn new(secrets: Vec<(String, String)>) -> Redactor {
        let mut secrets: Vec<(String, String)> = secrets
            .into_iter()
            // An empty value would "match" everywhere; it cannot be a secret.
            .filter(|(_, value)| !value.is_empty())
            .collect();
        // Longest first; ties broken by value so the order never depends on input order.
        secrets.sort_by(|a, b| b.1.len().cmp(&a.1.len()).then_with(|| a.1.cmp(&b.1)));
        secrets.dedup_by(|a, b| a.1 == b.1);

        let mut patterns = Vec::new();
        let mut replacements = Vec::with_capacity(secrets.len());
        for (index, (name, value)) in secrets.iter().enumerate() {
            replacements.push(format!("[redacted:{name}]").into_bytes());
            let value = value.as_bytes();
            patterns.push(Pattern {
                bytes: value.to_vec(),
                text: true,
                secret: index,
            });
            for form in encoded_forms(value) {
                patterns.push(Pattern {
                    bytes: form,
                    text: false,
                    secret: index,
                });
            }
        }
        // Longest first (the stable sort keeps longer secrets first among equals).
        patterns.sort_by_key(|p| std::cmp::Reverse(p.bytes.len()));
        let mut seen = std::collections::HashSet::new();
        patterns.retain(|p| seen.insert((p.bytes.clone(), p.text)));

        let mut by_first = vec![Vec::new(); 256];
        let mut pairs = vec![0u64; 256 * 256 / 64];
        let mut set = |a: u8, b: u8| {
            let bit = usize::from(a) * 256 + usize::from(b);
            pairs[bit / 64] |= 1 << (bit % 64);
        };
        for (index, pattern) in patterns.iter().enumerate() {
            let index = u32::try_from(index).unwrap_or(u32::MAX);
            let first = pattern.bytes[0];
            // The bytes that may follow a first byte matched as itself (or `+`):
            // the second byte, its escapes, or noise before it.
            let follow: Vec<u8> = match pattern.bytes.get(1) {
                None => (0..=255).collect(),
                Some(&second) => {
                    let mut follow = vec![second, b'\n', b'\r', 0x1b, b'\\'];
                    if pattern.text {
                        follow.push(b'%');
                        if second == b' ' {
                            follow.push(b'+');
                        }
                    }
                    follow
                }
            };
            let mut starts = vec![first];
            if pattern.text {
                starts.extend([b'%', b'\\']);
                if first == b' ' {
                    starts.push(b'+');
                }
            }
            starts.sort_unstable();
            starts.dedup();
            for start in starts {
                by_first[usize::from(start)].push(index);
                if pattern.text && (start == b'%' || start == b'\\') {
                    // Anything may follow an escape's `%` or `\` (even when it
                    // is also the first byte itself).
                    (0..=255).for_each(|b| set(start, b));
                } else {
                    follow.iter().for_each(|&b| set(start, b));
                }
            }
        }
        let max_len = secrets.first().map_or(0, |(_, v)| v.len());
        let max_span = patterns.iter().map(Pattern::max_span).max().unwrap_or(0);
        Redactor {
            inner: Arc::new(Table {
                replacements,
                patterns,
                by_first,
                pairs,
                max_len,
                max_span,
            }),
        }
    }

    /// True when there is no (non-empty) secret to redact.
    pub fn is_empty(&self) -> bool {
        self.inner.replacements.is_empty()
    }

    /// Length in bytes of the longest secret value (0 when empty).
    pub fn max_len(&self) -> usize {
        self.inner.max_len
    }

    /// Most bytes a [`StreamRedactor`] ever holds back: the longest input a
    /// match of any form can span, less one (0 when empty).
    pub fn max_held_back(&self) -> usize {
        self.inner.max_span.saturating_sub(1)
    }

    /// Returns `text` with every secret, raw or encoded, replaced by `[redacted:NAME]`.
    pub fn redact_str(&self, text: &str) -> String {
        if !self.contains_secret(text) {
            return text.to_owned();
        }
        let out = self.redact_bytes(text.as_bytes());
        // Matches start and end on char boundaries (both sides are UTF-8, noise
        // is ASCII), so this never actually loses anything; lossy is just the
        // panic-free path.
        match String::from_utf8(out) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        }
    }

    /// Returns `bytes` with every secret, raw or encoded, replaced by `[redacted:NAME]`.
    pub fn redact_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(bytes.len());
        self.scan(bytes, true, Some(&mut out));
        out
    }

    /// True when some secret occurs in `text`, raw or in a form [`Redactor::redact_str`] replaces.
    pub fn contains_secret(&self, text: &str) -> bool {
        self.scan(text.as_bytes(), true, None).1
    }

    /// True when some secret occurs in `json` text, raw or in its JSON-escaped
    /// form (or any other form [`Redactor::redact_str`] replaces).
    pub fn may_occur_in_json(&self, json: &str) -> bool {
        self.contains_secret(json)
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

    /// Redacts `input` into `out` and returns how many input bytes were
    /// consumed and whether anything matched. Without `out`, stops at the
    /// first match.
    ///
    /// With `at_end == false` the scan stops at the first position where the
    /// remaining input is a possible beginning of a match that a longer chunk
    /// might complete (and no longer pattern has matched there already); those
    /// bytes are left unconsumed for the caller to hold back.
    fn scan(&self, input: &[u8], at_end: bool, mut out: Option<&mut Vec<u8>>) -> (usize, bool) {
        let table = &self.inner;
        let mut found = false;
        let mut i = 0;
        // Start of the run of plain bytes not yet copied to `out`.
        let mut plain_from = 0;
        'outer: while i < input.len() {
            let candidates = &table.by_first[usize::from(input[i])];
            let maybe = match input.get(i + 1) {
                Some(&next) => {
                    let bit = usize::from(input[i]) * 256 + usize::from(next);
                    table.pairs[bit / 64] & (1 << (bit % 64)) != 0
                }
                None => !candidates.is_empty(),
            };
            if !maybe {
                i += 1;
                continue;
            }
            for &index in candidates {
                let pattern = &table.patterns[index as usize];
                match match_at(pattern, input, i) {
                    Found::Len(len) => {
                        found = true;
                        let Some(out) = out.as_deref_mut() else {
                            return (i, true);
                        };
                        out.extend_from_slice(&input[plain_from..i]);
                        out.extend_from_slice(&table.replacements[pattern.secret]);
                        i += len;
                        plain_from = i;
                        continue 'outer;
                    }
                    Found::Partial if !at_end => {
                        // A longer form than any full match here may still be
                        // completing in the next chunk: decide later.
                        if let Some(out) = out {
                            out.extend_from_slice(&input[plain_from..i]);
                        }
                        return (i, found);
                    }
                    Found::Partial | Found::Miss => {}
                }
            }
            i += 1;
        }
        if let Some(out) = out {
            out.extend_from_slice(&input[plain_from..]);
        }
        (input.len(), found)
    }
}

/// Matches `pattern` at `input[start..]`, skipping noise between its bytes.
///
/// A byte can be spelled more than one way (`\` raw or as `\\`, `%` raw or as
/// `%25`), so the match follows every spelling at once: the input positions it
/// may have reached after each byte of the pattern (a handful at most). The
/// shortest complete match wins; it cannot change with more input, which keeps
/// the stream and whole-input results identical.
///
/// At the end of the input the answer is [`Found::Partial`] whenever more
/// input could still make it match; a caller at the end of its stream reads
/// that as a miss.
fn match_at(pattern: &Pattern, input: &[u8], start: usize) -> Found {
    let mut current = Positions::default();
    current.insert(start);
    let mut partial = false;
    for (k, &byte) in pattern.bytes.iter().enumerate() {
        let mut next = Positions::default();
        for &from in current.as_slice() {
            let mut j = from;
            let mut gap = 0;
            loop {
                let rest = &input[j..];
                if rest.is_empty() {
                    partial = true;
                    break;
                }
                if rest[0] == byte {
                    next.insert(j + 1);
                }
                if pattern.text {
                    match escaped_at(byte, rest) {
                        Found::Len(n) => next.insert(j + n),
                        Found::Partial => partial = true,
                        Found::Miss => {}
                    }
                }
                if k == 0 {
                    break;
                }
                // Skip one noise item, within the budget, and try again after it.
                let limit = input.len().min(j + (MAX_GAP - gap));
                match noise_at(&input[j..limit]) {
                    Found::Len(n) => {
                        gap += n;
                        j += n;
                    }
                    Found::Partial if limit == input.len() => {
                        partial = true;
                        break;
                    }
                    Found::Partial | Found::Miss => break,
                }
            }
        }
        if next.len == 0 {
            return if partial { Found::Partial } else { Found::Miss };
        }
        current = next;
    }
    let end = current.as_slice().iter().min().copied().unwrap_or(start);
    Found::Len(end - start)
}

/// The input positions a match may have reached: a small set.
#[derive(Default)]
struct Positions {
    at: [usize; 8],
    len: usize,
}

impl Positions {
    /// Adds a position. Beyond eight ways to spell a prefix (only contrived
    /// values get near two), further ones are dropped.
    fn insert(&mut self, position: usize) {
        if self.len < self.at.len() && !self.as_slice().contains(&position) {
            self.at[self.len] = position;
            self.len += 1;
        }
    }

    fn as_slice(&self) -> &[usize] {
        &self.at[..self.len]
    }
}

/// Matches one byte of a text pattern spelled as an escape at the start of
/// `input`: `%XX`, `+` (a space), or a backslash escape.
fn escaped_at(byte: u8, input: &[u8]) -> Found {
    match input.first() {
        None => Found::Partial,
        Some(b'+') if byte == b' ' => Found::Len(1),
        Some(b'%') => match input.get(1..3) {
            None => Found::Partial,
            Some(hex) if hex_value(hex) == Some(u32::from(byte)) => Found::Len(3),
            Some(_) => Found::Miss,
        },
        Some(b'\\') => {
            let Some(&escape) = input.get(1) else {
                return Found::Partial;
            };
            let decoded = match escape {
                b'"' | b'\\' | b'/' => escape,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'u' if byte.is_ascii() => {
                    return match input.get(2..6) {
                        None => Found::Partial,
                        Some(hex) if hex_value(hex) == Some(u32::from(byte)) => Found::Len(6),
                        Some(_) => Found::Miss,
                    };
                }
                _ => return Found::Miss,
            };
            if decoded == byte {
                Found::Len(2)
            } else {
                Found::Miss
            }
        }
        Some(_) => Found::Miss,
    }
}

/// Matches one noise item at the start of `input`: a line break, an ANSI
/// escape sequence, or the JSON-escaped form of either.
fn noise_at(input: &[u8]) -> Found {
    match input {
        [] => Found::Partial,
        [b'\n' | b'\r', ..] => Found::Len(1),
        [0x1b, ..] => escape_at(input, 1),
        [b'\\'] => Found::Partial,
        [b'\\', b'n' | b'r', ..] => Found::Len(2),
        [b'\\', b'u', rest @ ..] => {
            let n = rest.len().min(4);
            if !rest[..n].eq_ignore_ascii_case(&b"001b"[..n]) {
                Found::Miss
            } else if n < 4 {
                Found::Partial
            } else {
                escape_at(input, 6)
            }
        }
        _ => Found::Miss,
    }
}

/// Matches the rest of an escape sequence whose ESC ends at `input[..at]`:
/// a CSI (`[`, parameters, intermediates, final byte) or an nF sequence
/// (intermediates, final byte) such as `ESC ( B`.
fn escape_at(input: &[u8], at: usize) -> Found {
    let mut i = at;
    let Some(&kind) = input.get(i) else {
        return Found::Partial;
    };
    let final_bytes = if kind == b'[' {
        i += 1;
        while input.get(i).is_some_and(|b| (0x30..=0x3f).contains(b)) {
            i += 1;
        }
        0x40..=0x7e
    } else if (0x20..=0x2f).contains(&kind) {
        0x30..=0x7e
    } else {
        return Found::Miss;
    };
    while input.get(i).is_some_and(|b| (0x20..=0x2f).contains(b)) {
        i += 1;
    }
    match input.get(i) {
        None => Found::Partial,
        Some(b) if final_bytes.contains(b) => Found::Len(i + 1),
        Some(_) => Found::Miss,
    }
}

/// The value of ASCII hex digits (either case).
fn hex_value(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &d| {
        let v = char::from(d).to_digit(16)?;
        Some(acc * 16 + v)
    })
}

/// The hex and base64 forms of a value worth looking for (at least
/// [`MIN_ENCODED`] characters each, `=` padding not counted).
fn encoded_forms(value: &[u8]) -> Vec<Vec<u8>> {
    let mut forms = Vec::new();
    let lower: String = value.iter().map(|b| format!("{b:02x}")).collect();
    forms.push(lower.to_ascii_uppercase().into_bytes());
    forms.push(lower.into_bytes());
    for alphabet in [BASE64_STD, BASE64_URL] {
        // The value encoded on its own, padded and not: replaced whole.
        let whole = base64_chars(value, alphabet);
        if value.len() % 3 != 0 && whole.len() >= MIN_ENCODED {
            let mut padded = whole.clone();
            padded.resize(value.len().div_ceil(3) * 4, b'=');
            forms.push(padded);
        }
        forms.push(whole);
        for align in 0..3 {
            forms.push(base64_inner(value, align, alphabet));
        }
    }
    forms.retain(|f| f.len() >= MIN_ENCODED);
    forms.sort();
    forms.dedup();
    forms
}

/// The base64 characters of `bytes` (the last one padded with zero bits), no `=`.
fn base64_chars(bytes: &[u8], alphabet: &[u8; 64]) -> Vec<u8> {
    let bits = bytes.len() * 8;
    (0..bits.div_ceil(6))
        .map(|k| {
            let sextet = (0..6).fold(0usize, |acc, b| {
                let bit = k * 6 + b;
                let set = bit < bits && bytes[bit / 8] & (0x80 >> (bit % 8)) != 0;
                acc << 1 | usize::from(set)
            });
            alphabet[sextet]
        })
        .collect()
}

/// The characters of a base64 encoding made of `value`'s bits alone when
/// `align` bytes (0, 1 or 2) precede it: the same whatever its neighbours.
fn base64_inner(value: &[u8], align: usize, alphabet: &[u8; 64]) -> Vec<u8> {
    let mut framed = vec![0; align];
    framed.extend_from_slice(value);
    let chars = base64_chars(&framed, alphabet);
    let first = (align * 8).div_ceil(6);
    let end = (framed.len() * 8) / 6;
    chars
        .get(first..end)
        .map(<[u8]>::to_vec)
        .unwrap_or_default()
}

/// Redacts a byte stream that arrives in chunks, catching secrets split across chunks.
#[derive(Debug)]
pub struct StreamRedactor {
    redactor: Redactor,
    /// Trailing bytes held back because they could be the start of a secret
    /// (in any of its forms); never longer than [`Redactor::max_held_back`].
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
        let (consumed, _) = self.redactor.scan(&self.pending, false, Some(&mut out));
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

    // ── encodings ───────────────────────────────────────────────────────────────

    /// Secrets of the kinds people have (8 characters or more).
    const TYPICAL: &[(&str, &str)] = &[
        ("GITHUB", "ghp_16C7e42F292c6912E7710c838347Ae178B4a"),
        ("OPENAI", "sk-proj-Abc123_def456-GHI789jkl"),
        ("AWS_ID", "AKIAIOSFODNN7EXAMPLE"),
        ("AWS_KEY", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"),
        ("SLACK", "xoxb-1234-5678-abcdefgh"),
        ("PASS", "p@ss w0rd!&=+/?~"),
        ("SHORT", "hunter22"),
        ("PHRASE", "correct horse battery staple"),
        ("REGEX", r"a.b*c+d?(e)[f]{g}|h^$\i%41"),
        ("UNICODE", "pässwörd-✓-秘密"),
    ];

    fn typical() -> Redactor {
        redactor(TYPICAL)
    }

    fn hex(bytes: &[u8], upper: bool) -> String {
        bytes
            .iter()
            .map(|b| {
                if upper {
                    format!("{b:02X}")
                } else {
                    format!("{b:02x}")
                }
            })
            .collect()
    }

    /// Textbook base64 (RFC 4648), padded; the URL-safe alphabet on request.
    fn base64(bytes: &[u8], url_safe: bool, pad: bool) -> String {
        let alphabet: &[u8] = if url_safe {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
        } else {
            b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        };
        let mut out = String::new();
        for group in bytes.chunks(3) {
            let n = group.len();
            let word = (u32::from(group[0]) << 16)
                | (u32::from(*group.get(1).unwrap_or(&0)) << 8)
                | u32::from(*group.get(2).unwrap_or(&0));
            for k in 0..4 {
                if k <= n {
                    out.push(char::from(alphabet[(word >> (18 - 6 * k)) as usize & 63]));
                } else if pad {
                    out.push('=');
                }
            }
        }
        out
    }

    /// Percent-encoding of everything but RFC 3986 unreserved characters.
    fn url_encode(value: &str, plus_for_space: bool, lower: bool) -> String {
        value
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                    char::from(b).to_string()
                }
                b' ' if plus_for_space => "+".to_owned(),
                _ if lower => format!("%{b:02x}"),
                _ => format!("%{b:02X}"),
            })
            .collect()
    }

    /// The forms a leak of `value` takes, each with what it is.
    fn leaks(value: &str) -> Vec<(&'static str, String)> {
        let b = value.as_bytes();
        let mid = value
            .char_indices()
            .nth(value.chars().count() / 2)
            .unwrap()
            .0;
        let json = serde_json::to_string(value).unwrap();
        let mut forms = vec![
            ("raw", value.to_owned()),
            ("json", json[1..json.len() - 1].to_owned()),
            ("hex", hex(b, false)),
            ("HEX", hex(b, true)),
            ("url", url_encode(value, false, false)),
            ("url+", url_encode(value, true, false)),
            ("url lowercase", url_encode(value, true, true)),
            ("base64", base64(b, false, true)),
            ("base64 unpadded", base64(b, false, false)),
            ("base64url", base64(b, true, true)),
            ("base64url unpadded", base64(b, true, false)),
            (
                "ansi inside",
                format!("{}\x1b[1m{}", &value[..mid], &value[mid..]),
            ),
            (
                "ansi per char",
                value
                    .chars()
                    .map(|c| format!("\x1b[3{}m{c}", c.len_utf8()))
                    .collect::<String>()[5..]
                    .to_owned(),
            ),
            ("wrapped", format!("{}\r\n{}", &value[..mid], &value[mid..])),
            ("hex wrapped", {
                let h = hex(b, false);
                format!("{}\n{}", &h[..9], &h[9..])
            }),
        ];
        // JSON text holding a value printed in colour, as an agent's JSON stream has it.
        let coloured =
            serde_json::to_string(&format!("{}\x1b[31m{}", &value[..mid], &value[mid..])).unwrap();
        forms.push(("json ansi", coloured[1..coloured.len() - 1].to_owned()));
        forms
    }

    /// Redacts `input` through a stream cut at `cuts`.
    fn streamed(r: &Redactor, input: &[u8], cuts: &[usize]) -> Vec<u8> {
        let mut s = r.stream();
        let mut out = Vec::new();
        let mut from = 0;
        for &cut in cuts {
            out.extend(s.push(&input[from..cut]));
            assert!(s.pending.len() <= r.max_held_back());
            from = cut;
        }
        out.extend(s.push(&input[from..]));
        out.extend(s.finish());
        out
    }

    /// A small deterministic generator (xorshift), for property-style loops.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }

        fn below(&mut self, n: usize) -> usize {
            (self.next() % n as u64) as usize
        }

        /// Sorted cut positions splitting `len` bytes into many chunks.
        fn cuts(&mut self, len: usize) -> Vec<usize> {
            let mut cuts: Vec<usize> = (0..self.below(12) + 2)
                .map(|_| self.below(len + 1))
                .collect();
            cuts.sort_unstable();
            cuts
        }
    }

    /// The stream gives what the whole-input redaction gives, for every cut
    /// into two chunks and for random cuts into many.
    fn assert_stream_agrees(r: &Redactor, input: &[u8], rng: &mut Rng) {
        let whole = r.redact_bytes(input);
        for cut in 0..=input.len() {
            assert_eq!(
                streamed(r, input, &[cut]),
                whole,
                "cut at {cut} of {:?}",
                String::from_utf8_lossy(input)
            );
        }
        for _ in 0..20 {
            let cuts = rng.cuts(input.len());
            assert_eq!(streamed(r, input, &cuts), whole, "cuts at {cuts:?}");
        }
    }

    #[test]
    fn every_form_of_every_secret_is_redacted_whole_and_streamed() {
        let r = typical();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for (name, value) in TYPICAL {
            let marker = format!("[redacted:{name}]");
            for (form, leak) in leaks(value) {
                let input = format!("\x1b[32mlog:\x1b[0m {leak} (end)\n");
                let out = r.redact_str(&input);
                assert_eq!(
                    out,
                    format!("\x1b[32mlog:\x1b[0m {marker} (end)\n"),
                    "{name} as {form}: {leak:?}"
                );
                assert!(r.contains_secret(&input), "{name} as {form}");
                assert_stream_agrees(&r, input.as_bytes(), &mut rng);
            }
        }
    }

    #[test]
    fn base64_is_caught_at_every_alignment_and_wrapping() {
        let r = typical();
        let mut rng = Rng(7);
        for (name, value) in TYPICAL {
            let marker = format!("[redacted:{name}]");
            let len = value.len();
            for before in 0..6usize {
                for after in 0..4 {
                    for url_safe in [false, true] {
                        let mut data: Vec<u8> = (0..before).map(|_| rng.next() as u8).collect();
                        data.extend_from_slice(value.as_bytes());
                        data.extend((0..after).map(|_| rng.next() as u8));
                        let encoded = base64(&data, url_safe, true);
                        let out = r.redact_str(&encoded);
                        // Characters made of the value's bits alone must be gone;
                        // at most the ones mixing in neighbours' bits (and padding) stay.
                        let first = (before * 8).div_ceil(6);
                        let end = ((before + len) * 8) / 6;
                        let (head, tail) = out
                            .split_once(&marker)
                            .unwrap_or_else(|| panic!("{name} at {before}: {out}"));
                        assert!(
                            encoded.starts_with(head) && head.len() + 1 >= first,
                            "{name} at {before}/{after}: {encoded} -> {out}"
                        );
                        assert!(
                            head.len() <= first
                                && encoded.ends_with(tail)
                                && encoded.len() - tail.len() >= end
                                && encoded.len() - tail.len() <= end + 3,
                            "{name} at {before}/{after}: {encoded} -> {out}"
                        );
                        // `base64` wraps its output at 76 columns.
                        let long: Vec<u8> =
                            data.iter().copied().cycle().take(data.len() * 4).collect();
                        let wrapped: Vec<u8> = base64(&long, url_safe, true)
                            .into_bytes()
                            .chunks(76)
                            .flat_map(|line| line.iter().copied().chain([b'\n']))
                            .collect();
                        let out = String::from_utf8(r.redact_bytes(&wrapped)).unwrap();
                        assert!(out.matches(&marker).count() == 4, "{name} wrapped: {out}");
                    }
                }
            }
            let data = format!("xy{value}z");
            assert_stream_agrees(
                &r,
                base64(data.as_bytes(), false, true).as_bytes(),
                &mut rng,
            );
        }
    }

    #[test]
    fn short_secrets_have_no_base64_form_that_could_match_anything() {
        // 4 and 5 bytes: no base64 at all; 6: only at alignment 0; 7: every alignment.
        let base64_forms = |v: &str| {
            let hex = [hex(v.as_bytes(), false), hex(v.as_bytes(), true)];
            encoded_forms(v.as_bytes())
                .into_iter()
                .filter(|f| !hex.iter().any(|h| h.as_bytes() == f))
                .count()
        };
        assert_eq!(base64_forms("abcd"), 0);
        assert_eq!(base64_forms("abcde"), 0);
        assert_eq!(base64_forms("abcdef"), 1, "alignment 0 only");
        assert!(base64_forms("abcdefg") >= 3);
        let r = redactor(&[("S", "abcdefg")]);
        for before in 0..3 {
            let mut data = vec![b'.'; before];
            data.extend_from_slice(b"abcdefg");
            assert!(
                r.contains_secret(&base64(&data, false, true)),
                "alignment {before}"
            );
        }
        let r = redactor(&[("S", "abcdef")]);
        assert!(r.contains_secret(&base64(b"abcdef", false, true)));
        assert!(!r.contains_secret(&base64(b".abcdef", false, true)));
        // Hex needs 8 characters too: nothing for a 3-byte value.
        assert!(redactor(&[("S", "abc")]).contains_secret("abc"));
        assert!(!redactor(&[("S", "abc")]).contains_secret("616263"));
    }

    #[test]
    fn ansi_anywhere_inside_is_skipped_and_surroundings_kept() {
        let value = "secret-value";
        let r = redactor(&[("S", value)]);
        let mut rng = Rng(99);
        for at in 1..value.len() {
            for noise in [
                "\x1b[1m",
                "\x1b[38;5;196m",
                "\x1b[0m\x1b[31m",
                "\x1b(B\x1b[m",
                "\n",
                "\r\n",
                "\x1b[K\r\n",
            ] {
                let input = format!(
                    "\x1b[31mbefore \x1b[0m{}{noise}{}\x1b[0m after\n",
                    &value[..at],
                    &value[at..]
                );
                assert_eq!(
                    r.redact_str(&input),
                    "\x1b[31mbefore \x1b[0m[redacted:S]\x1b[0m after\n",
                    "{input:?}"
                );
                assert_stream_agrees(&r, input.as_bytes(), &mut rng);
            }
        }
        assert_eq!(r.redact_str("se\x1b[1mcret-value"), "[redacted:S]");
        // Noise before the first or after the last character is not part of the match.
        assert_eq!(
            r.redact_str("\n\x1b[1msecret-value\x1b[0m\n"),
            "\n\x1b[1m[redacted:S]\x1b[0m\n"
        );
    }

    #[test]
    fn noise_beyond_the_gap_limit_is_a_known_limit() {
        let r = redactor(&[("S", "secret-value")]);
        let fits = format!("secret{}-value", "\x1b[0m".repeat(MAX_GAP / 4));
        assert_eq!(r.redact_str(&fits), "[redacted:S]");
        let too_much = format!("secret{}-value", "\x1b[0m".repeat(MAX_GAP / 4 + 1));
        assert_eq!(r.redact_str(&too_much), too_much);
        // An escape sequence that never ends holds nothing back forever.
        let mut s = r.stream();
        let mut out = s.push(b"secret\x1b[");
        out.extend(s.push(&[b'1'; 100]));
        assert!(s.pending.is_empty());
        out.extend(s.finish());
        assert_eq!(out.len(), 108);
    }

    #[test]
    fn escapes_and_percent_forms_may_mix() {
        let r = redactor(&[("S", "a b/c\"d")]);
        for leak in [
            "a+b%2Fc%22d",
            "a%20b/c\\\"d",
            "a b\\/c\\u0022d",
            "%61%20%62%2f%63%22%64",
            "a\\u0020b/c\"d",
        ] {
            assert_eq!(
                r.redact_str(&format!("<{leak}>")),
                "<[redacted:S]>",
                "{leak}"
            );
        }
        // A `%` or backslash that decodes to something else is left alone.
        for near in ["a+b%2Ec%22d", "a b\\/c\\u0023d", "a%2"] {
            assert_eq!(r.redact_str(near), near);
        }
    }

    #[test]
    fn one_byte_and_space_values_are_caught_escaped() {
        let r = redactor(&[("X", "x"), ("SP", " ")]);
        assert_eq!(
            r.redact_str("a x %78 \\u0078 + %20."),
            "a[redacted:SP][redacted:X][redacted:SP][redacted:X][redacted:SP]\
             [redacted:X][redacted:SP][redacted:SP][redacted:SP][redacted:SP]."
        );
    }

    #[test]
    fn special_characters_in_a_secret_are_plain_bytes() {
        let value = r"a.b*c+d?(e)[f]{g}|h^$\i%41";
        let r = redactor(&[("R", value)]);
        assert_eq!(r.redact_str(&format!("x{value}y")), "x[redacted:R]y");
        // Regex-style readings of it are not matches.
        for other in [
            "aXb*c+d?(e)[f]{g}|h^$\\i%41",
            "a.bbbc+d?(e)[f]{g}|h^$\\iA",
            "a.b*c+d",
        ] {
            assert_eq!(r.redact_str(other), other);
        }
    }

    #[test]
    fn ordinary_text_has_no_false_positives() {
        let r = typical();
        let mut rng = Rng(0x5eed);
        let mut text = String::new();
        let words = [
            "the",
            "build",
            "failed",
            "at",
            "step",
            "compile",
            "warning:",
            "unused",
            "variable",
            "Compiling",
            "serde",
            "v1.0.197",
            "Finished",
            "test",
            "profile",
            "[unoptimized]",
            "https://example.com/a%20b?q=1&r=2+3",
            "{\"key\":\"value\\n\"}",
            "\x1b[32mok\x1b[0m",
            "\r\n",
            "\n",
            "0x7ffd5e8c",
            "sha256:",
            "==",
            "--",
            "secret",
            "token",
            "password",
            "hunter",
            "horse",
            "AKIA",
            "ghp_",
            "sk-proj-",
            "xoxb-",
        ];
        while text.len() < 300_000 {
            match rng.below(10) {
                0 => {
                    let bytes: Vec<u8> = (0..rng.below(60) + 1).map(|_| rng.next() as u8).collect();
                    text.push_str(&base64(&bytes, rng.below(2) == 0, true));
                }
                1 => {
                    let bytes: Vec<u8> = (0..rng.below(32) + 1).map(|_| rng.next() as u8).collect();
                    text.push_str(&hex(&bytes, rng.below(2) == 0));
                }
                _ => text.push_str(words[rng.below(words.len())]),
            }
            text.push(' ');
        }
        assert!(!r.contains_secret(&text));
        assert_eq!(r.redact_str(&text), text);
        // Text that is itself encoded, without any secret in it.
        for (form, leak) in leaks("The quick brown fox jumps over the lazy dog 0123456789") {
            assert!(!r.contains_secret(&leak), "{form}: {leak}");
        }
    }

    #[test]
    fn stream_holds_back_no_more_than_a_form_can_span() {
        let r = typical();
        let mut rng = Rng(3);
        let mut s = r.stream();
        let mut input = Vec::new();
        let mut out = Vec::new();
        for _ in 0..2000 {
            let chunk: Vec<u8> = match rng.below(3) {
                0 => leaks(TYPICAL[rng.below(TYPICAL.len())].1)[rng.below(16)]
                    .1
                    .clone()
                    .into_bytes(),
                1 => (0..rng.below(40))
                    .map(|_| b"%\\\x1b[;1m\r\nghp_AKIA0123abc="[rng.below(24)])
                    .collect(),
                _ => (0..rng.below(40)).map(|_| rng.next() as u8).collect(),
            };
            let cut = rng.below(chunk.len() + 1);
            input.extend_from_slice(&chunk);
            out.extend(s.push(&chunk[..cut]));
            out.extend(s.push(&chunk[cut..]));
            assert!(s.pending.len() <= r.max_held_back());
        }
        out.extend(s.finish());
        assert_eq!(out, r.redact_bytes(&input));
    }

    /// `cargo test --lib redact -- --ignored --nocapture` prints the throughput.
    #[test]
    #[ignore = "timing; run by hand"]
    fn redaction_is_linear_in_the_output() {
        let r = redactor(&TYPICAL[..5]);
        let line = "\x1b[32m   Compiling\x1b[0m serde v1.0.197 (registry+https://github.com/rust-lang/crates.io-index) sha256:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08 {\"ok\":true}\n";
        let time = |mib: usize| {
            let input: Vec<u8> = line.bytes().cycle().take(mib << 20).collect();
            let start = std::time::Instant::now();
            let mut s = r.stream();
            let mut written = 0;
            for chunk in input.chunks(8192) {
                written += s.push(chunk).len();
            }
            written += s.finish().len();
            assert_eq!(written, input.len());
            start.elapsed().as_secs_f64()
        };
        let one = time(1);
        let ten = time(10);
        eprintln!(
            "redaction, 5 secrets: 1 MiB in {one:.3}s, 10 MiB in {ten:.3}s: {:.1} MB/s",
            10.0 * 1.048_576 / ten
        );
        assert!(
            ten < one * 20.0,
            "not linear: {one}s for 1 MiB, {ten}s for 10"
        );
    }
}
