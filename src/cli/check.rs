//! `runbook check [PATH…]`.

use super::{color_stderr, repository_root, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::check::check_path;
use crate::diagnostic::{render, Severity};
use crate::syntax::source::SourceMap;
use std::path::{Path, PathBuf};

/// How diagnostics are printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Annotated source snippets on stderr.
    Human,
    /// One JSON document on stdout.
    Json,
    /// GitHub Actions workflow commands on stdout.
    Github,
}

/// Arguments of `runbook check`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Runbook files or directories (searched for *.runbook). Default: the repository's runbooks/.
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "human")]
    format: Format,
    /// Treat warnings as errors.
    #[arg(long)]
    deny_warnings: bool,
}

/// Collects the `*.runbook` files under `dir`, sorted, skipping hidden directories.
pub fn runbook_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            runbook_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "runbook") {
            out.push(path);
        }
    }
    Ok(())
}

/// Expands the command-line paths into files, or explains why it cannot.
pub fn expand(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let roots = if paths.is_empty() {
        let cwd = std::env::current_dir()
            .map_err(|e| format!("cannot read the current directory: {e}"))?;
        let base = repository_root(&cwd).unwrap_or(cwd);
        let dir = base.join("runbooks");
        if !dir.is_dir() {
            return Err(format!(
                "no runbooks/ directory in {}; name the files to check: runbook check FILE…",
                base.display()
            ));
        }
        vec![dir]
    } else {
        paths.to_vec()
    };
    let mut files = Vec::new();
    for root in roots {
        if root.is_dir() {
            let before = files.len();
            runbook_files(&root, &mut files)
                .map_err(|e| format!("cannot read {}: {e}", root.display()))?;
            if files.len() == before {
                // Checking nothing and reporting success would hide a wrong path in CI.
                return Err(format!("no .runbook files in {}", root.display()));
            }
        } else {
            files.push(root);
        }
    }
    Ok(files)
}

/// Runs the subcommand.
pub fn run(args: Args) -> i32 {
    let files = match expand(&args.paths) {
        Ok(f) => f,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    let mut map = SourceMap::new();
    let mut diagnostics = Vec::new();
    let mut unreadable = 0;
    for file in &files {
        match check_path(&mut map, file) {
            Ok(outcome) => diagnostics.extend(outcome.diagnostics),
            Err(e) => {
                eprintln!("error: {e}");
                unreadable += 1;
            }
        }
    }
    if args.deny_warnings {
        for d in &mut diagnostics {
            d.severity = Severity::Error;
        }
    }
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    let warnings = diagnostics.len() - errors;
    match args.format {
        Format::Human => {
            let color = color_stderr();
            for d in &diagnostics {
                eprint!("{}", render::human(d, &map, color));
            }
            let plural = |n: usize, w: &str| format!("{n} {w}{}", if n == 1 { "" } else { "s" });
            eprintln!(
                "checked {}: {}, {}",
                plural(files.len() - unreadable, "file"),
                plural(errors, "error"),
                plural(warnings, "warning")
            );
        }
        Format::Json => {
            let list: Vec<_> = diagnostics.iter().map(|d| render::json(d, &map)).collect();
            let doc = serde_json::json!({ "diagnostics": list });
            println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        }
        Format::Github => {
            for d in &diagnostics {
                println!("{}", render::github(d, &map));
            }
        }
    }
    if unreadable > 0 {
        EXIT_USAGE
    } else if errors > 0 {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}
