//! Crash points: test hooks that kill the interpreter at a chosen place where it durably
//! writes something a resume depends on, so that crash tests can cut a run short at every
//! such place instead of at random moments. Not for production use (see `docs/cli.md`,
//! "Testing and diagnostics").
//!
//! A *site* is a named kind of write: `journal:<event>` for each journal line of that event
//! kind, `file:<name>` for a run record (`file:run.json`, `file:prompt.md`,
//! `file:result.json`, `file:spec`, `file:checkpoint`, …) and `git:<operation>` for the
//! git layer (`git:step-commit`, `git:merge`, `git:step-worktree`, …). Every write passes
//! its site to [`reached`] (or [`pass`] and [`crash`]) *after* the write is complete: made
//! durable when the write fsyncs (journal lines, `write_atomic`), handed to the kernel
//! otherwise. The crash therefore always leaves the N-th write done and nothing after it,
//! which is what a process killed at that instant leaves (the page cache survives a
//! process's death; a power cut is another matter, see `docs/cli.md`).
//!
//! `RUNBOOK_CRASH_AT=SITE:N` aborts the process at the N-th pass of SITE (counted per
//! process). `RUNBOOK_CRASH_SITES=PATH` appends every site passed to PATH, one line per
//! pass, so that a test learns the sites and their counts from a clean run instead of
//! hard-coding them. Both are read once: with neither set, a write pays one `OnceLock`
//! load and nothing else.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, OnceLock, PoisonError};

/// Test hook: `SITE:N` aborts the interpreter right after the N-th write of SITE.
pub const CRASH_AT_ENV: &str = "RUNBOOK_CRASH_AT";

/// Test hook: a file to which every site passed is appended, one line per pass.
pub const CRASH_SITES_ENV: &str = "RUNBOOK_CRASH_SITES";

/// Test hook: when `1`, rebuilding a run's state forgets its first finished step, so a
/// resume runs it again. It exists to prove that the crash harness catches a broken
/// recovery; never set it outside that test.
pub const BREAK_RECOVERY_ENV: &str = "RUNBOOK_TEST_BREAK_RECOVERY";

/// The armed hook: what to crash at, how often each site was passed, where to list them.
struct Hook {
    target: Option<Target>,
    passes: Mutex<HashMap<String, u64>>,
    log: Option<Mutex<File>>,
}

/// `SITE:N` from `RUNBOOK_CRASH_AT`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    site: String,
    nth: u64,
}

static HOOK: OnceLock<Option<Hook>> = OnceLock::new();

/// The hook, set up from the environment on first use; `None` when neither variable is set.
fn hook() -> Option<&'static Hook> {
    HOOK.get_or_init(Hook::from_env).as_ref()
}

impl Hook {
    fn from_env() -> Option<Hook> {
        let target = std::env::var(CRASH_AT_ENV).ok().and_then(|spec| {
            let parsed = parse_target(&spec);
            if parsed.is_none() {
                eprintln!("warning: ignoring {CRASH_AT_ENV}={spec:?}: expected SITE:N with N ≥ 1");
            }
            parsed
        });
        let log = std::env::var_os(CRASH_SITES_ENV).and_then(|path| {
            match OpenOptions::new().create(true).append(true).open(&path) {
                Ok(file) => Some(Mutex::new(file)),
                Err(e) => {
                    eprintln!(
                        "warning: ignoring {CRASH_SITES_ENV}: cannot open {}: {e}",
                        Path::new(&path).display()
                    );
                    None
                }
            }
        });
        if target.is_none() && log.is_none() {
            return None;
        }
        Some(Hook {
            target,
            passes: Mutex::new(HashMap::new()),
            log,
        })
    }

    /// Counts a pass; true when it is the target's.
    fn pass(&self, site: &str) -> bool {
        if let Some(log) = &self.log {
            let mut file = log.lock().unwrap_or_else(PoisonError::into_inner);
            // One write per line: O_APPEND keeps lines whole across threads.
            let _ = file.write_all(format!("{site}\n").as_bytes());
        }
        let Some(target) = &self.target else {
            return false;
        };
        if target.site != site {
            return false;
        }
        let mut passes = self.passes.lock().unwrap_or_else(PoisonError::into_inner);
        let count = passes.entry(site.to_owned()).or_default();
        *count += 1;
        *count == target.nth
    }
}

/// Parses `SITE:N` (the site itself may contain colons: the count is after the last one).
fn parse_target(spec: &str) -> Option<Target> {
    let (site, nth) = spec.trim().rsplit_once(':')?;
    let nth: u64 = nth.parse().ok()?;
    (!site.is_empty() && nth >= 1).then(|| Target {
        site: site.to_owned(),
        nth,
    })
}

/// Whether a crash hook is set: callers that must do work to name their sites (the
/// journal, parsing each line's event kind) skip it when this is false.
pub fn armed() -> bool {
    hook().is_some()
}

/// Counts one completed write at `site`; true when it is the one `RUNBOOK_CRASH_AT`
/// names, and the caller must then [`crash`] before doing anything else.
pub fn pass(site: &str) -> bool {
    hook().is_some_and(|h| h.pass(site))
}

/// Ends the process at once, as a crash would: no destructor, no flush, no journal close.
pub fn crash(site: &str) -> ! {
    let nth = hook()
        .and_then(|h| h.target.as_ref())
        .map_or(0, |target| target.nth);
    eprintln!("runbook: {CRASH_AT_ENV}: crashing after write {nth} of {site} (test hook)");
    std::process::abort()
}

/// Marks a completed write at `site`, crashing if it is the one `RUNBOOK_CRASH_AT` names.
pub fn reached(site: &str) {
    if pass(site) {
        crash(site);
    }
}

/// [`reached`] for a run record named after its file (`file:run.json`); the name is only
/// built when a hook is set.
pub fn reached_file(path: &Path) {
    if !armed() {
        return;
    }
    let name = path
        .file_name()
        .map_or_else(|| "?".into(), |n| n.to_string_lossy());
    reached(&format!("file:{name}"));
}

/// Whether `RUNBOOK_TEST_BREAK_RECOVERY=1` asks for a deliberately broken recovery.
pub fn break_recovery() -> bool {
    static BROKEN: OnceLock<bool> = OnceLock::new();
    *BROKEN.get_or_init(|| std::env::var(BREAK_RECOVERY_ENV).is_ok_and(|v| v.trim() == "1"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_with_colons_in_the_site() {
        assert_eq!(
            parse_target("journal:step_finished:3"),
            Some(Target {
                site: "journal:step_finished".into(),
                nth: 3
            })
        );
        assert_eq!(
            parse_target(" file:run.json:1\n"),
            Some(Target {
                site: "file:run.json".into(),
                nth: 1
            })
        );
        for bad in ["", "file:run.json", "file:run.json:0", ":2", "git:merge:x"] {
            assert_eq!(parse_target(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn only_the_nth_pass_of_the_target_site_fires_and_every_pass_is_listed() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sites");
        let hook = Hook {
            target: parse_target("git:merge:2"),
            passes: Mutex::new(HashMap::new()),
            log: Some(Mutex::new(File::create(&log).unwrap())),
        };
        let fired: Vec<bool> = ["git:merge", "file:run.json", "git:merge", "git:merge"]
            .iter()
            .map(|s| hook.pass(s))
            .collect();
        assert_eq!(fired, [false, false, true, false]);
        assert_eq!(
            std::fs::read_to_string(&log).unwrap(),
            "git:merge\nfile:run.json\ngit:merge\ngit:merge\n"
        );
    }
}
