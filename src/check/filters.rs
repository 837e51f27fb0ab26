//! The filter and test names a template uses. minijinja looks them up only when it
//! renders, so a misspelt `| uper` would otherwise pass `check` and stop the run at the
//! step that renders it.

use minijinja::{Environment, ErrorKind};
use std::collections::HashMap;

/// Filter names to suggest for a misspelt one: minijinja's common ones and ours.
pub const FILTER_NAMES: &[&str] = &[
    "upper",
    "lower",
    "trim",
    "join",
    "replace",
    "length",
    "default",
    "first",
    "last",
    "list",
    "lines",
    "split",
    "sort",
    "unique",
    "reverse",
    "map",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "groupby",
    "batch",
    "slice",
    "items",
    "dictsort",
    "int",
    "float",
    "bool",
    "string",
    "abs",
    "round",
    "sum",
    "min",
    "max",
    "count",
    "capitalize",
    "title",
    "indent",
    "tojson",
    "pprint",
    "urlencode",
    "escape",
    "safe",
    "attr",
    "shell_quote",
];

/// Test names to suggest for a misspelt one: minijinja's.
pub const TEST_NAMES: &[&str] = &[
    "defined",
    "undefined",
    "none",
    "number",
    "string",
    "sequence",
    "mapping",
    "iterable",
    "boolean",
    "integer",
    "float",
    "odd",
    "even",
    "divisibleby",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "in",
    "true",
    "false",
    "lower",
    "upper",
    "startingwith",
    "endingwith",
    "sameas",
    "safe",
    "escaped",
];

/// Whether a name follows `|` (a filter) or `is` (a test).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Use {
    /// `value | name`.
    Filter,
    /// `value is name`, `value is not name`.
    Test,
}

/// A filter or test name and its byte offset in the template text.
#[derive(Debug, PartialEq, Eq)]
pub struct Name<'a> {
    /// How it is used.
    pub used: Use,
    /// The name.
    pub name: &'a str,
    /// Where it starts in the template text.
    pub at: usize,
}

/// The filter and test names in `text`: in its `{{ }}` and `{% %}` tags (everywhere, for
/// an `expression`), outside string literals, comments and `{% raw %}` blocks.
pub fn names(text: &str, expression: bool) -> Vec<Name<'_>> {
    let mut found = Vec::new();
    if expression {
        scan_code(text, 0, text.len(), &mut found);
        return found;
    }
    let mut i = 0;
    while let Some(pos) = text[i..].find('{') {
        let open = i + pos;
        let rest = &text[open..];
        if rest.starts_with("{#") {
            i = text[open..].find("#}").map_or(text.len(), |e| open + e + 2);
        } else if rest.starts_with("{{") || rest.starts_with("{%") {
            let close = if rest.starts_with("{{") { "}}" } else { "%}" };
            let start = open + 2;
            let end = code_end(text, start, close);
            if rest.starts_with("{%") && is_raw(&text[start..end]) {
                // Nothing up to `{% endraw %}` is template code.
                i = find_endraw(text, end).unwrap_or(text.len());
                continue;
            }
            scan_code(text, start, end, &mut found);
            i = (end + close.len()).min(text.len());
        } else {
            i = open + 1;
        }
    }
    found
}

/// Which of `names` the environment has no filter or test of. `seen` remembers the
/// answers across templates (a runbook uses a handful of names, many times).
pub fn unknown<'n, 'a>(
    env: &Environment<'_>,
    names: &'n [Name<'a>],
    seen: &mut HashMap<(Use, String), bool>,
) -> Vec<&'n Name<'a>> {
    names
        .iter()
        .filter(|n| {
            !*seen
                .entry((n.used, n.name.to_string()))
                .or_insert_with(|| known(env, n.used, n.name))
        })
        .collect()
}

/// Asks the environment itself: rendering `x | name` says "unknown filter" only for a
/// name it lacks (a known one may fail otherwise, for want of arguments).
fn known(env: &Environment<'_>, used: Use, name: &str) -> bool {
    let (source, missing) = match used {
        Use::Filter => (format!("{{{{ x | {name} }}}}"), ErrorKind::UnknownFilter),
        Use::Test => (format!("{{{{ x is {name} }}}}"), ErrorKind::UnknownTest),
    };
    match env.render_str(&source, minijinja::context! { x => "" }) {
        Ok(_) => true,
        Err(e) => e.kind() != missing,
    }
}

/// Where the code of a tag opened before `start` ends: the `close` delimiter outside
/// string literals (or the end of the text).
pub fn code_end(text: &str, start: usize, close: &str) -> usize {
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = start;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(_) if b == b'\\' => i += 1,
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if text[i..].starts_with(close) => return i,
            None => {}
        }
        i += 1;
    }
    bytes.len()
}

/// Whether a `{% %}` tag's code is `raw` (with or without whitespace control).
fn is_raw(code: &str) -> bool {
    code.trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace()) == "raw"
}

/// The offset just past the `{% endraw %}` that closes a raw block starting at `from`.
fn find_endraw(text: &str, from: usize) -> Option<usize> {
    let mut i = from;
    while let Some(pos) = text[i..].find("{%") {
        let start = i + pos + 2;
        let end = code_end(text, start, "%}");
        let code =
            text[start..end].trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace());
        if code == "endraw" {
            return Some((end + 2).min(text.len()));
        }
        i = start;
    }
    None
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The identifier starting at `i` (after spaces), and where it starts.
fn ident_at(text: &str, mut i: usize, end: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    while i < end && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    if i >= end || !is_ident_start(bytes[i]) {
        return None;
    }
    let start = i;
    while i < end && is_ident(bytes[i]) {
        i += 1;
    }
    Some((&text[start..i], start))
}

/// Collects the names used in `text[start..end]`, which is template code.
fn scan_code<'a>(text: &'a str, start: usize, end: usize, found: &mut Vec<Name<'a>>) {
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = start;
    while i < end {
        let b = bytes[i];
        if let Some(q) = quote {
            if b == b'\\' {
                i += 1;
            } else if b == q {
                quote = None;
            }
            i += 1;
            continue;
        }
        match b {
            b'\'' | b'"' => quote = Some(b),
            b'|' => {
                if let Some((name, at)) = ident_at(text, i + 1, end) {
                    found.push(Name {
                        used: Use::Filter,
                        name,
                        at,
                    });
                }
            }
            _ if is_ident_start(b)
                && (i == start || !is_ident(bytes[i - 1]) && bytes[i - 1] != b'.') =>
            {
                let word_end = (i..end).find(|&j| !is_ident(bytes[j])).unwrap_or(end);
                if &text[i..word_end] == "is" {
                    let mut next = ident_at(text, word_end, end);
                    if let Some(("not", at)) = next {
                        next = ident_at(text, at + 3, end);
                    }
                    if let Some((name, at)) = next {
                        found.push(Name {
                            used: Use::Test,
                            name,
                            at,
                        });
                    }
                }
                i = word_end;
                continue;
            }
            _ => {}
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(text: &str, expression: bool) -> Vec<(Use, &str)> {
        names(text, expression)
            .into_iter()
            .map(|n| {
                assert_eq!(&text[n.at..n.at + n.name.len()], n.name);
                (n.used, n.name)
            })
            .collect()
    }

    #[test]
    fn finds_filters_and_tests_in_tags_only() {
        let text = "a | b {{ x | upper | replace('|', \"| y\") }} {# c | d #} \
                    {% if y is not defined and z is number %}{{ w|trim }}{% endif %} \
                    {% raw %}{{ q | nope }}{% endraw %} {{ this.is_ok | e }} {%- raw -%}{{ r|no }}{%- endraw %}";
        assert_eq!(
            listed(text, false),
            [
                (Use::Filter, "upper"),
                (Use::Filter, "replace"),
                (Use::Test, "defined"),
                (Use::Test, "number"),
                (Use::Filter, "trim"),
                (Use::Filter, "e"),
            ]
        );
        assert_eq!(
            listed("params.a | int > 3 and params.b is odd", true),
            [(Use::Filter, "int"), (Use::Test, "odd")]
        );
        // Unclosed tags and strings end at the end of the text, without panicking.
        assert_eq!(listed("{{ x | lower", false), [(Use::Filter, "lower")]);
        assert_eq!(listed("{{ 'x | y", false), []);
    }

    #[test]
    fn the_environment_says_which_names_it_lacks() {
        let env = crate::ir::jinja::environment();
        let text = "{{ x | uper | upper | replace | shell_quote }}{% if x is nmber or x is number %}{% endif %}";
        let found = names(text, false);
        let mut seen = HashMap::new();
        let missing: Vec<&str> = unknown(&env, &found, &mut seen)
            .iter()
            .map(|n| n.name)
            .collect();
        assert_eq!(seen.len(), 6);
        assert_eq!(missing, ["uper", "nmber"]);
    }
}
