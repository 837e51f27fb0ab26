//! Diagnostics: the one shape every stage reports problems in, with a stable code,
//! a primary location, secondary labels and a help line.

use crate::syntax::source::{Location, SourceMap};
use std::fmt;

/// How bad a diagnostic is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Something suspicious that does not stop a run.
    Warning,
    /// The runbook cannot run.
    Error,
}

/// A secondary place involved in a diagnostic.
#[derive(Debug, Clone)]
pub struct Label {
    /// Where.
    pub location: Location,
    /// What is there.
    pub message: String,
}

/// A problem found in a runbook, pointing at its source.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Stable code such as `E0101`; documented in `docs/language.md`.
    pub code: &'static str,
    /// Error or warning.
    pub severity: Severity,
    /// One sentence naming the offending thing.
    pub message: String,
    /// The primary place, with its own short label.
    pub location: Location,
    /// The label printed under the primary span.
    pub label: String,
    /// Other places involved.
    pub labels: Vec<Label>,
    /// What to write instead.
    pub help: Option<String>,
}

impl Diagnostic {
    /// An error at `location`.
    pub fn error(code: &'static str, location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            code,
            severity: Severity::Error,
            message: message.into(),
            location,
            label: String::new(),
            labels: Vec::new(),
            help: None,
        }
    }

    /// A warning at `location`.
    pub fn warning(code: &'static str, location: Location, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(code, location, message)
        }
    }

    /// Sets the primary label.
    pub fn with_label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Adds a secondary label.
    pub fn with_secondary(mut self, location: Location, message: impl Into<String>) -> Self {
        self.labels.push(Label {
            location,
            message: message.into(),
        });
        self
    }

    /// Sets the help line.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Whether this is an error.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}[{}]: {}",
            severity_word(self.severity),
            self.code,
            self.message
        )
    }
}

fn severity_word(s: Severity) -> &'static str {
    match s {
        Severity::Error => "error",
        Severity::Warning => "warning",
    }
}

/// Sorts diagnostics by file, position and code, so output is stable.
pub fn sort(diagnostics: &mut [Diagnostic]) {
    diagnostics.sort_by(|a, b| {
        (a.location.file, a.location.span.start, a.code, &a.message).cmp(&(
            b.location.file,
            b.location.span.start,
            b.code,
            &b.message,
        ))
    });
}

/// The candidate closest to `wanted` by edit distance, if it is close enough to be a typo.
pub fn closest<'a>(wanted: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|k| (distance(wanted, k), *k))
        .filter(|(d, k)| *d > 0 && *d <= 2.max(wanted.len() / 3) && *d < k.len())
        // Ties go to the first name in order: callers often collect candidates from a
        // HashMap, and a hint that changed between runs made `runbook fmt`'s meaning
        // comparison fail at random (found by tests/grammar_proptest.rs).
        .min_by_key(|&(d, k)| (d, k))
        .map(|(_, k)| k)
}

/// Levenshtein distance.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(row[j + 1] + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Renders diagnostics for people, with miette's graphical handler.
pub mod render {
    use super::*;
    use miette::{GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource};

    #[derive(Debug)]
    struct Report<'a> {
        diagnostic: &'a Diagnostic,
        source: NamedSource<String>,
        labels: Vec<LabeledSpan>,
        related: Vec<RelatedReport>,
    }

    // A secondary label in another file than the primary one becomes a related report,
    // because a miette report has exactly one source.
    #[derive(Debug)]
    struct RelatedReport {
        message: String,
        source: NamedSource<String>,
        label: LabeledSpan,
    }

    impl fmt::Display for Report<'_> {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.diagnostic.message)
        }
    }
    impl std::error::Error for Report<'_> {}
    impl miette::Diagnostic for Report<'_> {
        fn code<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
            Some(Box::new(self.diagnostic.code))
        }
        fn severity(&self) -> Option<miette::Severity> {
            Some(match self.diagnostic.severity {
                Severity::Error => miette::Severity::Error,
                Severity::Warning => miette::Severity::Warning,
            })
        }
        fn help<'b>(&'b self) -> Option<Box<dyn fmt::Display + 'b>> {
            self.diagnostic
                .help
                .as_ref()
                .map(|h| Box::new(h) as Box<dyn fmt::Display>)
        }
        fn source_code(&self) -> Option<&dyn miette::SourceCode> {
            Some(&self.source)
        }
        fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
            Some(Box::new(self.labels.iter().cloned()))
        }
        fn related<'b>(
            &'b self,
        ) -> Option<Box<dyn Iterator<Item = &'b dyn miette::Diagnostic> + 'b>> {
            if self.related.is_empty() {
                return None;
            }
            Some(Box::new(
                self.related.iter().map(|r| r as &dyn miette::Diagnostic),
            ))
        }
    }

    impl fmt::Display for RelatedReport {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(&self.message)
        }
    }
    impl std::error::Error for RelatedReport {}
    impl miette::Diagnostic for RelatedReport {
        fn severity(&self) -> Option<miette::Severity> {
            Some(miette::Severity::Advice)
        }
        fn source_code(&self) -> Option<&dyn miette::SourceCode> {
            Some(&self.source)
        }
        fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
            Some(Box::new(std::iter::once(self.label.clone())))
        }
    }

    fn span_of(location: Location, map: &SourceMap) -> miette::SourceSpan {
        let len = map.get(location.file).text.len();
        let start = (location.span.start as usize).min(len);
        let end = (location.span.end as usize).clamp(start, len);
        (start, end - start).into()
    }

    /// Renders one diagnostic as miette would print it; `color` picks ANSI styling.
    pub fn human(diagnostic: &Diagnostic, map: &SourceMap, color: bool) -> String {
        let file = map.get(diagnostic.location.file);
        let source = NamedSource::new(file.name.clone(), file.text.to_string());
        let mut labels = vec![LabeledSpan::new_primary_with_span(
            (!diagnostic.label.is_empty()).then(|| diagnostic.label.clone()),
            span_of(diagnostic.location, map),
        )];
        let mut related = Vec::new();
        for label in &diagnostic.labels {
            if label.location.file == diagnostic.location.file {
                labels.push(LabeledSpan::new_with_span(
                    Some(label.message.clone()),
                    span_of(label.location, map),
                ));
            } else {
                let other = map.get(label.location.file);
                related.push(RelatedReport {
                    message: format!("{} ({})", label.message, other.name),
                    source: NamedSource::new(other.name.clone(), other.text.to_string()),
                    label: LabeledSpan::new_with_span(
                        Some(label.message.clone()),
                        span_of(label.location, map),
                    ),
                });
            }
        }
        let report = Report {
            diagnostic,
            source,
            labels,
            related,
        };
        let theme = if color {
            GraphicalTheme::unicode()
        } else {
            GraphicalTheme::unicode_nocolor()
        };
        // No wrapping: the wrapper breaks lines after closing punctuation, inside the
        // backquoted names a message lists (`}`), and rustc does not wrap either.
        let handler = GraphicalReportHandler::new_themed(theme)
            .with_width(100)
            .with_wrap_lines(false);
        let mut out = String::new();
        if handler.render_report(&mut out, &report).is_err() {
            out = format!("{diagnostic}\n");
        }
        out
    }

    /// The JSON object of one diagnostic (1-based lines and columns).
    pub fn json(diagnostic: &Diagnostic, map: &SourceMap) -> serde_json::Value {
        let file = map.get(diagnostic.location.file);
        let (line, column) = file.line_column(diagnostic.location.span.start);
        let (end_line, end_column) = file.line_column(diagnostic.location.span.end);
        let labels: Vec<serde_json::Value> = diagnostic
            .labels
            .iter()
            .map(|l| {
                let f = map.get(l.location.file);
                let (line, column) = f.line_column(l.location.span.start);
                serde_json::json!({"file": f.name, "line": line, "column": column, "message": l.message})
            })
            .collect();
        serde_json::json!({
            "file": file.name,
            "line": line,
            "column": column,
            "end_line": end_line,
            "end_column": end_column,
            "severity": diagnostic.severity,
            "code": diagnostic.code,
            "message": diagnostic.message,
            "help": diagnostic.help,
            "labels": labels,
        })
    }

    /// One GitHub Actions workflow command (`::error file=…,line=…,col=…::msg`).
    pub fn github(diagnostic: &Diagnostic, map: &SourceMap) -> String {
        let file = map.get(diagnostic.location.file);
        let (line, column) = file.line_column(diagnostic.location.span.start);
        let (end_line, end_column) = file.line_column(diagnostic.location.span.end);
        let kind = match diagnostic.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut message = format!("{}: {}", diagnostic.code, diagnostic.message);
        if let Some(help) = &diagnostic.help {
            message.push_str("\nhelp: ");
            message.push_str(help);
        }
        format!(
            "::{kind} file={},line={line},col={column},endLine={end_line},endColumn={end_column},title={}::{}",
            escape_property(&file.name),
            escape_property(diagnostic.code),
            escape_data(&message)
        )
    }

    // The escapes GitHub's runner expects for workflow command data and properties.
    fn escape_data(s: &str) -> String {
        s.replace('%', "%25")
            .replace('\r', "%0D")
            .replace('\n', "%0A")
    }

    fn escape_property(s: &str) -> String {
        escape_data(s).replace(':', "%3A").replace(',', "%2C")
    }
}
