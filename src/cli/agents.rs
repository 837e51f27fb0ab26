//! `runbook agents`: the CLI agent presets of `std/agents`, and for each whether its
//! binary is installed, its version, and which of its key variables are set (names
//! only: a value is never printed).

use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::agents::tools::{key_variables, tested_versions};
use crate::ir::{AgentKind, Tool};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `runbook agents` arguments.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

/// How to print the list.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// A table.
    Text,
    /// One JSON document.
    Json,
}

/// One preset, as found on this machine.
#[derive(serde::Serialize)]
struct Row {
    preset: String,
    kind: Tool,
    program: String,
    path: Option<PathBuf>,
    version: Option<String>,
    tested: String,
    /// Set when the installed version is outside the tested range.
    warning: Option<String>,
    keys_set: Vec<String>,
    keys_unset: Vec<String>,
}

/// Runs `runbook agents`.
pub fn run(args: Args) -> i32 {
    let presets = match presets() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    let rows: Vec<Row> = presets
        .into_iter()
        .map(|(preset, tool, program)| {
            let found = locate(&program, &path);
            let version = found.as_deref().and_then(version_of);
            let (low, high) = tested_versions(tool);
            let warning = version.as_deref().and_then(|v| {
                let mm = major_minor(v)?;
                let inside = cmp_version(&mm, low).is_ge() && cmp_version(&mm, high).is_le();
                (!inside).then(|| {
                    format!(
                        "version {v} is outside the tested range {}",
                        range(low, high)
                    )
                })
            });
            let (keys_set, keys_unset) = key_variables(tool)
                .iter()
                .map(|k| k.to_string())
                .partition(|k| std::env::var_os(k).is_some_and(|v| !v.is_empty()));
            Row {
                preset,
                kind: tool,
                program,
                path: found,
                version,
                tested: range(low, high),
                warning,
                keys_set,
                keys_unset,
            }
        })
        .collect();
    if args.format == Format::Json {
        match serde_json::to_string_pretty(&rows) {
            Ok(t) => println!("{t}"),
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        }
        return EXIT_OK;
    }
    for r in &rows {
        let installed = match (&r.path, &r.version) {
            (Some(p), Some(v)) => format!("{v} at {}", p.display()),
            (Some(p), None) => format!("installed at {} (its version did not answer)", p.display()),
            (None, _) => format!("not installed (`{}` is not on the PATH)", r.program),
        };
        println!("{}  (kind {}, tested with {})", r.preset, r.kind, r.tested);
        println!("  binary: {installed}");
        let keys = |v: &[String]| {
            if v.is_empty() {
                "none".to_string()
            } else {
                v.join(", ")
            }
        };
        println!("  set:    {}", keys(&r.keys_set));
        println!("  unset:  {}", keys(&r.keys_unset));
        if let Some(w) = &r.warning {
            println!("  warning: {w}");
        }
    }
    EXIT_OK
}

/// `low` or `low–high`.
fn range(low: &str, high: &str) -> String {
    if low == high {
        format!("{low}.x")
    } else {
        format!("{low}.x–{high}.x")
    }
}

/// The presets of `std/agents` that drive a tool: name, kind and program.
fn presets() -> Result<Vec<(String, Tool, String)>, String> {
    let mut map = crate::syntax::source::SourceMap::default();
    let text = "runbook agents {\n  import \"std/agents\"\n}\n";
    let (file, problem) = crate::ir::load::add_bytes(
        &mut map,
        Path::new("<runbook agents>"),
        "<runbook agents>".into(),
        text.as_bytes().to_vec(),
    );
    if let Some(d) = problem {
        return Err(d.message);
    }
    let lowered = crate::ir::lower::lower_file(&mut map, file);
    let runbook = lowered
        .runbook
        .ok_or_else(|| "the embedded std/agents module does not load".to_string())?;
    Ok(runbook
        .agents
        .iter()
        .filter_map(|a| match (&a.kind, a.tool) {
            (AgentKind::Command { run }, Some(tool)) => {
                let program = shell_words::split(run).ok()?.into_iter().next()?;
                Some((a.name.clone(), tool, program))
            }
            _ => None,
        })
        .collect())
}

/// Where `program` is, on `path` (or as given, with a slash).
fn locate(program: &str, path: &std::ffi::OsStr) -> Option<PathBuf> {
    if program.contains('/') {
        return Path::new(program).is_file().then(|| PathBuf::from(program));
    }
    std::env::split_paths(path)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// The first version-looking word `program --version` prints, within 10 seconds.
fn version_of(program: &Path) -> Option<String> {
    let mut child = Command::new(program)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let start = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if start.elapsed() < Duration::from_secs(10) => {
                std::thread::sleep(Duration::from_millis(20))
            }
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
    let mut out = String::new();
    use std::io::Read;
    child.stdout.take()?.read_to_string(&mut out).ok()?;
    out.split_whitespace()
        .map(|w| w.trim_start_matches('v'))
        .find(|w| {
            w.split('.').count() >= 2
                && w.split('.')
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        })
        .map(str::to_string)
}

/// `major.minor` of a version.
fn major_minor(v: &str) -> Option<String> {
    let mut parts = v.split('.');
    Some(format!("{}.{}", parts.next()?, parts.next()?))
}

/// Compares dotted numeric versions.
fn cmp_version(a: &str, b: &str) -> std::cmp::Ordering {
    let nums = |s: &str| -> Vec<u64> { s.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    nums(a).cmp(&nums(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(cmp_version("0.169", "0.61").is_gt());
        assert!(cmp_version("2.1", "2.1").is_eq());
        assert_eq!(major_minor("2.1.328").as_deref(), Some("2.1"));
        assert_eq!(major_minor("7"), None);
    }
}
