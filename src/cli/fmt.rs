//! `runbook fmt [PATH…] [--check]`: rewrites runbook files in the canonical layout, or
//! with `--check` prints what would change. A file that does not parse is reported and
//! left untouched; a file is replaced atomically (temporary file, then rename).

use super::{color_stderr, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::diagnostic::render;
use crate::syntax::source::{display_path, SourceMap};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Arguments of `runbook fmt`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Runbook files or directories (searched for *.runbook); `-` formats stdin to stdout.
    /// Default: the repository's runbooks/.
    paths: Vec<PathBuf>,
    /// Write nothing: print a unified diff of what would change, exit 1 if anything would.
    #[arg(long)]
    check: bool,
}

/// What happened to one file.
enum Outcome {
    Unchanged,
    Changed,
    Failed,
    Unreadable,
}

/// Runs the subcommand.
pub fn run(args: Args) -> i32 {
    if args.paths.len() == 1 && args.paths[0] == Path::new("-") {
        return stdin_to_stdout();
    }
    let files = match super::check::expand(&args.paths) {
        Ok(f) => f,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    let (mut changed, mut failed, mut unreadable) = (0, 0, 0);
    for file in &files {
        match one_file(file, args.check) {
            Outcome::Unchanged => {}
            Outcome::Changed => changed += 1,
            Outcome::Failed => failed += 1,
            Outcome::Unreadable => unreadable += 1,
        }
    }
    if args.check && changed > 0 {
        let plural = if changed == 1 { "" } else { "s" };
        eprintln!("{changed} file{plural} would be reformatted (run `runbook fmt`)");
    }
    if unreadable > 0 {
        EXIT_USAGE
    } else if failed > 0 || (args.check && changed > 0) {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}

fn one_file(path: &Path, check: bool) -> Outcome {
    let name = display_path(path);
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot read {name}: {e}");
            return Outcome::Unreadable;
        }
    };
    let Ok(original) = String::from_utf8(bytes) else {
        eprintln!("error: {name} is not valid UTF-8; left untouched");
        return Outcome::Failed;
    };
    let formatted = match formatted(path, &name, &original) {
        Ok(f) => f,
        Err(()) => return Outcome::Failed,
    };
    if formatted == original {
        return Outcome::Unchanged;
    }
    if check {
        print!("{}", unified_diff(&name, &original, &formatted));
        return Outcome::Changed;
    }
    if let Err(e) = crate::record::run_dir::write_atomic(path, formatted.as_bytes()) {
        eprintln!("error: cannot write {name}: {e}");
        return Outcome::Unreadable;
    }
    eprintln!("formatted {name}");
    Outcome::Changed
}

/// The formatted text, after making sure it means what the original means; reports
/// (and returns `Err`) otherwise.
fn formatted(path: &Path, name: &str, original: &str) -> Result<String, ()> {
    let formatted = match crate::fmt::format(original) {
        Ok(f) => f,
        Err(e) => {
            let mut map = SourceMap::new();
            let file = map.add(path, name.to_string(), original.into(), false);
            let d = crate::ir::lower::syntax_diagnostic(file, e);
            eprint!("{}", render::human(&d, &map, color_stderr()));
            eprintln!("error: {name} does not parse; left untouched");
            return Err(());
        }
    };
    // A formatter bug must never reach the file: the result has to mean the same.
    if formatted != original
        && crate::fmt::meaning::of_text(path, original)
            != crate::fmt::meaning::of_text(path, &formatted)
    {
        eprintln!(
            "error: formatting {name} would change its meaning (a bug in runbook fmt, please report it); left untouched"
        );
        return Err(());
    }
    Ok(formatted)
}

fn stdin_to_stdout() -> i32 {
    let mut original = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut original) {
        eprintln!("error: cannot read stdin: {e}");
        return EXIT_USAGE;
    }
    let path = std::env::current_dir()
        .unwrap_or_default()
        .join("<stdin>.runbook");
    match formatted(&path, "<stdin>", &original) {
        Ok(text) => {
            let _ = std::io::stdout().write_all(text.as_bytes());
            EXIT_OK
        }
        Err(()) => EXIT_FAILED,
    }
}

/// A unified diff of `before` → `after` with three lines of context.
pub fn unified_diff(name: &str, before: &str, after: &str) -> String {
    similar::TextDiff::from_lines(before, after)
        .unified_diff()
        .context_radius(3)
        .header(name, &format!("{name} (formatted)"))
        .to_string()
}
