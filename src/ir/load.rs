//! Reading source files: bytes from disk (or the embedded stdlib) into the
//! [`SourceMap`], with the problems a user can fix reported as diagnostics.

use crate::diagnostic::Diagnostic;
use crate::syntax::source::{FileId, Location, SourceMap, Span};
use std::path::Path;
use std::sync::Arc;

/// A file that could not be read at all (missing, unreadable): a usage error.
#[derive(Debug)]
pub struct ReadError {
    /// The path as the user gave it.
    pub path: String,
    /// The OS error.
    pub error: std::io::Error,
}

impl std::fmt::Display for ReadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot read {}: {}", self.path, self.error)
    }
}

impl std::error::Error for ReadError {}

/// Reads `path` into `map`. Text that is not UTF-8 or is empty is loaded (so that the
/// diagnostic can show it) and reported.
pub fn read(
    map: &mut SourceMap,
    path: &Path,
    name: String,
) -> Result<(FileId, Option<Diagnostic>), ReadError> {
    if let Some(id) = map.find(path) {
        return Ok((id, None));
    }
    let bytes = read_source(path).map_err(|error| ReadError {
        path: name.clone(),
        error,
    })?;
    Ok(add_bytes(map, path, name, bytes))
}

/// The most a source file (runbook, module, prompt file) may hold.
pub const MAX_SOURCE_BYTES: u64 = 16 << 20;

/// Reads a source file: a regular file (a `prompt file("/dev/zero")` or a FIFO would
/// never end) of at most [`MAX_SOURCE_BYTES`].
fn read_source(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(std::io::Error::other(
            "not a regular file (runbooks, modules and prompt files must be files)",
        ));
    }
    let mut bytes = Vec::with_capacity(meta.len().min(MAX_SOURCE_BYTES) as usize);
    file.take(MAX_SOURCE_BYTES + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(std::io::Error::other(format!(
            "larger than {} MiB, the most a source file may hold",
            MAX_SOURCE_BYTES >> 20
        )));
    }
    Ok(bytes)
}

/// Adds bytes as a file, validating UTF-8 and emptiness.
pub fn add_bytes(
    map: &mut SourceMap,
    path: &Path,
    name: String,
    bytes: Vec<u8>,
) -> (FileId, Option<Diagnostic>) {
    match String::from_utf8(bytes) {
        Ok(text) => {
            // The grammar counts a byte-order mark as whitespace: a file of nothing else
            // is empty too (its formatted form, with no BOM, was; found by
            // tests/grammar_proptest.rs).
            let empty = text
                .trim_matches(|c: char| c.is_whitespace() || c == '\u{FEFF}')
                .is_empty();
            let id = map.add(path, name.clone(), Arc::from(text), false);
            let diagnostic = empty.then(|| {
                Diagnostic::error(
                    "E0004",
                    Location {
                        file: id,
                        span: Span::new(0, 0),
                    },
                    format!("{name} is empty"),
                )
                .with_label("nothing here")
                .with_help("a runbook file starts with `runbook NAME {`; see docs/language.md")
            });
            (id, diagnostic)
        }
        Err(error) => {
            let valid = error.utf8_error().valid_up_to();
            let bytes = error.into_bytes();
            let text = String::from_utf8_lossy(&bytes).into_owned();
            // The lossy text has the same prefix, so the offset still points right. The
            // bad byte became U+FFFD there, three bytes long: a span of one byte would
            // end inside it, and whoever slices the text with the span would panic
            // (found by fuzz/fuzz_targets/check.rs).
            let id = map.add(path, name.clone(), Arc::from(text), false);
            let diagnostic = Diagnostic::error(
                "E0003",
                Location {
                    file: id,
                    span: Span::new(valid, valid + char::REPLACEMENT_CHARACTER.len_utf8()),
                },
                format!("{name} is not valid UTF-8"),
            )
            .with_label("this byte is not UTF-8")
            .with_help("save the file as UTF-8");
            (id, Some(diagnostic))
        }
    }
}

/// Adds an embedded stdlib module.
pub fn add_builtin(map: &mut SourceMap, module: &str, text: &'static str) -> FileId {
    let path = Path::new("std").join(format!("{module}.runbook"));
    if let Some(id) = map.find(&path) {
        return id;
    }
    map.add(
        &path,
        format!("std/{module}.runbook"),
        Arc::from(text),
        true,
    )
}
