//! Comments: the grammar's `COMMENT` rule is silent, so the formatter finds them by
//! scanning the source with the same lexical rules as the grammar (strings are skipped,
//! so a `//` inside `"https://…"` is not a comment).

use crate::syntax::source::Span;

/// One comment as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comment {
    /// Where it is.
    pub span: Span,
    /// Its text, delimiters included; a line comment without its trailing whitespace.
    pub text: String,
    /// Whether an empty line separates it from what comes before it.
    pub blank_before: bool,
}

impl Comment {
    /// Whether it is a `// …` comment, which must end its line.
    pub fn is_line(&self) -> bool {
        self.text.starts_with("//")
    }
}

/// Every comment of `source`, in order. `source` must be text the parser accepted.
pub fn scan(source: &str) -> Vec<Comment> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => i = skip_string(source, i),
            b'/' if bytes.get(i + 1) == Some(&b'/') => {
                let end = source[i..].find('\n').map_or(source.len(), |n| i + n);
                // Only the grammar's whitespace: `trim_end` also took a vertical tab (or
                // any Unicode space) that ends the comment, which then stood outside it
                // where the formatter looks for `{`, and the block was dropped (found by
                // fuzz/fuzz_targets/check.rs).
                let text = source[i..end].trim_end_matches([' ', '\t', '\r', '\u{FEFF}']);
                out.push(comment(source, i, i + text.len(), text));
                i = end;
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => {
                let end = source[i + 2..]
                    .find("*/")
                    .map_or(source.len(), |n| i + 2 + n + 2);
                out.push(comment(source, i, end, &source[i..end]));
                i = end;
            }
            _ => i += 1,
        }
    }
    out
}

fn comment(source: &str, start: usize, end: usize, text: &str) -> Comment {
    Comment {
        span: Span::new(start, end),
        text: text.to_string(),
        blank_before: blank_before(source, start),
    }
}

/// The offset just past the string literal that starts at `start`, with the grammar's
/// rules: `"""` runs to the next `"""` if there is one, otherwise it is an empty `""`.
fn skip_string(source: &str, start: usize) -> usize {
    if source[start..].starts_with("\"\"\"") {
        if let Some(n) = source[start + 3..].find("\"\"\"") {
            return start + 3 + n + 3;
        }
    }
    let bytes = source.as_bytes();
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' | b'\n' => return i + 1,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// Whether an empty line separates the text at `offset` from what precedes it.
pub fn blank_before(source: &str, offset: usize) -> bool {
    let before = &source[..offset];
    let gap_start = before
        .char_indices()
        .rev()
        .find(|(_, c)| !c.is_whitespace() && *c != '\u{FEFF}')
        .map_or(0, |(i, c)| i + c.len_utf8());
    // At the very start of the file there is nothing to be separated from.
    gap_start > 0 && before[gap_start..].matches('\n').count() >= 2
}

/// Line numbers of byte offsets, by binary search over the line starts.
pub struct Lines {
    starts: Vec<u32>,
}

impl Lines {
    /// The line starts of `source`.
    pub fn new(source: &str) -> Lines {
        let mut starts = vec![0];
        starts.extend(
            source
                .bytes()
                .enumerate()
                .filter(|(_, b)| *b == b'\n')
                .map(|(i, _)| i as u32 + 1),
        );
        Lines { starts }
    }

    /// The 0-based line of `offset`.
    pub fn line(&self, offset: u32) -> usize {
        self.starts.partition_point(|s| *s <= offset) - 1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_comments_outside_strings() {
        let src = "a \"http://x\" // one  \n\"\"\"/* no */\"\"\" /* two */ b";
        let texts: Vec<_> = scan(src).into_iter().map(|c| c.text).collect();
        assert_eq!(texts, ["// one", "/* two */"]);
    }

    #[test]
    fn escaped_quote_does_not_end_a_string() {
        let src = r#""a\"// no" // yes"#;
        let texts: Vec<_> = scan(src).into_iter().map(|c| c.text).collect();
        assert_eq!(texts, ["// yes"]);
    }

    #[test]
    fn blank_lines_are_seen() {
        let src = "…\n\n// c\nb // d";
        let c = scan(src);
        assert!(c[0].blank_before);
        assert!(!c[1].blank_before);
    }
}
