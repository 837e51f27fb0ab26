//! A small builder that drives the real `runbook` binary, in the style of casey/just's
//! integration tests:
//!
//! ```ignore
//! let t = Test::new().runbook(TEXT);
//! t.args(["run", RUNBOOK, "--jobs", "2"]).run().code(0);
//! let events = t.last_run().events();
//! ```
//!
//! Every `Test` owns a fresh temporary directory that is the binary's working directory,
//! runs it with stdin on /dev/null (never interactive) and an environment cleared down to
//! PATH, HOME, LANG, `RUNBOOK_USER=tester` and what the test adds with `env`. Helpers read
//! the run directory: the run id, the journal as JSON values, an attempt's files.

#![allow(dead_code)] // each test crate uses a different part of the builder

pub mod model_server;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The file name `Test::runbook` writes.
pub const RUNBOOK: &str = "test.runbook";

/// The binary under test.
pub const BINARY: &str = env!("CARGO_BIN_EXE_runbook");

/// A temporary project directory, a runbook in it, and the arguments of the next command.
pub struct Test {
    dir: tempfile::TempDir,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl Default for Test {
    fn default() -> Self {
        Self::new()
    }
}

impl Test {
    /// A fresh, empty temporary directory; by default `run()` runs `runbook run test.runbook`.
    pub fn new() -> Test {
        Test::new_in(&std::env::temp_dir())
    }

    /// Like [`Test::new`], with the directory made inside `parent`.
    pub fn new_in(parent: &Path) -> Test {
        Test {
            dir: tempfile::Builder::new()
                .prefix("runbook-test")
                .tempdir_in(parent)
                .expect("create a temporary directory"),
            args: vec!["run".into(), RUNBOOK.into()],
            env: Vec::new(),
        }
    }

    /// Writes the runbook (as `test.runbook`).
    pub fn runbook(self, text: &str) -> Test {
        self.write(RUNBOOK, text)
    }

    /// Writes any file, relative to the directory.
    pub fn write(self, path: &str, contents: impl AsRef<[u8]>) -> Test {
        let path = self.dir.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent directories");
        }
        std::fs::write(&path, contents).expect("write a test file");
        self
    }

    /// Sets the arguments of `run()` (replacing the default `run test.runbook`).
    pub fn args<I, S>(mut self, args: I) -> Test
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args = args.into_iter().map(Into::into).collect();
        self
    }

    /// Adds an environment variable for every command this test runs.
    pub fn env(mut self, key: &str, value: &str) -> Test {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Removes an environment variable added with `env`.
    pub fn without_env(mut self, key: &str) -> Test {
        self.env.retain(|(k, _)| k != key);
        self
    }

    /// The test's directory (the binary's working directory).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the binary with the arguments set by `args`.
    pub fn run(&self) -> Output {
        self.command(&self.args)
    }

    /// Runs the binary with these arguments, in the same directory and environment.
    pub fn command<S: AsRef<str>>(&self, args: &[S]) -> Output {
        self.command_with(args, &[])
    }

    /// Runs the binary with these arguments and, for this command only, these variables.
    pub fn command_with<S: AsRef<str>>(&self, args: &[S], env: &[(&str, String)]) -> Output {
        let mut command = self.prepare(args);
        command.envs(env.iter().map(|(k, v)| (k, v)));
        let out = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .expect("run the runbook binary");
        Output {
            args: args.iter().map(|a| a.as_ref().to_string()).collect(),
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts the binary without waiting; its stdout and stderr go to `name.stdout` and
    /// `name.stderr` in the directory. If the test ends (or panics) while it still runs,
    /// it gets a Ctrl-C, which ends its steps too.
    pub fn spawn<S: AsRef<str>>(&self, name: &str, args: &[S]) -> Running {
        let file = |ext: &str| {
            std::fs::File::create(self.path().join(format!("{name}.{ext}")))
                .expect("create an output file")
        };
        let child = self
            .prepare(args)
            .stdout(file("stdout"))
            .stderr(file("stderr"))
            .spawn()
            .expect("start the runbook binary");
        Running { child }
    }

    fn prepare<S: AsRef<str>>(&self, args: &[S]) -> Command {
        let mut command = Command::new(BINARY);
        command
            .args(args.iter().map(AsRef::as_ref))
            .current_dir(self.path())
            .env_clear()
            .stdin(Stdio::null());
        for key in ["PATH", "HOME", "LANG"] {
            if let Ok(value) = std::env::var(key) {
                command.env(key, value);
            }
        }
        command.env("RUNBOOK_USER", "tester").env("NO_COLOR", "1");
        for (key, value) in &self.env {
            command.env(key, value);
        }
        command
    }

    /// Reads a file of the directory (empty if it does not exist).
    pub fn read(&self, path: &str) -> String {
        std::fs::read_to_string(self.path().join(path)).unwrap_or_default()
    }

    /// Every run recorded under `.runbook/runs`, oldest first.
    pub fn runs(&self) -> Vec<RunRecord> {
        let dir = self.path().join(".runbook/runs");
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return Vec::new();
        };
        let mut ids: Vec<String> = entries
            .flatten()
            .filter(|e| e.path().is_dir())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        ids.sort();
        ids.into_iter()
            .map(|id| RunRecord {
                path: dir.join(&id),
                id,
            })
            .collect()
    }

    /// The one run of this test (panics unless there is exactly one).
    pub fn only_run(&self) -> RunRecord {
        let mut runs = self.runs();
        assert_eq!(runs.len(), 1, "expected exactly one run");
        runs.remove(0)
    }

    /// The most recent run.
    pub fn last_run(&self) -> RunRecord {
        self.runs().pop().expect("no run under .runbook/runs")
    }

    /// Every file under `.runbook`, with its bytes.
    pub fn record_files(&self) -> Vec<(PathBuf, Vec<u8>)> {
        fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, out);
                } else if let Ok(bytes) = std::fs::read(&path) {
                    out.push((path, bytes));
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.path().join(".runbook"), &mut out);
        out
    }

    /// Waits until `path` exists and is not empty (a step signalling it got somewhere).
    pub fn wait_for_file(&self, path: &str) -> String {
        let give_up = Instant::now() + Duration::from_secs(60);
        loop {
            let text = self.read(path);
            if !text.trim().is_empty() {
                return text;
            }
            assert!(Instant::now() < give_up, "{path} never appeared");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// What one command did.
#[derive(Debug)]
pub struct Output {
    /// The arguments it ran with.
    pub args: Vec<String>,
    /// Its exit code (`None` when a signal ended it).
    pub code: Option<i32>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
}

impl Output {
    /// Asserts the exit code, showing stdout and stderr when it differs.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Output {
        assert_eq!(
            self.code,
            Some(expected),
            "`runbook {}` exited {:?}, expected {expected}\n--- stdout\n{}\n--- stderr\n{}",
            self.args.join(" "),
            self.code,
            self.stdout,
            self.stderr
        );
        self
    }

    /// Asserts that stderr contains `text`.
    #[track_caller]
    pub fn stderr_has(&self, text: &str) -> &Output {
        assert!(
            self.stderr.contains(text),
            "stderr of `runbook {}` lacks {text:?}:\n{}",
            self.args.join(" "),
            self.stderr
        );
        self
    }

    /// Asserts that stdout contains `text`.
    #[track_caller]
    pub fn stdout_has(&self, text: &str) -> &Output {
        assert!(
            self.stdout.contains(text),
            "stdout of `runbook {}` lacks {text:?}:\n{}",
            self.args.join(" "),
            self.stdout
        );
        self
    }
}

/// One run directory, `.runbook/runs/<id>/`.
#[derive(Debug, Clone)]
pub struct RunRecord {
    /// The run id.
    pub id: String,
    /// The directory.
    pub path: PathBuf,
}

impl RunRecord {
    /// Every event of the journal, in order; panics on a line that does not parse.
    pub fn events(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.path.join("events.jsonl")).expect("read journal");
        text.lines()
            .enumerate()
            .map(|(i, line)| {
                serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("journal line {} does not parse: {e}", i + 1))
            })
            .collect()
    }

    /// The events of one kind (`step_started`, `checkpoint_decided`, …).
    pub fn events_named(&self, kind: &str) -> Vec<Value> {
        self.events()
            .into_iter()
            .filter(|e| e["event"] == kind)
            .collect()
    }

    /// The event kinds in order.
    pub fn kinds(&self) -> Vec<String> {
        self.events()
            .iter()
            .map(|e| e["event"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// A file of one attempt: `steps/<step>/<attempt>/<file>`.
    pub fn attempt_file(&self, step: &str, attempt: u32, file: &str) -> String {
        let path = self.attempt_dir(step, attempt).join(file);
        std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
    }

    /// The directory of one attempt.
    pub fn attempt_dir(&self, step: &str, attempt: u32) -> PathBuf {
        self.path.join("steps").join(step).join(attempt.to_string())
    }

    /// The attempt numbers recorded on disk for a step, ascending.
    pub fn attempts(&self, step: &str) -> Vec<u32> {
        let mut out: Vec<u32> = std::fs::read_dir(self.path.join("steps").join(step))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse().ok()))
            .collect();
        out.sort_unstable();
        out
    }
}

/// Position of the first event matching `kind` and (when given) `step`.
#[track_caller]
pub fn position(events: &[Value], kind: &str, step: &str) -> usize {
    events
        .iter()
        .position(|e| e["event"] == kind && (e["step"] == step || e["checkpoint"] == step))
        .unwrap_or_else(|| panic!("no {kind} event for {step} in {events:#?}"))
}

/// Position of the last event matching `kind` and `step`.
#[track_caller]
pub fn last_position(events: &[Value], kind: &str, step: &str) -> usize {
    events
        .iter()
        .rposition(|e| e["event"] == kind && (e["step"] == step || e["checkpoint"] == step))
        .unwrap_or_else(|| panic!("no {kind} event for {step} in {events:#?}"))
}

/// Whether `pid` is in the process table at all (zombies included).
pub fn in_process_table(pid: i32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Every process (zombies included) whose process group is `pgid`.
pub fn group_members(pgid: i32) -> Vec<i32> {
    let mut members = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command name may hold spaces and parens: count fields after the last ')'.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&pgid.to_string().as_str()) {
            members.push(pid);
        }
    }
    members
}

/// Sends `signal` to `pid`.
pub fn signal(pid: u32, signal: i32) {
    let pid = i32::try_from(pid).expect("a pid fits in i32");
    // SAFETY: kill(2) takes plain integers.
    let rc = unsafe { libc::kill(pid, signal) };
    assert_eq!(rc, 0, "kill({pid}, {signal}) failed");
}

/// A `runbook` process started with `Test::spawn`.
pub struct Running {
    child: Child,
}

impl Running {
    /// Its pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Sends it a signal.
    pub fn signal(&self, signal: i32) {
        self::signal(self.id(), signal);
    }

    /// Waits for it, with a generous limit so that a hang fails the test instead of CI.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let give_up = Instant::now() + Duration::from_secs(120);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for the child") {
                return status;
            }
            if Instant::now() > give_up {
                let _ = self.child.kill();
                panic!("the runbook process did not end");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        // Ctrl-C ends the steps' process groups too; a plain kill would leave them.
        let _ = i32::try_from(self.child.id()).map(|pid| {
            // SAFETY: kill(2) takes plain integers.
            unsafe { libc::kill(pid, libc::SIGINT) }
        });
        let give_up = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs git in the test's directory with a fixed identity and dates; returns its stdout
/// and panics when it fails.
pub fn git(t: &Test, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(t.path())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_DATE", "2026-01-01T00:00:00Z")
        .env("GIT_COMMITTER_DATE", "2026-01-01T00:00:00Z")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Makes the test directory a repository on `main` with one commit of everything in it.
pub fn init_repo(t: Test) -> Test {
    git(&t, &["init", "-q", "-b", "main"]);
    git(&t, &["config", "user.name", "Test User"]);
    git(&t, &["config", "user.email", "test@example.com"]);
    git(&t, &["add", "-A"]);
    git(&t, &["commit", "-q", "-m", "initial"]);
    t
}
