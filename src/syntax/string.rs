//! String literals: escape processing for `"…"` and indentation stripping for
//! `"""…"""`, keeping a map from the value back to the source.
//!
//! `"…"` knows the escapes `\"`, `\\`, `\n`, `\t`, `\r` and `\0`. Any other backslash is
//! kept as written, so that a regular expression or a shell escape in a command
//! (`sh "grep -E '\d+' log"`, `sh "echo \$HOME"`) means what it says.

use super::ast::{OffsetMap, Str};
use super::source::Span;

/// Processes the text of a literal (quotes included) found at `start` in the source.
pub fn parse(text: &str, start: usize) -> Str {
    let span = Span::new(start, start + text.len());
    if let Some(inner) = text
        .strip_prefix("\"\"\"")
        .and_then(|t| t.strip_suffix("\"\"\""))
    {
        let (value, offsets) = dedent(inner, start + 3);
        return Str {
            value,
            span,
            triple: true,
            offsets,
        };
    }
    let inner = &text[1..text.len() - 1];
    let base = start + 1;
    let mut value = String::with_capacity(inner.len());
    let mut offsets = OffsetMap {
        segments: vec![(0, base as u32)],
    };
    let mut chars = inner.char_indices();
    while let Some((i, c)) = chars.next() {
        if c != '\\' {
            value.push(c);
            continue;
        }
        let Some((_, escaped)) = chars.next() else {
            value.push('\\');
            break;
        };
        let replacement = match escaped {
            'n' => '\n',
            't' => '\t',
            'r' => '\r',
            '\\' => '\\',
            '"' => '"',
            '0' => '\0',
            other => {
                // Kept as written: value and source advance together, so the offset
                // map needs no new segment.
                value.push('\\');
                value.push(other);
                continue;
            }
        };
        value.push(replacement);
        offsets
            .segments
            .push((value.len() as u32, (base + i + 2) as u32));
    }
    Str {
        value,
        span,
        triple: false,
        offsets,
    }
}

/// Strips the first line if blank, the last line if blank, and the indentation the
/// remaining non-blank lines share, recording where each line starts in the source.
fn dedent(inner: &str, base: usize) -> (String, OffsetMap) {
    let mut lines: Vec<(usize, &str)> = Vec::new();
    let mut offset = 0;
    for line in inner.split('\n') {
        lines.push((offset, line));
        offset += line.len() + 1;
    }
    if lines.len() > 1 && lines[0].1.trim().is_empty() {
        lines.remove(0);
    }
    if lines.len() > 1 && lines.last().is_some_and(|(_, l)| l.trim().is_empty()) {
        lines.pop();
    }
    let indent = lines
        .iter()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(_, l)| l.len() - l.trim_start_matches([' ', '\t']).len())
        .min()
        .unwrap_or(0);
    let mut value = String::with_capacity(inner.len());
    let mut offsets = OffsetMap::default();
    for (n, (line_offset, line)) in lines.iter().enumerate() {
        if n > 0 {
            value.push('\n');
        }
        let strip = indent.min(line.len() - line.trim_start_matches([' ', '\t']).len());
        let kept = line[strip..].trim_end_matches('\r');
        offsets
            .segments
            .push((value.len() as u32, (base + line_offset + strip) as u32));
        value.push_str(kept);
    }
    (value, offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_escapes() {
        let s = parse(r#""a\"b\nc""#, 10);
        assert_eq!(s.value, "a\"b\nc");
        assert_eq!(s.offsets.to_source(0), 11);
        assert_eq!(s.offsets.to_source(4), 17);
    }

    #[test]
    fn unknown_escapes_are_kept() {
        let s = parse(r#""grep '\d+' \$HOME""#, 0);
        assert_eq!(s.value, r"grep '\d+' \$HOME");
        // The map stays linear through a kept escape.
        let at = s.value.find("HOME").unwrap();
        assert_eq!(
            s.offsets.to_source(at) as usize,
            r#""grep '\d+' \$HOME""#.find("HOME").unwrap()
        );
    }

    #[test]
    fn triple_dedents_and_maps_lines() {
        let text = "\"\"\"\n    first\n      second\n    \"\"\"";
        let s = parse(text, 0);
        assert_eq!(s.value, "first\n  second");
        // `second` starts at line 2 of the value; it maps to its column in the source.
        let at = s.value.find("second").unwrap();
        let src = s.offsets.to_source(at) as usize;
        assert_eq!(&text[src..src + 6], "second");
    }

    #[test]
    fn triple_on_one_line() {
        let s = parse("\"\"\"hello\"\"\"", 0);
        assert_eq!(s.value, "hello");
    }
}
