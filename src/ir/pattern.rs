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
            matcher: glob.compile_matcher(),
        })
    }

    /// Whether `candidate` matches.
    pub fn matches(&self, candidate: &str) -> bool {
        self.matcher.is_match(candidate.trim_start_matches("./"))
    }

    /// Whether everything `other` matches is also matched by `self` (conservative:
    /// may answer `false` for exotic glob pairs, never `true` wrongly for the usual ones).
    pub fn covers(&self, other: &Pattern) -> bool {
        if self.text == other.text
            || self.text == "**"
            || self.text == "*" && !other.text.contains('/')
        {
            return true;
        }
        let other_text = other.text.trim_start_matches("./");
        // A recursive wildcard can only be covered by a recursive wildcard.
        if other_text.contains("**") && !self.text.contains("**") {
            return false;
        }
        // Treat the other pattern's wildcards as literal characters: if our pattern still
        // matches, its wildcards absorb theirs.
        self.matcher.is_match(other_text)
    }
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
