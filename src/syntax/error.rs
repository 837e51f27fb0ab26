//! Syntax errors: turning pest's "the parse stopped here" into one sentence a user can
//! act on (`expected `{`, found `phase``), a help line for the usual slips, and a label
//! on the block that a missing `}` left open.

use super::parser::Rule;
use super::source::Span;
use crate::diagnostic::closest;
use pest::error::{Error, ErrorVariant, InputLocation};
use std::collections::BTreeSet;

/// A syntax error: where parsing stopped and what would have been accepted there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where.
    pub span: Span,
    /// One sentence: `expected X, found Y`.
    pub message: String,
    /// A hint for the most common mistakes, if one applies.
    pub help: Option<String>,
    /// What to print under the span, if more than "here".
    pub label: Option<String>,
    /// Other places involved (the `{` of a block that is never closed).
    pub labels: Vec<(Span, String)>,
}

impl SyntaxError {
    /// An error with only a message.
    pub fn new(span: Span, message: impl Into<String>) -> SyntaxError {
        SyntaxError {
            span,
            message: message.into(),
            help: None,
            label: None,
            labels: Vec::new(),
        }
    }
}

/// Every keyword of the language, for "did you mean" and "belongs in" hints.
const KEYWORDS: &[&str] = &[
    "runbook",
    "policy",
    "import",
    "as",
    "param",
    "secret",
    "agent",
    "uses",
    "phase",
    "step",
    "checkpoint",
    "rollback",
    "after",
    "by",
    "file",
    "attempts",
    "diff",
    "run",
    "read",
    "write",
    "exec",
    "network",
    "mcp",
    "env",
    "timeout",
    "estimate",
    "prompt",
    "sh",
    "produces",
    "until",
    "when",
    "on_failure",
    "show",
    "ask",
    "revise",
    "approvers",
    "kind",
    "model",
    "max_turns",
    "budget",
    "title",
    "version",
    "description",
];

/// Words from other tools that people write for one of ours: (wrong, right, the
/// keyword that must be expected there for the hint to apply).
const FAMILIAR_MISTAKES: &[(&str, &str, &str)] = &[
    ("depends_on", "after", ""),
    ("depends", "after", ""),
    ("needs", "after", ""),
    ("requires", "after", ""),
    ("deps", "after", ""),
    ("retries", "until \"CHECK\" attempts N", "until"),
    ("retry", "until \"CHECK\" attempts N", "until"),
    ("command", "sh", "sh"),
    ("cmd", "sh", "sh"),
    ("script", "sh", "sh"),
    ("shell", "sh", "sh"),
    ("run", "sh", "sh"),
    ("agent", "by AGENT (after the step's name)", "sh"),
    ("approver", "approvers", "approvers"),
    ("outputs", "produces", "produces"),
    ("output", "produces", "produces"),
    ("condition", "when", "when"),
    ("if", "when", "when"),
    ("on_error", "on_failure", "on_failure"),
    ("onfailure", "on_failure", "on_failure"),
    ("name", "title", "title"),
    ("question", "ask", "ask"),
    ("command", "run", "run"),
    ("cmd", "run", "run"),
];

/// Keywords that start a declaration, as opposed to a field.
const STRUCTURAL: &[&str] = &[
    "import",
    "param",
    "secret",
    "agent",
    "phase",
    "step",
    "checkpoint",
];

/// Where a keyword belongs, for "`prompt` cannot appear here" errors.
fn belongs(keyword: &str) -> Option<&'static str> {
    Some(match keyword {
        "run" | "read" | "write" | "exec" | "network" | "mcp" | "env" => {
            "is an agent field (read, write, exec, network, mcp and env also go in a policy)"
        }
        "kind" | "model" | "max_turns" => "is an agent field",
        "budget" => "is a field of agents and of the runbook itself",
        "prompt" | "sh" | "produces" | "until" | "when" | "on_failure" => "is a step field",
        "show" | "ask" | "revise" | "approvers" => "is a checkpoint field",
        "estimate" => "is a phase field",
        "import" | "param" | "secret" | "agent" | "phase" => {
            "is declared at the top level of the runbook"
        }
        "step" | "checkpoint" => "goes inside a phase",
        "timeout" => "is a field of agents, steps, checkpoints and rollback blocks",
        "runbook" => {
            "starts a file, and a file holds one runbook: move this one to a file of its own"
        }
        _ => return None,
    })
}

/// One thing the parser would have accepted, ordered for the message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Expected {
    Keyword(String),
    Value(&'static str),
    Punctuation(String),
    EndOfFile,
}

impl Expected {
    fn text(&self) -> String {
        match self {
            Expected::Keyword(k) => format!("`{k}`"),
            Expected::Value(v) => (*v).to_string(),
            Expected::Punctuation(p) => format!("`{p}`"),
            Expected::EndOfFile => "end of file".into(),
        }
    }
}

/// What a grammar rule stands for when it is the thing that failed, if it is a leaf.
fn expected_rule(rule: Rule) -> Option<Expected> {
    let value = |v| Some(Expected::Value(v));
    match rule {
        Rule::EOI => Some(Expected::EndOfFile),
        Rule::ident | Rule::path_ident | Rule::names | Rule::param_type => value("a name"),
        Rule::string | Rule::plain_string | Rule::triple_string => value("a string"),
        Rule::number => value("a number or duration"),
        Rule::list | Rule::show_list => value("a list `[…]`"),
        Rule::boolean => value("`true` or `false`"),
        Rule::network_mode => value("`on` or `off`"),
        Rule::prompt_file => Some(Expected::Keyword("file".into())),
        Rule::open_brace | Rule::agent_body => Some(Expected::Punctuation("{".into())),
        Rule::close_brace => Some(Expected::Punctuation("}".into())),
        Rule::close_bracket => Some(Expected::Punctuation("]".into())),
        Rule::comma => Some(Expected::Punctuation(",".into())),
        Rule::colon => Some(Expected::Punctuation(":".into())),
        Rule::equals => Some(Expected::Punctuation("=".into())),
        _ => {
            let name = format!("{rule:?}");
            name.strip_prefix("k_")
                .map(|k| Expected::Keyword(k.to_string()))
        }
    }
}

/// What the text at `offset` is, for "found …".
fn found_at(text: &str, offset: usize) -> String {
    let rest = &text[offset.min(text.len())..];
    let Some(c) = rest.chars().next() else {
        return "end of file".into();
    };
    if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            .take(40)
            .collect();
        return format!("`{word}`");
    }
    if rest.starts_with("\"\"\"") {
        return "a string `\"\"\"…`".into();
    }
    if c == '"' {
        return "a string".into();
    }
    if c == '\n' || c == '\r' {
        return "the end of the line".into();
    }
    format!("`{c}`")
}

/// The word at `offset`, if one starts there.
fn word_at(text: &str, offset: usize) -> Option<&str> {
    let rest = &text[offset.min(text.len())..];
    let len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (len > 0 && !rest.starts_with(|c: char| c.is_ascii_digit())).then(|| &rest[..len])
}

/// Converts pest's error: the rules it tried where it stopped are what was expected.
pub(super) fn from_pest(error: Error<Rule>, text: &str) -> SyntaxError {
    let offset = match error.location {
        InputLocation::Pos(p) => p,
        InputLocation::Span((s, _)) => s,
    }
    .min(text.len());
    let mut expected = BTreeSet::new();
    if let ErrorVariant::ParsingError { positives, .. } = &error.variant {
        for rule in positives {
            // pest names the whole file when no top-level item starts here.
            if *rule == Rule::file || *rule == Rule::module {
                for key in ["runbook", "policy", "import", "agent"] {
                    expected.insert(Expected::Keyword(key.into()));
                }
            }
            if *rule == Rule::metadata_key || *rule == Rule::metadata {
                for key in ["title", "version", "description"] {
                    expected.insert(Expected::Keyword(key.into()));
                }
            }
            expected.extend(expected_rule(*rule));
        }
    }
    // Right after a word, nothing new can start without a space.
    let glued = text[..offset]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if glued {
        expected.remove(&Expected::Value("a name"));
        expected.remove(&Expected::Value("a number or duration"));
    }
    if let ErrorVariant::CustomError { message } = &error.variant {
        return SyntaxError::new(point(text, offset), message.clone());
    }
    build(text, offset, expected.into_iter().collect())
}

/// A one-character span at `offset` (or the end of the last token at end of file).
fn point(text: &str, offset: usize) -> Span {
    if offset >= text.len() {
        let end = text.trim_end().len();
        return Span::new(end, end);
    }
    let len = text[offset..].chars().next().map_or(0, char::len_utf8);
    Span::new(offset, offset + len)
}

fn build(text: &str, offset: usize, expected: Vec<Expected>) -> SyntaxError {
    // Unterminated strings and comments swallow the rest of the line or file, and pest
    // stops somewhere after them; point at where they start instead.
    if let Some(error) = unterminated(text, offset) {
        return error;
    }
    if let Some(error) = comma_before_by(text, offset, &expected) {
        return error;
    }
    let rest = &text[offset..];
    let found = found_at(text, offset);
    let list_expected = expected.contains(&Expected::Value("a list `[…]`"));
    let texts: Vec<String> = expected
        .iter()
        .filter(|e| !(list_expected && matches!(e, Expected::Punctuation(p) if p == "[")))
        .map(Expected::text)
        .collect();
    let message = match texts.as_slice() {
        [] => format!("unexpected {found}"),
        [one] => format!("expected {one}, found {found}"),
        [init @ .., last] => format!("expected {} or {last}, found {found}", init.join(", ")),
    };
    // Underline the whole word that was found, not just its first letter.
    let span = match word_at(text, offset) {
        Some(word) => Span::new(offset, offset + word.len()),
        None => point(text, offset),
    };
    let mut error = SyntaxError::new(span, message.clone());
    error.help = help(text, offset, &expected);
    // A header or field that stops short (`phase build` without its `{`) is missing
    // something at its own end; when what follows is on a later line, that line is the
    // one to fix, as rustc does for a missing `;`.
    // (When `}` would do, the thing before was complete: the mistake is what follows.)
    let continuing = !expects_close(&expected)
        && !expected.contains(&Expected::EndOfFile)
        && (expected.contains(&Expected::Punctuation("{".into()))
            || !expected.iter().any(|e| matches!(e, Expected::Keyword(_))));
    if continuing && !rest.trim().is_empty() {
        if let Some(previous) = previous_token_end(text, offset) {
            if text[previous..offset].contains('\n') {
                let last = text[..previous]
                    .chars()
                    .next_back()
                    .map_or(1, char::len_utf8);
                error.span = Span::new(previous - last, previous);
                error
                    .labels
                    .push((point(text, offset), format!("{found} is next")));
                if expected.contains(&Expected::Punctuation("{".into())) {
                    let header = header_before(text, previous);
                    error.message =
                        format!("expected `{{` after {header}, found {found} on a later line");
                    error.label = Some("add `{` here".into());
                    error.help = Some(format!(
                        "a block opens with `{{` on its header's line: {} {{",
                        header.trim_matches('`')
                    ));
                } else {
                    error.message = format!("{message} on a later line");
                    error.label = Some("this is incomplete".into());
                }
            }
        }
    }
    // A `}` is missing when the file ends inside a block, or when a declaration that
    // belongs to an outer block shows up where the inner one's fields were expected.
    let misplaced_declaration = word_at(text, offset).is_some_and(|w| {
        STRUCTURAL.contains(&w) && !expected.contains(&Expected::Keyword(w.to_string()))
    });
    if rest.trim().is_empty() || (misplaced_declaration && expects_close(&expected)) {
        if let Some((span, header)) = unclosed_block(text, offset) {
            error
                .labels
                .push((span, format!("this `{{` of {header} is never closed")));
            if rest.trim().is_empty() {
                error.help = Some(format!("add the `}}` that ends {header}"));
            }
        }
    }
    error
}

/// `after a, by x`: the comma makes `by` one more step of `after`, so the agent's name
/// reads as out of place. The mistake is the comma: point at it.
fn comma_before_by(text: &str, offset: usize, expected: &[Expected]) -> Option<SyntaxError> {
    if !expected.contains(&Expected::Keyword("by".into())) {
        return None;
    }
    let by_end = previous_token_end(text, offset)?;
    let by_start = by_end.checked_sub(2)?;
    // `get` first: the token before may end in a multi-byte character.
    if text.get(by_start..by_end)? != "by" {
        return None;
    }
    let whole_word = !text[..by_start]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_alphanumeric() || c == '_');
    if !whole_word {
        return None;
    }
    let comma_end = previous_token_end(text, by_start)?;
    if !text[..comma_end].ends_with(',') {
        return None;
    }
    let mut error = SyntaxError::new(
        Span::new(comma_end - 1, comma_end),
        "a comma before `by` makes `by` one more step of `after`",
    );
    error.label = Some("remove this comma".into());
    let name = word_at(text, offset).map_or(1, str::len);
    error.labels.push((
        Span::new(offset, offset + name),
        "so this is read as out of place".into(),
    ));
    error.help =
        Some("name the agent after the last step, without a comma: `after a, b by NAME`".into());
    Some(error)
}

/// A string or block comment that starts at or before `offset` and is not closed where
/// it must be: a `"` string by the end of its line, `"""` and `/*` by the end of the file.
fn unterminated(text: &str, offset: usize) -> Option<SyntaxError> {
    let mut found = None;
    scan(text, offset, |event| {
        if let Scanned::Unterminated(start, kind) = event {
            found.get_or_insert((start, kind));
        }
    });
    let (start, kind) = found?;
    // Name the literal by its first words, so the message says which one.
    let opening = match kind {
        Unterminated::Plain => 1,
        Unterminated::Triple => 3,
        Unterminated::Comment => 2,
    };
    let words: String = text[start + opening..]
        .trim_start()
        .split('\n')
        .next()
        .unwrap_or_default()
        .chars()
        .take(30)
        .collect();
    let words = words.trim_end();
    let (message, help) = match kind {
        Unterminated::Plain => (
            format!("the string `\"{words}` is not closed on its line"),
            "end it with `\"`; text that spans lines is written \"\"\"…\"\"\"",
        ),
        Unterminated::Triple => (
            format!("the `\"\"\"` string starting `{words}` is never closed"),
            "end it with `\"\"\"`",
        ),
        Unterminated::Comment => (
            format!("the comment `/* {words}` is never closed"),
            "end it with `*/`",
        ),
    };
    let mut error = SyntaxError::new(Span::new(start, start + opening), message);
    error.label = Some("opened here".into());
    error.help = Some(help.into());
    Some(error)
}

/// The offset just past the last token (not whitespace, not a comment) before `offset`.
fn previous_token_end(text: &str, offset: usize) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut last = None;
    let mut i = 0;
    while i < offset.min(bytes.len()) {
        match bytes[i] {
            b' ' | b'\t' | b'\r' | b'\n' => i += 1,
            b'/' if text[i..].starts_with("//") => {
                i = text[i..].find('\n').map_or(bytes.len(), |e| i + e);
            }
            b'/' if text[i..].starts_with("/*") => {
                i = text[i + 2..]
                    .find("*/")
                    .map_or(bytes.len(), |e| i + 2 + e + 2);
            }
            b'"' if text[i..].starts_with("\"\"\"") => {
                i = text[i + 3..]
                    .find("\"\"\"")
                    .map_or(bytes.len(), |e| i + 3 + e + 3);
                last = Some(i);
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i = (i + 1).min(bytes.len());
                last = Some(i);
            }
            _ => {
                i += text[i..].chars().next().map_or(1, char::len_utf8);
                last = Some(i);
            }
        }
    }
    last.map(|l| l.min(offset))
}

/// What kind of literal runs off.
#[derive(Debug, Clone, Copy)]
enum Unterminated {
    Plain,
    Triple,
    Comment,
}

/// What [`scan`] reports.
enum Scanned {
    Open(usize),
    Close(usize),
    Unterminated(usize, Unterminated),
}

/// Walks `text` up to `until`, skipping strings and comments, and reports braces and
/// literals that run past their end (a plain string that reaches a newline or the end
/// of the file at or after `until` counts; one that ends before `until` was fine for
/// pest too, or pest would have stopped there).
fn scan(text: &str, until: usize, mut report: impl FnMut(Scanned)) {
    let bytes = text.as_bytes();
    // The token at `until` itself counts: pest stops at the start of a bad string.
    let until = until.min(bytes.len());
    let mut i = 0;
    while i < bytes.len() && i <= until {
        match bytes[i] {
            b'"' if text[i..].starts_with("\"\"\"") => match text[i + 3..].find("\"\"\"") {
                Some(end) => i += 3 + end + 3,
                None => return report(Scanned::Unterminated(i, Unterminated::Triple)),
            },
            b'"' => {
                let start = i;
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                if i >= bytes.len() || bytes[i] == b'\n' {
                    if i >= until {
                        return report(Scanned::Unterminated(start, Unterminated::Plain));
                    }
                    continue;
                }
                i += 1;
            }
            b'/' if text[i..].starts_with("//") => {
                i = text[i..].find('\n').map_or(bytes.len(), |e| i + e);
            }
            b'/' if text[i..].starts_with("/*") => match text[i + 2..].find("*/") {
                Some(end) => i += 2 + end + 2,
                None => return report(Scanned::Unterminated(i, Unterminated::Comment)),
            },
            b'{' => {
                report(Scanned::Open(i));
                i += 1;
            }
            b'}' => {
                report(Scanned::Close(i));
                i += 1;
            }
            _ => i += 1,
        }
    }
}

fn expects_close(expected: &[Expected]) -> bool {
    expected
        .iter()
        .any(|e| matches!(e, Expected::Punctuation(p) if p == "}"))
}

/// A targeted hint for frequent mistakes.
fn help(text: &str, offset: usize, expected: &[Expected]) -> Option<String> {
    let rest = &text[offset..];
    if rest.trim().is_empty() {
        return Some("the file ends too early: is a `}` missing?".into());
    }
    if rest.starts_with('\'') {
        return Some("strings use double quotes: \"…\"".into());
    }
    let after_word = text[..offset]
        .chars()
        .next_back()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    if after_word && rest.starts_with(['-', '.', '/']) {
        // Past the whole character before the name: it may be wider than one byte (a
        // byte-order mark is whitespace to the grammar), and slicing inside it panicked
        // (found by fuzz/fuzz_targets/check.rs).
        let start = text[..offset]
            .char_indices()
            .rev()
            .find(|(_, c)| !(c.is_ascii_alphanumeric() || *c == '_'))
            .map_or(0, |(i, c)| i + c.len_utf8());
        let end = offset
            + rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '/')))
                .unwrap_or(rest.len());
        let whole = &text[start..end];
        return Some(format!(
            "names hold letters, digits and `_`: write `{}`{}",
            whole.replace(['-', '.', '/'], "_"),
            if rest.starts_with('-') {
                ""
            } else {
                ", or quote a path"
            }
        ));
    }
    let keywords: Vec<&str> = expected
        .iter()
        .filter_map(|e| match e {
            Expected::Keyword(k) => Some(k.as_str()),
            _ => None,
        })
        .collect();
    let wants = |what: &str| expected.iter().any(|e| e.text() == what);
    if (rest.starts_with('=') || rest.starts_with(':')) && !wants("`=`") && !wants("`:`") {
        return Some(format!(
            "fields are written without `{}`: `timeout 30m`, `title \"…\"`",
            &rest[..1]
        ));
    }
    if rest.starts_with('}') && expected == [Expected::EndOfFile] {
        return Some("this `}` closes nothing: remove it".into());
    }
    if rest.starts_with('"')
        && wants("a number or duration")
        && !wants("a string")
        && rest[1..].starts_with(|c: char| c.is_ascii_digit())
    {
        return Some("durations and numbers are written without quotes: `timeout 30m`".into());
    }
    let word = word_at(text, offset)?;
    let bool_words = ["yes", "no", "on", "off", "True", "False", "TRUE", "FALSE"];
    if wants("`true` or `false`") && !keywords.contains(&word) && bool_words.contains(&word) {
        return Some("a bool is written `true` or `false`".into());
    }
    if wants("a string") && expected.len() == 1 && !KEYWORDS.contains(&word) {
        let end = offset
            + text[offset..]
                .find(|c: char| c.is_whitespace() || c == '}' || c == ']' || c == ',')
                .unwrap_or(text.len() - offset);
        return Some(format!("quote it: \"{}\"", &text[offset..end]));
    }
    let familiar = FAMILIAR_MISTAKES.iter().find(|(wrong, right, context)| {
        *wrong == word
            && !keywords.contains(right)
            && (context.is_empty() || keywords.contains(context))
    });
    if let Some((_, right, _)) = familiar {
        return Some(format!("did you mean `{right}`?"));
    }
    if keywords.contains(&"runbook") && !keywords.contains(&word) {
        return Some(format!(
            "a file holds one `runbook NAME {{ … }}` (or a `policy {{ … }}`, or a module of imports and agents): put `{word}` inside the runbook"
        ));
    }
    if KEYWORDS.contains(&word) && !keywords.contains(&word) {
        let place = belongs(word).map_or_else(
            || format!("`{word}` cannot appear here"),
            |b| format!("`{word}` {b}"),
        );
        let structural = STRUCTURAL.contains(&word);
        let opens = expected.contains(&Expected::Punctuation("{".into()));
        let close = if opens {
            "; is the `{` that opens the block missing?".to_string()
        } else if structural && expects_close(expected) {
            unclosed_block(text, offset)
                .map(|(_, header)| format!("; is the `}}` that ends {header} missing?"))
                .unwrap_or_default()
        } else {
            String::new()
        };
        return Some(format!("{place}{close}"));
    }
    if !keywords.is_empty() {
        if let Some(close) = closest(word, &keywords) {
            return Some(format!("did you mean `{close}`?"));
        }
        if let Some(close) = closest(word, KEYWORDS) {
            if let Some(b) = belongs(close) {
                return Some(format!(
                    "did you mean `{close}`? It {b}, and cannot appear here"
                ));
            }
        }
    }
    None
}

/// A `{` still open at some point of the text.
#[derive(Debug, Clone)]
struct Opener {
    offset: usize,
    indent: usize,
    header: String,
}

/// The block a missing `}` most likely belongs to, as seen at `offset`: the first block
/// whose closing brace is indented less than its header (the `}` of an outer block was
/// used for it), else the innermost block open at `offset`.
fn unclosed_block(text: &str, offset: usize) -> Option<(Span, String)> {
    let mut stack: Vec<Opener> = Vec::new();
    let mut suspect: Option<Opener> = None;
    scan(text, offset, |event| match event {
        Scanned::Open(i) => stack.push(Opener {
            offset: i,
            indent: indent_of(text, i),
            header: header_before(text, i),
        }),
        Scanned::Close(i) => {
            let line_start = text[..i].rfind('\n').map_or(0, |n| n + 1);
            let first_on_line = text[line_start..i].trim().is_empty();
            if let Some(top) = stack.last() {
                let indent = i - line_start;
                if first_on_line
                    && top.indent > indent
                    && stack.iter().any(|o| o.indent == indent)
                    && suspect.is_none()
                {
                    suspect = Some(top.clone());
                }
            }
            stack.pop();
        }
        Scanned::Unterminated(..) => {}
    });
    let opener = suspect.or_else(|| stack.last().cloned())?;
    Some((Span::new(opener.offset, opener.offset + 1), opener.header))
}

/// Indentation (in bytes) of the line holding `offset`.
fn indent_of(text: &str, offset: usize) -> usize {
    let line_start = text[..offset].rfind('\n').map_or(0, |n| n + 1);
    let line = &text[line_start..];
    line.len() - line.trim_start_matches([' ', '\t']).len()
}

/// `step build` for the `{` of `step build "title" by x {`.
fn header_before(text: &str, offset: usize) -> String {
    let line_start = text[..offset].rfind('\n').map_or(0, |n| n + 1);
    let words: Vec<&str> = text[line_start..offset]
        .split(|c: char| c.is_whitespace())
        .filter(|w| !w.is_empty())
        .collect();
    match words.as_slice() {
        [keyword, name, ..] if KEYWORDS.contains(keyword) && !name.starts_with('"') => {
            format!("`{keyword} {name}`")
        }
        [keyword, ..] if KEYWORDS.contains(keyword) => format!("`{keyword}`"),
        _ => "this block".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unclosed_by_indentation() {
        let text = "runbook r {\n  phase p {\n    step a {\n      sh \"x\"\n  }\n  phase q {";
        let (span, header) = unclosed_block(text, text.len()).unwrap();
        assert_eq!(header, "`step a`");
        assert_eq!(&text[span.range()], "{");
        assert_eq!(span.start as usize, text.find("a {").unwrap() + 2);
    }

    #[test]
    fn unclosed_innermost_at_end() {
        let text = "runbook r {\n  phase p {\n  }\n";
        let (_, header) = unclosed_block(text, text.len()).unwrap();
        assert_eq!(header, "`runbook r`");
    }

    #[test]
    fn braces_in_strings_and_comments_do_not_count() {
        let text = "runbook r { // {\n  title \"{\" /* { */\n";
        let (span, _) = unclosed_block(text, text.len()).unwrap();
        assert_eq!(span.start, 10);
    }

    #[test]
    fn a_comma_before_by_only_when_it_is_there() {
        let by = [
            Expected::Keyword("by".into()),
            Expected::Punctuation("{".into()),
        ];
        let text = "step b after a, by coder {";
        let at = text.find("coder").unwrap();
        let error = comma_before_by(text, at, &by).unwrap();
        assert_eq!(&text[error.span.range()], ",");
        // No comma, a longer word ending in `by`, a multi-byte character before `by`.
        for text in [
            "after a by coder {",
            "after a, nearby coder {",
            "after a, éby coder {",
        ] {
            let at = text.find("coder").unwrap();
            assert!(comma_before_by(text, at, &by).is_none(), "{text}");
        }
        let text = "after é coder {";
        assert!(comma_before_by(text, text.find("coder").unwrap(), &by).is_none());
    }

    #[test]
    fn typo_distance() {
        assert_eq!(closest("stpe", &["step", "phase"]), Some("step"));
        assert_eq!(closest("xyz", &["step", "phase"]), None);
        assert_eq!(closest("step", &["step"]), None);
        // Ties go to the first name in order, whatever the candidates' order.
        assert_eq!(closest("s0", &["s2", "c0"]), Some("c0"));
        assert_eq!(closest("s0", &["c0", "s2"]), Some("c0"));
    }
}
