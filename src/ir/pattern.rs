//! Permission patterns: path globs (`read`, `write`, `produces`) and name patterns
//! (`exec`, `mcp`), compiled once, and the subset test that `uses` and the policy need.

use crate::syntax::source::Location;
use globset::{Glob, GlobBuilder, GlobMatcher};

/// One compiled pattern.
#[derive(Debug, Clone)]
pub struct Pattern {
    /// As written.
    pub text: String,
    /// Where it is written (the builtin ones point at their agent).
    pub location: Location,
    kind: PatternKind,
    matcher: GlobMatcher,
}

/// What a pattern matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PatternKind {
    /// Repository paths: `*` stays inside one directory, `**` crosses them.
    Path,
    /// Program or server names: `*` matches anything.
    Name,
}

impl Pattern {
    /// Compiles `text`.
    pub fn new(text: &str, kind: PatternKind, location: Location) -> Result<Pattern, String> {
        let normalized = normalize(text, kind);
        let glob = match kind {
            PatternKind::Path => GlobBuilder::new(&normalized)
                .literal_separator(true)
                .backslash_escape(true)
                .build(),
            PatternKind::Name => Glob::new(&normalized),
        }
        .map_err(|e| e.kind().to_string())?;
        Ok(Pattern {
            text: text.to_string(),
            location,
            kind,
            matcher: glob.compile_matcher(),
        })
    }

    /// Whether `candidate` matches.
    pub fn matches(&self, candidate: &str) -> bool {
        self.matcher.is_match(candidate.trim_start_matches("./"))
    }

    /// Whether everything `other` matches is also matched by `self`. Sound (never `true`
    /// wrongly: a wrong `true` would let `uses` or an agent widen a parent's or the
    /// policy's permissions) and complete enough for the usual globs; `false` for
    /// character classes and escapes unless the texts are equal or `other` is literal.
    pub fn covers(&self, other: &Pattern) -> bool {
        let mine = normalize(&self.text, self.kind);
        let theirs = normalize(&other.text, other.kind);
        if mine == theirs || mine == "**" || self.kind == PatternKind::Name && mine == "*" {
            return true;
        }
        // A literal matches one string: ask the matcher. (`normalize` already removed
        // the `./` that `matches` would.)
        if !theirs.contains(['*', '?', '[', ']', '{', '}', '\\']) {
            return self.matcher.is_match(&theirs);
        }
        let (Some(mine), Some(theirs)) = (alternatives(&mine), alternatives(&theirs)) else {
            return false;
        };
        theirs
            .iter()
            .all(|o| mine.iter().any(|m| glob_covers(m, o, self.kind)))
    }
}

// This used to treat the other pattern's wildcards as literal characters and ask the
// matcher, which is unsound: `*` covered `**`, `?` covered `*`, `src/**x/*` covered
// `src/x/**` (fuzz/fuzz_targets/pattern.rs found these). What follows models globset's
// own reading of a glob (globset/src/glob.rs, `parse_star` and `tokens_to_regex`),
// byte by byte as its `(?-u)` regexes match, and gives up (`None`, `false`) on anything
// it does not model.

/// `{a,b}` alternations expanded (at most 64 results), or `None` for nested or
/// unbalanced braces and for `**` inside braces, which globset reads differently.
fn alternatives(glob: &str) -> Option<Vec<String>> {
    let Some(open) = glob.find('{') else {
        return (!glob.contains('}')).then(|| vec![glob.to_string()]);
    };
    if glob[..open].contains('}') {
        return None;
    }
    let close = open + glob[open..].find('}')?;
    let inner = &glob[open + 1..close];
    if inner.contains('{') || inner.contains("**") {
        return None;
    }
    let rest = alternatives(&glob[close + 1..])?;
    // globset drops empty choices (`{a,}` is `a`, its `empty_alternates` is off), and
    // a group of nothing else matches the empty string.
    let mut choices: Vec<&str> = inner.split(',').filter(|c| !c.is_empty()).collect();
    if choices.is_empty() {
        choices.push("");
    }
    let mut out = Vec::new();
    for choice in choices {
        for tail in &rest {
            out.push(format!("{}{choice}{tail}", &glob[..open]));
        }
    }
    (out.len() <= 64).then_some(out)
}

/// A piece of a path glob between slashes.
#[derive(Debug, PartialEq)]
enum Component<'a> {
    /// A whole `**` component: any number of components (at least one at the end,
    /// where globset's regex is `/.*`).
    Recursive,
    /// Anything else: `*` and `?` stay inside the component.
    Glob(&'a [u8]),
}

/// Whether the brace-free glob `mine` matches every string `theirs` matches.
fn glob_covers(mine: &str, theirs: &str, kind: PatternKind) -> bool {
    if mine.contains(['[', ']', '\\']) || theirs.contains(['[', ']', '\\']) {
        return false;
    }
    if kind == PatternKind::Name {
        // `*` matches `/` in a name; `**` is only modelled in paths.
        return !mine.contains("**")
            && !theirs.contains("**")
            && bytes_cover(mine.as_bytes(), theirs.as_bytes());
    }
    let (Some(mine), Some(theirs)) = (components(mine), components(theirs)) else {
        return false;
    };
    let (m, t) = (mine.len(), theirs.len());
    // covered[i][j]: mine[i..] covers theirs[j..]; filled from the ends.
    let mut covered = vec![vec![false; t + 1]; m + 1];
    covered[m][t] = true;
    for i in (0..m).rev() {
        for j in (0..=t).rev() {
            covered[i][j] = match mine[i] {
                // At the end: one or more components of any kind, so `theirs[j..]`
                // must never be empty: it holds a glob or a final `**`.
                Component::Recursive if i + 1 == m => {
                    (j..t).any(|k| matches!(theirs[k], Component::Glob(_)) || k + 1 == t && t > 1)
                }
                // Elsewhere zero or more: skip it, or let it swallow their next one.
                Component::Recursive => covered[i + 1][j] || j < t && covered[i][j + 1],
                Component::Glob(g) => {
                    j < t
                        && matches!(theirs[j], Component::Glob(o) if bytes_cover(g, o))
                        && covered[i + 1][j + 1]
                }
            };
        }
    }
    covered[0][0]
}

/// The components of a path glob, `**` inside a component read as `*` (globset
/// makes it two `*`); `None` for two `**` in a row, which globset merges its own way,
/// and for a lone `**` (the caller handles it: it matches everything).
fn components(glob: &str) -> Option<Vec<Component<'_>>> {
    let parts: Vec<&str> = glob.split('/').collect();
    if parts.len() == 1 && parts[0] == "**" || parts.windows(2).any(|w| w == ["**", "**"]) {
        return None;
    }
    Some(
        parts
            .into_iter()
            .map(|p| match p {
                "**" => Component::Recursive,
                p => Component::Glob(p.as_bytes()),
            })
            .collect(),
    )
}

/// Whether the glob bytes `mine` (only `*`, `?` and literal bytes) match every string
/// `theirs` does: each of their bytes is met by the same literal, by `?` (one byte)
/// when theirs is a literal or `?`, or swallowed by `*`. In a path both stay inside one
/// component, so `/` never appears; in a name they match it like any byte.
fn bytes_cover(mine: &[u8], theirs: &[u8]) -> bool {
    let (m, t) = (mine.len(), theirs.len());
    let mut covered = vec![vec![false; t + 1]; m + 1];
    covered[m][t] = true;
    for i in (0..m).rev() {
        for j in (0..=t).rev() {
            covered[i][j] = match mine[i] {
                b'*' => covered[i + 1][j] || j < t && covered[i][j + 1],
                b'?' => j < t && theirs[j] != b'*' && covered[i + 1][j + 1],
                c => j < t && theirs[j] == c && covered[i + 1][j + 1],
            };
        }
    }
    covered[0][0]
}

// A directory pattern `src/` or `src` means what users mean: everything under it.
fn normalize(text: &str, kind: PatternKind) -> String {
    let text = text.trim_start_matches("./");
    if kind == PatternKind::Path && text.ends_with('/') {
        return format!("{text}**");
    }
    text.to_string()
}

/// Whether some pattern of `set` covers `pattern`.
pub fn covered_by(set: &[Pattern], pattern: &Pattern) -> bool {
    set.iter().any(|p| p.covers(pattern))
}

/// Whether some pattern of `set` matches `candidate`.
pub fn any_match(set: &[Pattern], candidate: &str) -> bool {
    set.iter().any(|p| p.matches(candidate))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::source::{FileId, Span};

    fn p(text: &str) -> Pattern {
        Pattern::new(
            text,
            PatternKind::Path,
            Location {
                file: FileId(0),
                span: Span::default(),
            },
        )
        .unwrap()
    }

    #[test]
    fn path_matching() {
        assert!(p("src/**").matches("src/a/b.rs"));
        assert!(p("src/*.rs").matches("src/a.rs"));
        assert!(!p("src/*.rs").matches("src/a/b.rs"));
        assert!(p("docs/").matches("docs/x.md"));
        assert!(p("**").matches("a/b/c"));
    }

    #[test]
    fn covering() {
        assert!(p("**").covers(&p("src/**")));
        assert!(p("src/**").covers(&p("src/auth/**")));
        assert!(p("src/**").covers(&p("src/a.rs")));
        assert!(!p("src/auth/**").covers(&p("src/**")));
        assert!(!p("src/*").covers(&p("src/**")));
        assert!(!p("src/*.rs").covers(&p("src/**")));
        assert!(!p("docs/**").covers(&p("src/a.rs")));
        assert!(p("Cargo.toml").covers(&p("Cargo.toml")));
    }

    #[test]
    fn covering_is_sound() {
        // Each of these answered `true` before, found by fuzz/fuzz_targets/pattern.rs.
        assert!(!p("*").covers(&p("**")), "`**` matches a/b, `*` does not");
        assert!(!p("src/**aqth/*").covers(&p("src/aqth/**")));
        assert!(!p("?").covers(&p("*")));
        assert!(!p("src/?.rs").covers(&p("src/*.rs")));
        assert!(!p("[!x]").covers(&p("*")));
        assert!(!p("?").covers(&p("é")), "`?` matches one byte");
        assert!(!p("a/**").covers(&p("a")), "`a/**` does not match `a`");
        assert!(
            !p("{r,,m}*").covers(&p("x")),
            "globset drops the empty choice"
        );
    }

    #[test]
    fn covering_the_usual_globs() {
        assert!(p("*").covers(&p("*.rs")));
        assert!(p("src/**").covers(&p("src/*/mod.rs")));
        assert!(p("src/**/*.rs").covers(&p("src/*.rs")));
        assert!(p("**/*.rs").covers(&p("src/**/*.rs")));
        assert!(p("src/").covers(&p("src/auth/")));
        assert!(p("{src,tests}/**").covers(&p("src/**")));
        assert!(p("src/**").covers(&p("src/{a,b}/*.rs")));
        assert!(!p("{src,tests}/**").covers(&p("{src,docs}/**")));
        assert!(p("src/*.{rs,toml}").covers(&p("src/main.rs")));
        assert!(p("??").covers(&p("é")), "two bytes");
    }

    #[test]
    fn names() {
        let loc = Location {
            file: FileId(0),
            span: Span::default(),
        };
        let star = Pattern::new("*", PatternKind::Name, loc).unwrap();
        let cargo = Pattern::new("cargo", PatternKind::Name, loc).unwrap();
        assert!(star.covers(&cargo));
        assert!(!cargo.covers(&star));
        assert!(star.matches("rg"));
    }
}
