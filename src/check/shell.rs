//! The programs a shell command line runs, as far as `exec` can judge them statically:
//! the first word of each simple command, including those inside `$(…)`, backticks and
//! `<(…)`. Heredoc bodies, `case` patterns, `for` lists, arithmetic, redirections and
//! assignments are skipped; functions defined in the script count as builtins. Template
//! syntax is rendered before the shell sees the line: a `{{ … }}` makes its word
//! unknowable (not checked), and `{% … %}` tags are transparent.

use std::collections::HashSet;

/// Builtins that start no program and so need no `exec` entry.
pub const BUILTINS: &[&str] = &[
    "cd",
    "echo",
    "printf",
    "test",
    "[",
    "[[",
    "true",
    "false",
    "exit",
    "set",
    "export",
    ":",
    "read",
    "local",
    "shift",
    "unset",
    "return",
    "wait",
    "pwd",
    "break",
    "continue",
    "umask",
    "source",
    ".",
    "eval",
    "trap",
    "type",
    "alias",
    "unalias",
    "getopts",
    "let",
    "declare",
    "typeset",
    "readonly",
    "shopt",
    "hash",
    "ulimit",
    "times",
    "jobs",
    "fg",
    "bg",
    "kill",
    "command",
    "builtin",
    "pushd",
    "popd",
    "dirs",
    "history",
    "mapfile",
    "readarray",
];

/// Reserved words: they introduce or end compound commands, and the word after them
/// (if any) is again a command.
const KEYWORDS: &[&str] = &[
    "if", "then", "else", "elif", "fi", "do", "done", "while", "until", "!", "{", "}", "time",
    "esac",
];

/// A program named in a command line, with its byte range in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramUse {
    /// The word as written (quotes removed).
    pub word: String,
    /// Where it is.
    pub range: std::ops::Range<usize>,
}

/// The programs `script` runs.
pub fn programs(script: &str) -> Vec<ProgramUse> {
    let mut scanner = Scanner {
        text: script,
        bytes: script.as_bytes(),
        out: Vec::new(),
        functions: HashSet::new(),
    };
    scanner.script(0, script.len());
    let Scanner { out, functions, .. } = scanner;
    out.into_iter()
        .filter(|p| !functions.contains(&p.word))
        .collect()
}

/// Where a `case` command is: reading its word, its patterns, or an arm's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Case {
    Header,
    Pattern,
    Body,
}

/// What the next word is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A command name (after a separator or a reserved word).
    Command,
    /// An argument of the current command.
    Argument,
    /// The words of a `for`/`select` header, up to the next separator.
    Skip,
}

/// One word of the script.
struct Word {
    /// The text with quotes removed.
    text: String,
    /// Whether an expansion or template makes its value unknowable.
    dynamic: bool,
    /// Whether any part of it was quoted (a quoted word is never a reserved word).
    quoted: bool,
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    out: Vec<ProgramUse>,
    functions: HashSet<String>,
}

impl Scanner<'_> {
    /// Scans the commands in `start..end`.
    fn script(&mut self, start: usize, end: usize) {
        let mut i = start;
        let mut expect = Expect::Command;
        let mut cases: Vec<Case> = Vec::new();
        let mut heredocs: Vec<(String, bool)> = Vec::new();
        // The `expect` in force at each open `{% if %}`/`{% for %}`, so that each branch
        // of a template conditional starts where the conditional started.
        let mut tags: Vec<Expect> = Vec::new();
        while i < end {
            let c = self.bytes[i];
            if let Some(close) = self.template_end(i, end) {
                if self.bytes[i + 1] == b'{' {
                    // `{{ … }}` standing alone is a word whose value is unknown.
                    let word_end = self.word_end(close, end);
                    if expect == Expect::Command && matches!(cases.last(), None | Some(Case::Body))
                    {
                        expect = Expect::Argument;
                    }
                    i = word_end;
                } else {
                    let inner = self.text.get(i + 2..close.saturating_sub(2)).unwrap_or("");
                    self.tag(inner, &mut tags, &mut expect);
                    i = close;
                }
                continue;
            }
            match c {
                b' ' | b'\t' | b'\r' => i += 1,
                b'\\' if self.peek(i + 1, end) == Some(b'\n') => i += 2,
                b'#' => i = self.line_end(i, end),
                b'\n' => {
                    i += 1;
                    for (delimiter, strip_tabs) in heredocs.drain(..) {
                        i = self.heredoc_end(i, end, &delimiter, strip_tabs);
                    }
                    expect = self.after_separator(&mut cases);
                }
                b';' => {
                    let double = self.peek(i + 1, end) == Some(b';');
                    i += if double { 2 } else { 1 };
                    if self.peek(i, end) == Some(b'&') {
                        i += 1;
                    }
                    if double {
                        if let Some(top) = cases.last_mut() {
                            *top = Case::Pattern;
                        }
                    }
                    expect = self.after_separator(&mut cases);
                }
                b'|' | b'&' => {
                    if let Some(after) = self.redirection(i, end, &mut heredocs) {
                        i = after;
                        continue;
                    }
                    i += 1;
                    if matches!(self.peek(i, end), Some(b'|' | b'&')) {
                        i += 1;
                    }
                    if cases.last() != Some(&Case::Pattern) {
                        expect = Expect::Command;
                    }
                }
                b'(' if self.peek(i + 1, end) == Some(b'(') => {
                    // `(( arithmetic ))`.
                    i = self.close_paren(i + 1, end).map_or(end, |c| c + 1);
                    i = self.skip_past(i, end, b')');
                    expect = Expect::Argument;
                }
                b'(' => {
                    i += 1;
                    if cases.last() != Some(&Case::Pattern) {
                        expect = Expect::Command;
                    }
                }
                b')' => {
                    i += 1;
                    if let Some(top) = cases.last_mut() {
                        if *top == Case::Pattern {
                            *top = Case::Body;
                            expect = Expect::Command;
                            continue;
                        }
                    }
                    expect = Expect::Argument;
                }
                b'<' | b'>' => {
                    i = self.redirection(i, end, &mut heredocs).unwrap_or(i + 1);
                }
                b'0'..=b'9' if self.starts_redirection(i, end) => {
                    i = self.redirection(i, end, &mut heredocs).unwrap_or(i + 1);
                }
                _ => {
                    let start = i;
                    let (word, word_end) = self.word(i, end);
                    i = word_end;
                    self.classify(word, start..word_end, end, &mut i, &mut expect, &mut cases);
                }
            }
        }
    }

    /// Decides what a word is, given what was expected, and updates the state.
    fn classify(
        &mut self,
        word: Word,
        range: std::ops::Range<usize>,
        end: usize,
        i: &mut usize,
        expect: &mut Expect,
        cases: &mut Vec<Case>,
    ) {
        match cases.last() {
            Some(Case::Header) => {
                if word.text == "in" && !word.quoted {
                    *cases.last_mut().expect("checked") = Case::Pattern;
                }
                return;
            }
            Some(Case::Pattern) => {
                if word.text == "esac" && !word.quoted {
                    cases.pop();
                    *expect = Expect::Argument;
                }
                return;
            }
            _ => {}
        }
        if *expect != Expect::Command {
            return;
        }
        let reserved = !word.quoted && !word.dynamic;
        if reserved && KEYWORDS.contains(&word.text.as_str()) {
            if word.text == "esac" {
                cases.pop();
            }
            return;
        }
        if reserved && matches!(word.text.as_str(), "for" | "select") {
            *expect = Expect::Skip;
            return;
        }
        if reserved && word.text == "case" {
            cases.push(Case::Header);
            *expect = Expect::Argument;
            return;
        }
        if reserved && word.text == "function" {
            let (name, after) = self.word(self.skip_blanks(*i, end), end);
            self.functions.insert(name.text);
            *i = after;
            // An optional `()`, then the body.
            let open = self.skip_blanks(*i, end);
            if self.text[open..end].starts_with("()") {
                *i = open + 2;
            }
            *expect = Expect::Command;
            return;
        }
        if reserved && word.text == "[[" {
            // `[[ … ]]` holds operators such as `&&` that are not separators.
            *i = self.text[*i..end].find("]]").map_or(end, |at| *i + at + 2);
            *expect = Expect::Argument;
            return;
        }
        if is_assignment(&self.text[range.clone()]) {
            return; // `FOO=bar cmd` runs cmd
        }
        // `name() { … }` defines a function: later uses of `name` run no program.
        let after = self.skip_blanks(*i, end);
        if self.text[after..end].starts_with('(') {
            let inside = self.skip_blanks(after + 1, end);
            if self.text[inside..end].starts_with(')') {
                self.functions.insert(word.text);
                *i = inside + 1;
                *expect = Expect::Command;
                return;
            }
        }
        *expect = Expect::Argument;
        if word.dynamic || word.text.is_empty() {
            return;
        }
        if word.text == "exec" {
            // `exec PROGRAM` replaces the shell with PROGRAM.
            *expect = Expect::Command;
            return;
        }
        if word.text == "command" {
            let (next, _) = self.word(self.skip_blanks(*i, end), end);
            if !next.text.starts_with('-') {
                *expect = Expect::Command;
            }
            return;
        }
        self.out.push(ProgramUse {
            word: word.text,
            range,
        });
    }

    /// What follows a `;`, `;;` or newline: a command, unless inside a `case` header
    /// or its patterns.
    fn after_separator(&self, cases: &mut [Case]) -> Expect {
        match cases.last() {
            Some(Case::Header | Case::Pattern) => Expect::Argument,
            _ => Expect::Command,
        }
    }

    /// The byte at `i` if it is inside the range being scanned.
    fn peek(&self, i: usize, end: usize) -> Option<u8> {
        (i < end).then(|| self.bytes[i])
    }

    /// Whether digits at `i` are a file descriptor before a redirection (`2>`).
    fn starts_redirection(&self, i: usize, end: usize) -> bool {
        let mut j = i;
        while j < end && self.bytes[j].is_ascii_digit() {
            j += 1;
        }
        matches!(self.peek(j, end), Some(b'<' | b'>'))
    }

    /// Updates the state for a `{% … %}` tag.
    fn tag(&self, inner: &str, tags: &mut Vec<Expect>, expect: &mut Expect) {
        let keyword = inner
            .trim_matches(|c: char| c == '-' || c == '+' || c.is_whitespace())
            .split_whitespace()
            .next()
            .unwrap_or_default();
        match keyword {
            "if" | "for" => tags.push(*expect),
            "elif" | "else" => {
                if let Some(saved) = tags.last() {
                    *expect = *saved;
                }
            }
            "endif" | "endfor" => {
                tags.pop();
            }
            _ => {}
        }
    }

    /// If a template tag starts at `i`, the offset just past its end.
    fn template_end(&self, i: usize, end: usize) -> Option<usize> {
        if self.bytes[i] != b'{' {
            return None;
        }
        let close = match self.peek(i + 1, end) {
            Some(b'{') => "}}",
            Some(b'%') => "%}",
            Some(b'#') => "#}",
            _ => return None,
        };
        Some(
            self.text[i + 2..end]
                .find(close)
                .map_or(end, |at| i + 2 + at + 2),
        )
    }

    /// The end of the word that continues at `i` (after a template).
    fn word_end(&mut self, i: usize, end: usize) -> usize {
        if i >= end || is_break(self.bytes[i]) {
            return i;
        }
        self.word(i, end).1
    }

    /// Reads one word starting at `i`; returns it and the offset just past it.
    fn word(&mut self, mut i: usize, end: usize) -> (Word, usize) {
        let mut word = Word {
            text: String::new(),
            dynamic: false,
            quoted: false,
        };
        let mut raw: Vec<u8> = Vec::new();
        while i < end {
            if let Some(close) = self.template_end(i, end) {
                if self.bytes[i + 1] != b'{' {
                    break; // a `{% tag %}` ends the word; the caller reads it
                }
                word.dynamic = true;
                i = close;
                continue;
            }
            let c = self.bytes[i];
            match c {
                b'\'' => {
                    word.quoted = true;
                    let close = self.text[i + 1..end]
                        .find('\'')
                        .map_or(end, |at| i + 1 + at);
                    raw.extend_from_slice(&self.bytes[i + 1..close]);
                    i = (close + 1).min(end);
                }
                b'"' => {
                    word.quoted = true;
                    i += 1;
                    while i < end && self.bytes[i] != b'"' {
                        if let Some(close) = self.template_end(i, end) {
                            word.dynamic |= self.bytes[i + 1] == b'{';
                            i = close;
                            continue;
                        }
                        match self.bytes[i] {
                            b'\\' if i + 1 < end => {
                                raw.push(self.bytes[i + 1]);
                                i += 2;
                            }
                            b'$' | b'`' => {
                                word.dynamic = true;
                                i = self.expansion(i, end);
                            }
                            other => {
                                raw.push(other);
                                i += 1;
                            }
                        }
                    }
                    i = (i + 1).min(end);
                }
                b'\\' => {
                    if i + 1 < end {
                        raw.push(self.bytes[i + 1]);
                    }
                    i = (i + 2).min(end);
                }
                b'$' | b'`' => {
                    word.dynamic = true;
                    i = self.expansion(i, end);
                }
                b'<' | b'>' if self.peek(i + 1, end) == Some(b'(') => {
                    // Process substitution `<(cmd)`.
                    word.dynamic = true;
                    let close = self.close_paren(i + 1, end).unwrap_or(end);
                    self.script(i + 2, close);
                    i = (close + 1).min(end);
                }
                c if is_break(c) => break,
                other => {
                    raw.push(other);
                    i += 1;
                }
            }
        }
        word.text = String::from_utf8_lossy(&raw).into_owned();
        (word, i)
    }

    /// Skips an expansion starting at `i` (`$x`, `${…}`, `$(…)`, `$((…))`, `` `…` ``),
    /// scanning command substitutions for the programs they run.
    fn expansion(&mut self, i: usize, end: usize) -> usize {
        if self.bytes[i] == b'`' {
            let mut j = i + 1;
            while j < end && self.bytes[j] != b'`' {
                j += if self.bytes[j] == b'\\' { 2 } else { 1 };
            }
            let close = j.min(end);
            self.script(i + 1, close);
            return (close + 1).min(end);
        }
        match self.peek(i + 1, end).as_ref() {
            Some(b'(') if self.peek(i + 2, end) == Some(b'(') => {
                let close = self.close_paren(i + 1, end).unwrap_or(end);
                (close + 1).min(end)
            }
            Some(b'(') => {
                let close = self.close_paren(i + 1, end).unwrap_or(end);
                self.script(i + 2, close);
                (close + 1).min(end)
            }
            Some(b'{') => self.text[i + 2..end]
                .find('}')
                .map_or(end, |at| i + 2 + at + 1),
            Some(c) if c.is_ascii_alphanumeric() || *c == b'_' => {
                let mut j = i + 1;
                while j < end && (self.bytes[j].is_ascii_alphanumeric() || self.bytes[j] == b'_') {
                    j += 1;
                }
                j
            }
            Some(b'?' | b'#' | b'@' | b'*' | b'$' | b'!' | b'-') => (i + 2).min(end),
            _ => i + 1,
        }
    }

    /// The offset of the `)` matching the `(` at `open`, skipping quotes and nesting.
    fn close_paren(&self, open: usize, end: usize) -> Option<usize> {
        let mut depth = 0usize;
        let mut i = open;
        while i < end {
            match self.bytes[i] {
                b'(' => depth += 1,
                b')' => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                b'\\' => i += 1,
                b'\'' => {
                    i = self.text[i + 1..end]
                        .find('\'')
                        .map_or(end, |at| i + 1 + at);
                }
                b'"' => {
                    i += 1;
                    while i < end && self.bytes[i] != b'"' {
                        i += if self.bytes[i] == b'\\' { 2 } else { 1 };
                    }
                }
                _ => {}
            }
            i += 1;
        }
        None
    }

    /// If a redirection starts at `i` (`>`, `2>&1`, `<<EOF`, `&>file`…), skips it and its
    /// target, recording heredoc delimiters; returns the offset after it.
    fn redirection(
        &mut self,
        i: usize,
        end: usize,
        heredocs: &mut Vec<(String, bool)>,
    ) -> Option<usize> {
        let mut j = i;
        while j < end && self.bytes[j].is_ascii_digit() {
            j += 1;
        }
        let rest = &self.text[j..end];
        let operator = [
            "<<<", "<<-", "<<", "<>", "<&", ">>", ">&", ">|", "&>>", "&>", "<", ">",
        ]
        .into_iter()
        .find(|op| rest.starts_with(op))?;
        if j > i && operator.starts_with('&') {
            return None;
        }
        if operator.starts_with(['<', '>']) && rest[operator.len()..].starts_with('(') {
            return None; // process substitution, read as a word
        }
        let target = self.skip_blanks(j + operator.len(), end);
        let (word, after) = self.word(target, end);
        if operator == "<<" || operator == "<<-" {
            heredocs.push((word.text, operator == "<<-"));
        }
        Some(after)
    }

    /// Skips a heredoc body starting at `i`, up to and including its delimiter line.
    fn heredoc_end(&self, mut i: usize, end: usize, delimiter: &str, strip_tabs: bool) -> usize {
        while i < end {
            let line_end = self.text[i..end].find('\n').map_or(end, |at| i + at);
            let line = &self.text[i..line_end];
            let line = if strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            // Lenient about indentation: triple-quoted strings are dedented, but a body
            // may still sit deeper than its delimiter.
            let done = line.trim() == delimiter;
            i = (line_end + 1).min(end);
            if done {
                break;
            }
        }
        i
    }

    fn skip_blanks(&self, mut i: usize, end: usize) -> usize {
        while i < end && matches!(self.bytes[i], b' ' | b'\t') {
            i += 1;
        }
        i
    }

    fn skip_past(&self, i: usize, end: usize, byte: u8) -> usize {
        if i < end && self.bytes[i] == byte {
            i + 1
        } else {
            i
        }
    }

    fn line_end(&self, i: usize, end: usize) -> usize {
        self.text[i..end].find('\n').map_or(end, |at| i + at)
    }
}

/// Bytes that end an unquoted word.
fn is_break(c: u8) -> bool {
    matches!(
        c,
        b' ' | b'\t' | b'\r' | b'\n' | b';' | b'|' | b'&' | b'(' | b')' | b'<' | b'>'
    )
}

fn is_assignment(word: &str) -> bool {
    match word.find('=') {
        Some(eq) if eq > 0 => {
            let name = word[..eq].trim_end_matches('+');
            !name.is_empty()
                && !name.starts_with(|c: char| c.is_ascii_digit())
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        }
        _ => false,
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
        assert_eq!(names("if test -f x; then make; fi"), ["test", "make"]);
        assert_eq!(names("for f in a b; do rm $f; done"), ["rm"]);
        assert_eq!(names("./scripts/x.sh --flag"), ["./scripts/x.sh"]);
        assert_eq!(names("'quoted prog' arg"), ["quoted prog"]);
        assert_eq!(names("! grep -q x file"), ["grep"]);
        assert_eq!(names("while read l; do wc -l; done < f"), ["read", "wc"]);
    }

    #[test]
    fn substitutions() {
        assert_eq!(names("echo $(git rev-parse HEAD)"), ["echo", "git"]);
        assert_eq!(names("echo $(date) after"), ["echo", "date"]);
        assert_eq!(
            names("echo \"$(uname -a)\" `whoami`"),
            ["echo", "uname", "whoami"]
        );
        assert_eq!(names("V=$(cargo metadata) make"), ["cargo", "make"]);
        assert_eq!(names("diff <(sort a) <(sort b)"), ["diff", "sort", "sort"]);
        assert_eq!(names("echo $((1 + 2)) ${HOME}"), ["echo"]);
        assert_eq!(names("(cd sub && make) | tee log"), ["cd", "make", "tee"]);
    }

    #[test]
    fn templates() {
        assert_eq!(names("git tag v{{ params.version }}"), ["git"]);
        assert_eq!(names("{{ params.tool }} run"), Vec::<String>::new());
        assert_eq!(
            names("echo {{ xs | join(\"; \") }} done"),
            ["echo"],
            "a separator inside a template is not the shell's"
        );
        assert_eq!(
            names("{% if x %}git push{% else %}npm publish{% endif %} --flag"),
            ["git", "npm"]
        );
        assert_eq!(names("cp \"{{ run.dir }}/a\" b"), ["cp"]);
    }

    #[test]
    fn redirections() {
        assert_eq!(names(">&2 echo oops"), ["echo"]);
        assert_eq!(names("cargo test 2>&1 | tee out"), ["cargo", "tee"]);
        assert_eq!(names("2>/dev/null rm x"), ["rm"]);
        assert_eq!(names("cmd &> log; other"), ["cmd", "other"]);
        assert_eq!(names("sort < in > out"), ["sort"]);
    }

    #[test]
    fn heredocs() {
        let script = "cat > notes.txt <<EOF\nhello world\n$(not run)\nEOF\ncargo build";
        assert_eq!(names(script), ["cat", "cargo"]);
        let script = "cat <<'END' | tee x\n  rm -rf /\n  END\nmake";
        assert_eq!(names(script), ["cat", "tee", "make"]);
        assert_eq!(names("cat <<< \"text\"; ls"), ["cat", "ls"]);
    }

    #[test]
    fn case_patterns() {
        let script = "case \"$x\" in\n  a|b) cargo build ;;\n  (*) make ;;\nesac\nrg x";
        assert_eq!(names(script), ["cargo", "make", "rg"]);
        assert_eq!(names("case $1 in start) run;; esac"), ["run"]);
    }

    #[test]
    fn functions_and_prefixes() {
        assert_eq!(names("build() { cargo build; }\nbuild"), ["cargo"]);
        assert_eq!(
            names("function deploy { kubectl apply; }; deploy"),
            ["kubectl"]
        );
        assert_eq!(names("exec cargo run"), ["cargo"]);
        assert_eq!(names("command -v cargo"), Vec::<String>::new());
        assert_eq!(names("command cargo x"), ["cargo"]);
        assert_eq!(names("[[ -f a && -f b ]] && ls"), ["ls"]);
        assert_eq!(names("(( i++ )); ls"), ["ls"]);
        assert_eq!(names("# a comment\nls # trailing"), ["ls"]);
        assert_eq!(names("cargo \\\n  test"), ["cargo"]);
    }

    proptest::proptest! {
        #[test]
        fn never_panics_on_shell_soups(
            picks in proptest::collection::vec(0..SHELL_TOKENS.len(), 0..40)
        ) {
            let script: String = picks.iter().map(|i| SHELL_TOKENS[*i]).collect();
            for p in programs(&script) {
                proptest::prop_assert!(script.get(p.range.clone()).is_some());
            }
        }

        #[test]
        fn never_panics_on_any_text(script in "\\PC{0,80}") {
            let _ = programs(&script);
        }
    }

    const SHELL_TOKENS: &[&str] = &[
        "cargo", " ", "\n", ";", ";;", "|", "||", "&", "&&", "(", ")", "((", "))", "$(", "`", "'",
        "\"", "\\", "<<", "<<-", "EOF", "<", ">", ">&", "2", "=", "X", "case", "in", "esac", "for",
        "do", "done", "if", "then", "fi", "{", "}", "{{", "}}", "{%", "%}", "{#", "#}", "#", "[[",
        "]]", "function", "f", "exec", "command", "-v", "$", "${", "é",
    ];

    #[test]
    fn never_panics_on_fragments() {
        for s in [
            "$(",
            "`",
            "\"",
            "'",
            "<<",
            "case",
            "case x in",
            "{{",
            "{%",
            "$((",
            "a=(",
            "((",
            "f(",
            "f()",
            "function",
            "[[",
            "${",
            "<(",
            "2>",
            "&",
            ";;",
            ")",
            "é$(ü",
            "\\",
        ] {
            let _ = programs(s);
        }
    }
}
