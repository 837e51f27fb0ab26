//! The layout of one run's directory, `.runbook/runs/<run-id>/`, and the
//! crash-safe ways files get into it.
//!
//! ```text
//! .runbook/runs/<run-id>/
//!   run.json                      written atomically (write_atomic)
//!   events.jsonl                  the append-only journal
//!   lock                          flock'd by the driving process
//!   spec/<sha256>-<basename>      exact sources, content-addressed
//!   steps/<step>/<attempt>/       prompt.md, stdout.log, stderr.log (only when not empty), result.json
//! ```

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use super::crash;
use super::lock;
use super::run_id::RunId;
use super::sha256_hex;

/// Directory, relative to the project root, that holds every run.
pub const RUNS_DIR: &str = ".runbook/runs";

/// Path of the directory holding every run under `root`.
pub fn runs_dir(root: &Path) -> PathBuf {
    root.join(RUNS_DIR)
}

/// Ids of the runs recorded under `root`, oldest first; a missing or
/// unreadable runs directory lists as empty.
pub fn list_runs(root: &Path) -> Vec<RunId> {
    let Ok(entries) = fs::read_dir(runs_dir(root)) else {
        return Vec::new();
    };
    let mut ids: Vec<RunId> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let id: RunId = name.parse().ok()?;
            // Only canonical spellings: a lowercase lookalike directory is not
            // the run that `RunDir::open` would find for that id.
            (id.as_str() == name).then_some(id)
        })
        .collect();
    ids.sort();
    ids
}

/// Writes `.runbook/.gitignore` (`*`) unless there is one: run records and worktrees are
/// not part of the user's working tree as git sees it, and nothing outside `.runbook/`
/// has to change for that.
fn ignore_records(root: &Path) -> io::Result<()> {
    let path = root.join(".runbook").join(".gitignore");
    if path.exists() {
        return Ok(());
    }
    write_atomic(
        &path,
        b"# Written by runbook: run records and worktrees stay out of git.\n*\n",
    )
}

/// The paths of one run directory, `.runbook/runs/<run-id>/` under a root.
#[derive(Debug, Clone)]
pub struct RunDir {
    id: RunId,
    path: PathBuf,
    /// Shared by clones: what this process knows of the attempt directories.
    attempts: Arc<Mutex<Attempts>>,
}

/// What a process knows of a run's attempt directories, so that numbering the next
/// attempt need not ask the disk: a `stat` of a missing path in a large `steps/` costs
/// more than the rest of choosing a step's attempt.
#[derive(Debug, Default)]
struct Attempts {
    /// The run directory was created by this process: every attempt directory in it is
    /// one this process made.
    fresh: bool,
    /// The highest attempt directory known to exist, per step.
    highest: HashMap<String, u32>,
}

impl RunDir {
    /// Creates the directory for a new run; fails if the run already exists.
    pub fn create(root: &Path, id: RunId) -> io::Result<RunDir> {
        let runs = runs_dir(root);
        fs::create_dir_all(&runs)?;
        ignore_records(root)?;
        let path = runs.join(id.as_str());
        fs::create_dir(&path)?;
        fs::create_dir(path.join("steps"))?;
        fs::create_dir(path.join("spec"))?;
        // Make the new entries durable: a journal fsync'd inside a directory
        // whose own entry was lost to a crash is still lost.
        sync_dir(&path)?;
        sync_dir(&runs)?;
        let attempts = Attempts {
            fresh: true,
            ..Attempts::default()
        };
        Ok(RunDir {
            id,
            path,
            attempts: Arc::new(Mutex::new(attempts)),
        })
    }

    /// Opens the directory of an existing run; fails if there is none.
    pub fn open(root: &Path, id: RunId) -> io::Result<RunDir> {
        let path = runs_dir(root).join(id.as_str());
        if !fs::metadata(&path)?.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("{} is not a run directory", path.display()),
            ));
        }
        Ok(RunDir {
            id,
            path,
            attempts: Arc::default(),
        })
    }

    /// The run's id.
    pub fn id(&self) -> &RunId {
        &self.id
    }

    /// The run directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `run.json`: the run's summary, always replaced atomically.
    pub fn run_json(&self) -> PathBuf {
        self.path.join("run.json")
    }

    /// `spec/`: the exact sources the run was started from.
    pub fn spec_dir(&self) -> PathBuf {
        self.path.join("spec")
    }

    /// `events.jsonl`: the append-only audit journal.
    pub fn events(&self) -> PathBuf {
        self.path.join("events.jsonl")
    }

    /// `lock`: flock'd by the process driving the run.
    pub fn lock_file(&self) -> PathBuf {
        self.path.join("lock")
    }

    /// `steps/`: one subdirectory per step.
    pub fn steps_dir(&self) -> PathBuf {
        self.path.join("steps")
    }

    /// `steps/<step>/<attempt>/` for one attempt of a step (not created yet).
    pub fn step_attempt_dir(&self, step: &str, attempt: u32) -> StepAttemptDir {
        StepAttemptDir {
            path: self
                .steps_dir()
                .join(path_component(step))
                .join(attempt.to_string()),
        }
    }

    /// The next attempt number of `step`: one past every attempt directory there is, so
    /// a re-run (retry, revise, resume after a crash) never overwrites an earlier record.
    /// `journaled` is the journal's count. In a run this process did not create, the disk
    /// is asked once per step, since a crash can leave a directory the journal never
    /// heard of; after that, and in a new run, what this process made is all there is.
    pub fn next_attempt(&self, step: &str, journaled: Option<u32>) -> u32 {
        let mut known = lock(&self.attempts);
        let highest = known.highest.get(step).copied();
        let mut n = journaled.unwrap_or(0).max(highest.unwrap_or(0)) + 1;
        if highest.is_none() && !known.fresh {
            while fs::symlink_metadata(self.step_attempt_dir(step, n).path()).is_ok() {
                n += 1;
            }
            known.highest.insert(step.to_owned(), n - 1);
        }
        n
    }

    /// Creates `steps/<step>/<attempt>/` (two mkdirs, not the failed one and the walk up
    /// that `create_dir_all` starts with for a new step) and returns its path.
    pub fn create_attempt_dir(&self, step: &str, attempt: u32) -> io::Result<PathBuf> {
        let dir = self.step_attempt_dir(step, attempt).path;
        if let Some(parent) = dir.parent() {
            match fs::create_dir(parent) {
                Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
                _ => {}
            }
        }
        fs::create_dir(&dir)?;
        let mut known = lock(&self.attempts);
        let highest = known.highest.entry(step.to_owned()).or_default();
        *highest = (*highest).max(attempt);
        Ok(dir)
    }

    /// Removes the directory of an attempt that never started, freeing its number.
    pub fn remove_attempt_dir(&self, step: &str, attempt: u32) -> io::Result<()> {
        fs::remove_dir_all(self.step_attempt_dir(step, attempt).path())?;
        let mut known = lock(&self.attempts);
        if let Some(highest) = known.highest.get_mut(step) {
            if *highest == attempt {
                *highest = attempt.saturating_sub(1);
            }
        }
        Ok(())
    }

    /// Stores the exact source bytes as `spec/<sha256>-<basename>`, returning the sha256 hex.
    ///
    /// Content addressing makes storing the same source twice (e.g. on
    /// resume) a no-op and lets a resume verify the spec has not changed.
    pub fn store_spec(&self, relative_name: &str, bytes: &[u8]) -> io::Result<String> {
        let sha = sha256_hex(bytes);
        let base = Path::new(relative_name)
            .file_name()
            .and_then(OsStr::to_str)
            .map_or_else(|| "spec".to_owned(), path_component);
        let dir = self.spec_dir();
        fs::create_dir_all(&dir)?;
        let dest = dir.join(format!("{sha}-{base}"));
        if !dest.exists() {
            replace(&dest, bytes, true)?;
            crash::reached("file:spec");
        }
        Ok(sha)
    }
}

/// The files of one step attempt, `steps/<step>/<attempt>/`.
#[derive(Debug, Clone)]
pub struct StepAttemptDir {
    path: PathBuf,
}

impl StepAttemptDir {
    /// Creates the directory (and its parents) if missing.
    pub fn create(&self) -> io::Result<()> {
        fs::create_dir_all(&self.path)
    }

    /// The attempt directory itself.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `prompt.md`: the rendered prompt given to the agent.
    pub fn prompt(&self) -> PathBuf {
        self.path.join("prompt.md")
    }

    /// `stdout.log`: the step's (redacted) standard output.
    pub fn stdout(&self) -> PathBuf {
        self.path.join("stdout.log")
    }

    /// `stderr.log`: the step's (redacted) standard error.
    pub fn stderr(&self) -> PathBuf {
        self.path.join("stderr.log")
    }

    /// `result.json`: the attempt's outcome, written atomically.
    pub fn result_json(&self) -> PathBuf {
        self.path.join("result.json")
    }
}

/// Writes `bytes` to `path` so that readers (and a crash) see either the old
/// file or the complete new one, never a half-written file.
///
/// Writes a temporary file in the same directory, fsyncs it, renames it over
/// `path` (atomic within one filesystem), then fsyncs the directory so the
/// rename itself survives a crash. A crash site named after the file (`file:run.json`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, true)?;
    crash::reached_file(path);
    Ok(())
}

/// Like [`write_atomic`] (readers see the old or the new file, never a torn one) but
/// without fsync: for per-attempt records (`prompt.md`, `result.json`) whose content the
/// fsync'd journal already holds, so that a step does not pay four fsyncs. Not a crash
/// site by itself: its callers name theirs (`file:checkpoint`).
pub fn write_replace(path: &Path, bytes: &[u8]) -> io::Result<()> {
    replace(path, bytes, false)
}

/// Writes a per-attempt record (`prompt.md`, `result.json`) in place: each attempt has a
/// directory of its own, written once by one task, so there is no old version to keep
/// and no concurrent writer; a crash mid-write leaves a short file in the directory of an
/// attempt the journal does not show finished (and resume re-runs it under a new number).
/// Saves the temporary file and the rename, a third of what a no-op step costs the
/// filesystem. A crash site named after the file (`file:result.json`).
pub fn write_record(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)?;
    file.write_all(bytes)?;
    drop(file);
    crash::reached_file(path);
    Ok(())
}

fn replace(path: &Path, bytes: &[u8], durable: bool) -> io::Result<()> {
    /// Distinguishes concurrent writers of the same file within this process.
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{} has no file name", path.display()),
        )
    })?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(
        ".tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = dir.join(tmp_name);

    let result = (|| {
        let mut file = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        file.write_all(bytes)?;
        if durable {
            file.sync_all()?;
        }
        drop(file);
        fs::rename(&tmp, path)?;
        if durable {
            sync_dir(dir)?;
        }
        Ok(())
    })();
    if result.is_err() {
        // Best effort: do not leave temp litter behind; the original error matters more.
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// fsyncs a directory so entries created, renamed or removed in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Makes a name safe as a single path component, injectively: bytes outside
/// `[A-Za-z0-9._-]` become `%XX`, and so do the dots of `.`/`..`.
fn path_component(name: &str) -> String {
    if name.is_empty() {
        // A bare `%` is never produced for a non-empty name (`%` encodes as `%25`).
        return "%".to_owned();
    }
    let only_dots = name.bytes().all(|b| b == b'.');
    let mut out = String::with_capacity(name.len());
    for b in name.bytes() {
        let keep = (b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.')
            && !(only_dots && b == b'.');
        if keep {
            out.push(char::from(b));
        } else {
            // Writing into a String cannot fail.
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(s: &str) -> RunId {
        s.parse().unwrap()
    }

    #[test]
    fn attempts_are_numbered_past_every_directory_this_process_made() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path(), id("01ARZ3NDEKTSV4RR")).unwrap();
        assert_eq!(run.next_attempt("build", None), 1);
        let made = run.create_attempt_dir("build", 1).unwrap();
        assert_eq!(made, run.step_attempt_dir("build", 1).path());
        assert!(made.is_dir());
        // The journal has not counted attempt 1 yet (a revise re-runs the step at once).
        assert_eq!(run.next_attempt("build", None), 2);
        assert_eq!(run.next_attempt("build", Some(3)), 4);
        // An attempt that never started gives its number back.
        run.create_attempt_dir("build", 2).unwrap();
        run.remove_attempt_dir("build", 2).unwrap();
        assert!(!run.step_attempt_dir("build", 2).path().exists());
        assert_eq!(run.next_attempt("build", None), 2);
        // A clone shares what is known.
        assert_eq!(run.clone().next_attempt("build", Some(1)), 2);
    }

    #[test]
    fn a_reopened_run_skips_directories_the_journal_never_heard_of() {
        let root = tempfile::tempdir().unwrap();
        let rid = id("01ARZ3NDEKTSV4RR");
        let first = RunDir::create(root.path(), rid.clone()).unwrap();
        first.create_attempt_dir("build", 1).unwrap();
        // A crash after the mkdir of attempt 2, before its start was journaled.
        first.create_attempt_dir("build", 2).unwrap();
        drop(first);

        let resumed = RunDir::open(root.path(), rid).unwrap();
        assert_eq!(resumed.next_attempt("build", Some(1)), 3);
        assert_eq!(resumed.next_attempt("test", None), 1);
        // Asked once: a directory made behind its back afterwards is not looked for.
        std::fs::create_dir_all(resumed.step_attempt_dir("test", 1).path()).unwrap();
        assert_eq!(resumed.next_attempt("test", None), 1);
    }

    #[test]
    fn layout_paths() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path(), id("01ARZ3NDEKTSV4RR")).unwrap();
        let base = root.path().join(".runbook/runs/01ARZ3NDEKTSV4RR");
        assert_eq!(run.path(), base);
        assert_eq!(run.run_json(), base.join("run.json"));
        assert_eq!(run.events(), base.join("events.jsonl"));
        assert_eq!(run.lock_file(), base.join("lock"));
        assert_eq!(run.spec_dir(), base.join("spec"));
        assert!(run.spec_dir().is_dir() && run.steps_dir().is_dir());

        let attempt = run.step_attempt_dir("build", 2);
        assert_eq!(attempt.path(), base.join("steps/build/2"));
        assert_eq!(attempt.prompt(), base.join("steps/build/2/prompt.md"));
        assert_eq!(attempt.stdout(), base.join("steps/build/2/stdout.log"));
        assert_eq!(attempt.stderr(), base.join("steps/build/2/stderr.log"));
        assert_eq!(
            attempt.result_json(),
            base.join("steps/build/2/result.json")
        );
        attempt.create().unwrap();
        assert!(attempt.path().is_dir());
    }

    #[test]
    fn create_twice_fails_open_finds_it() {
        let root = tempfile::tempdir().unwrap();
        let rid = RunId::generate();
        RunDir::create(root.path(), rid.clone()).unwrap();
        let err = RunDir::create(root.path(), rid.clone()).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        let opened = RunDir::open(root.path(), rid.clone()).unwrap();
        assert_eq!(opened.id(), &rid);
        assert!(RunDir::open(root.path(), RunId::generate()).is_err());
    }

    #[test]
    fn list_runs_sorted_and_filtered() {
        let root = tempfile::tempdir().unwrap();
        assert!(list_runs(root.path()).is_empty());
        let ids: Vec<RunId> = (0..5).map(|_| RunId::generate()).collect();
        for rid in ids.iter().rev() {
            RunDir::create(root.path(), rid.clone()).unwrap();
        }
        let runs = runs_dir(root.path());
        fs::create_dir(runs.join("not-a-run")).unwrap();
        fs::create_dir(runs.join(ids[0].as_str().to_lowercase())).unwrap();
        fs::write(runs.join("01ARZ3NDEKTSV4RR"), b"a file, not a dir").unwrap();
        assert_eq!(list_runs(root.path()), ids);
    }

    #[test]
    fn step_names_cannot_escape() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path(), RunId::generate()).unwrap();
        let steps = run.steps_dir();
        for (name, comp) in [
            ("../etc", "..%2Fetc"),
            ("..", "%2E%2E"),
            (".", "%2E"),
            ("a b", "a%20b"),
            ("fix[3]", "fix%5B3%5D"),
            ("50%", "50%25"),
            ("", "%"),
            ("ok.step-1_x", "ok.step-1_x"),
        ] {
            assert_eq!(
                run.step_attempt_dir(name, 1).path(),
                steps.join(comp).join("1"),
                "{name}"
            );
        }
    }

    #[test]
    fn write_atomic_replaces_whole_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        write_atomic(&path, b"{\"v\":1}").unwrap();
        write_atomic(&path, b"{\"v\":2}").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{\"v\":2}");
        // No temp files left behind.
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(names.len(), 1);
        assert!(write_atomic(&dir.path().join("missing/x.json"), b"x").is_err());
    }

    #[test]
    fn store_spec_is_content_addressed() {
        let root = tempfile::tempdir().unwrap();
        let run = RunDir::create(root.path(), RunId::generate()).unwrap();
        let src = b"step build { run \"make\" }\n";
        let sha = run.store_spec("runbooks/ci.rb", src).unwrap();
        assert_eq!(sha, sha256_hex(src));
        let stored = run.spec_dir().join(format!("{sha}-ci.rb"));
        assert_eq!(fs::read(&stored).unwrap(), src);
        assert_eq!(run.store_spec("runbooks/ci.rb", src).unwrap(), sha);
        assert_eq!(fs::read_dir(run.spec_dir()).unwrap().count(), 1);
    }
}
