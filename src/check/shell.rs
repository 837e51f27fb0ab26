//! The programs a shell command line runs, as far as `exec` can judge them statically:
//! the first word of each simple command, inside `$(…)` and backticks too.

/// Builtins that start no program and so need no `exec` entry.
pub const BUILTINS: &[&str] = &[
    "cd", "echo", "printf", "test", "[", "[[", "true", "false", "exit", "set", "export", ":",
    "read", "local", "shift", "unset", "return", "wait", "pwd", "break", "continue", "umask",
];

const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time", "in",
];

/// A program named in a command line, with its byte range in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramUse {
    /// The word as written.
    pub word: String,
    /// Where it is.
    pub range: std::ops::Range<usize>,
}

/// The programs `script` runs (template syntax is skipped: it is rendered at run time).
pub fn programs(script: &str) -> Vec<ProgramUse> {
    let bytes = script.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut at_command_start = true;
    let mut skip_rest = false; // inside `for x in …` or `case … in`
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'\n' | b';' | b'|' | b'&' | b'(' | b')' | b'`' => {
                at_command_start = true;
                skip_rest = false;
                i += 1;
            }
            b' ' | b'\t' | b'\r' => i += 1,
            b'#' if at_command_start => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
            }
            b'$' if bytes.get(i + 1) == Some(&b'(') => {
                at_command_start = true;
                skip_rest = false;
                i += 2;
            }
            b'{' if bytes.get(i + 1) == Some(&b'{') || bytes.get(i + 1) == Some(&b'%') => {
                // A template expression: skip to its end; it is not a program name.
                let close = if bytes[i + 1] == b'{' { "}}" } else { "%}" };
                match script[i + 2..].find(close) {
                    Some(end) => i = i + 2 + end + 2,
                    None => i = bytes.len(),
                }
                at_command_start = false;
            }
            _ => {
                let start = i;
                let word = read_word(script, &mut i);
                if !at_command_start || skip_rest {
                    continue;
                }
                if is_assignment(&word) {
                    continue; // `FOO=bar cmd` runs cmd
                }
                if KEYWORDS.contains(&word.as_str()) {
                    continue;
                }
                if matches!(word.as_str(), "for" | "case" | "select") {
                    skip_rest = true;
                    at_command_start = false;
                    continue;
                }
                at_command_start = false;
                if word.is_empty() || word.contains("{{") || word.starts_with('$') {
                    continue;
                }
                out.push(ProgramUse {
                    word,
                    range: start..i,
                });
            }
        }
    }
    out
}

fn is_assignment(word: &str) -> bool {
    match word.find('=') {
        Some(eq) if eq > 0 => word[..eq]
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_'),
        _ => false,
    }
}

/// Reads one shell word (quotes removed) starting at `*i`.
fn read_word(script: &str, i: &mut usize) -> String {
    let bytes = script.as_bytes();
    let mut word = String::new();
    while *i < bytes.len() {
        let c = bytes[*i];
        match c {
            b' ' | b'\t' | b'\r' | b'\n' | b';' | b'|' | b'&' | b'(' | b')' | b'`' => break,
            b'\'' | b'"' => {
                let quote = c;
                *i += 1;
                while *i < bytes.len() && bytes[*i] != quote {
                    if quote == b'"' && bytes[*i] == b'\\' {
                        *i += 1;
                    }
                    if *i < bytes.len() {
                        let ch_len = utf8_len(bytes[*i]);
                        word.push_str(&script[*i..(*i + ch_len).min(bytes.len())]);
                        *i += ch_len;
                    }
                }
                *i += 1;
            }
            b'\\' => {
                *i += 1;
                if *i < bytes.len() {
                    let ch_len = utf8_len(bytes[*i]);
                    word.push_str(&script[*i..(*i + ch_len).min(bytes.len())]);
                    *i += ch_len;
                }
            }
            _ => {
                let ch_len = utf8_len(c);
                word.push_str(&script[*i..(*i + ch_len).min(bytes.len())]);
                *i += ch_len;
            }
        }
    }
    *i = (*i).min(bytes.len());
    word
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Whether `program` is allowed by an `exec` list (full word or its basename).
pub fn allowed(program: &str, exec: &[crate::ir::pattern::Pattern]) -> bool {
    if BUILTINS.contains(&program) {
        return true;
    }
    let base = program.rsplit('/').next().unwrap_or(program);
    exec.iter().any(|p| p.matches(program) || p.matches(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(s: &str) -> Vec<String> {
        programs(s).into_iter().map(|p| p.word).collect()
    }

    #[test]
    fn simple_commands() {
        assert_eq!(names("cargo test --workspace"), ["cargo"]);
        assert_eq!(
            names("cargo fmt && cargo clippy | tee x; rg foo"),
            ["cargo", "cargo", "tee", "rg"]
        );
        assert_eq!(names("RUST_LOG=debug cargo test"), ["cargo"]);
        assert_eq!(names("echo $(git rev-parse HEAD)"), ["echo", "git"]);
        assert_eq!(names("if test -f x; then make; fi"), ["test", "make"]);
        assert_eq!(names("for f in a b; do rm $f; done"), ["rm"]);
        assert_eq!(names("./scripts/x.sh --flag"), ["./scripts/x.sh"]);
        assert_eq!(names("git tag v{{ params.version }}"), ["git"]);
        assert_eq!(names("{{ params.tool }} run"), Vec::<String>::new());
        assert_eq!(names("'quoted prog' arg"), ["quoted prog"]);
    }
}
