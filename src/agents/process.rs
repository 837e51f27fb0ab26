//! Running one process for a step.
//!
//! Every step that runs a program (an agent CLI or a shell script) goes through
//! [`run_process`]. The rules it enforces are the ones a durable audit needs:
//!
//! * The child gets exactly the environment the spec names (`env_clear` first),
//!   so nothing leaks in from the interpreter's own environment by accident.
//! * The child leads its own process group. Timeout, cancellation, the leader's
//!   exit and even dropping the future all end the *whole group*, so a step's
//!   processes never outlive the step.
//! * Output goes to files chunk by chunk, through an optional streaming filter
//!   (secret redaction) before anything is written, captured or echoed. Only a
//!   bounded head of stdout and a bounded tail of stderr stay in memory.
//! * Stdin is fed by its own task, so a child that never reads it (or exits
//!   early) cannot stall the run.
//!
//! Linux only: it relies on process groups, `kill(2)` and `/dev/null`.

use std::fmt;
use std::io;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Bytes of stderr kept in [`ProcessOutcome::stderr_tail`].
pub const STDERR_TAIL_BYTES: usize = 4096;

/// Default [`ProcessSpec::capture_limit`] used by [`ProcessSpec::new`] (1 MiB).
pub const DEFAULT_CAPTURE_LIMIT: usize = 1 << 20;

/// Time the process group gets between SIGTERM and SIGKILL.
pub const KILL_GRACE: Duration = Duration::from_millis(500);

/// How long output may keep draining once the group is gone. Only a process
/// that escaped the group (e.g. via `setsid`) while holding our pipes can make
/// the drain last this long; past it we stop reading rather than hang.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(2);

/// Size of one read from a pipe: large enough that 1 GiB of output is cheap,
/// small enough that memory per stream stays trivial.
const READ_CHUNK: usize = 64 * 1024;

/// Size of a stream's first read buffer, before it proves to be chatty.
const FIRST_READ: usize = 4 * 1024;

/// Longest line echoed in one piece; a longer "line" (binary output, a
/// minified blob) is echoed in pieces so the echo buffer stays bounded.
const ECHO_LINE_MAX: usize = 8 * 1024;

/// How long a dead group's last zombies may take to be reparented to us and reaped.
const ZOMBIE_SETTLE: Duration = Duration::from_millis(50);

/// How often the process group is polled while waiting for it to die.
const GROUP_POLL: Duration = Duration::from_millis(10);

/// A streaming output transformation, instantiated once per output stream.
pub trait OutputFilter: Send + Sync {
    /// Starts a fresh filter state for one stream (stdout or stderr).
    fn start(&self) -> Box<dyn ChunkFilter + Send>;
}

/// The per-stream state of an [`OutputFilter`]; it may hold back a tail of a
/// chunk (e.g. a possible secret prefix) until more output or the end arrives.
pub trait ChunkFilter {
    /// Filters the next chunk, returning the bytes that are final so far.
    fn push(&mut self, chunk: &[u8]) -> Vec<u8>;
    /// Flushes whatever was held back; called once at end of stream.
    fn finish(&mut self) -> Vec<u8>;
}

/// Where a step's output lines are echoed live (for `--verbose`), with a label.
#[derive(Clone)]
pub struct EchoTarget {
    /// Prefix shown before each line, typically the step's name.
    pub label: String,
    /// Receives each complete, already-prefixed line (without its newline).
    pub sink: Arc<dyn Fn(&str) + Send + Sync>,
}

impl EchoTarget {
    /// Echoes to the terminal's stderr, which keeps the interpreter's stdout clean.
    pub fn stderr(label: impl Into<String>) -> Self {
        Self::new(label, |line: &str| eprintln!("{line}"))
    }

    /// Echoes to a custom sink, e.g. a progress bar's `println`.
    pub fn new(label: impl Into<String>, sink: impl Fn(&str) + Send + Sync + 'static) -> Self {
        Self {
            label: label.into(),
            sink: Arc::new(sink),
        }
    }
}

impl fmt::Debug for EchoTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EchoTarget")
            .field("label", &self.label)
            .finish_non_exhaustive()
    }
}

/// Everything needed to run one process for a step.
#[derive(Clone)]
pub struct ProcessSpec {
    /// Program to run; looked up on the `PATH` given in `env` if not a path.
    pub program: String,
    /// Arguments, without the program name.
    pub args: Vec<String>,
    /// Working directory of the child.
    pub cwd: PathBuf,
    /// The complete environment of the child: nothing else is inherited.
    pub env: Vec<(String, String)>,
    /// Bytes fed to the child's stdin by a separate task; `None` means `/dev/null`.
    pub stdin: Option<Vec<u8>>,
    /// File that receives stdout (created or truncated).
    pub stdout_path: PathBuf,
    /// File that receives stderr (created or truncated).
    pub stderr_path: PathBuf,
    /// Wall-clock limit after which the whole process group is killed.
    pub timeout: Option<Duration>,
    /// Bytes of (filtered) stdout kept in memory for the caller; the rest is only on disk.
    pub capture_limit: usize,
    /// Applied to every chunk of stdout and stderr before it is written, captured or echoed.
    pub filter: Option<Arc<dyn OutputFilter>>,
    /// Optionally forwards each output line to the terminal as it arrives.
    pub echo: Option<EchoTarget>,
    /// The OS sandbox the child enters between fork and exec; `None` runs it unconfined.
    pub sandbox: Option<Arc<crate::sandbox::Prepared>>,
}

impl ProcessSpec {
    /// A spec with an empty environment, no stdin, no timeout, no filter and no echo.
    pub fn new(
        program: impl Into<String>,
        args: Vec<String>,
        cwd: impl Into<PathBuf>,
        stdout_path: impl Into<PathBuf>,
        stderr_path: impl Into<PathBuf>,
    ) -> Self {
        Self {
            program: program.into(),
            args,
            cwd: cwd.into(),
            env: Vec::new(),
            stdin: None,
            stdout_path: stdout_path.into(),
            stderr_path: stderr_path.into(),
            timeout: None,
            capture_limit: DEFAULT_CAPTURE_LIMIT,
            filter: None,
            echo: None,
            sandbox: None,
        }
    }
}

impl fmt::Debug for ProcessSpec {
    // Hand-written so that environment values and stdin, which may hold
    // secrets, never end up in logs or error messages.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let env_keys: Vec<&str> = self.env.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("ProcessSpec")
            .field("program", &self.program)
            .field("args", &self.args)
            .field("cwd", &self.cwd)
            .field("env_keys", &env_keys)
            .field("stdin_bytes", &self.stdin.as_ref().map(Vec::len))
            .field("stdout_path", &self.stdout_path)
            .field("stderr_path", &self.stderr_path)
            .field("timeout", &self.timeout)
            .field("capture_limit", &self.capture_limit)
            .field("filter", &self.filter.is_some())
            .field("echo", &self.echo)
            .field("sandbox", &self.sandbox.is_some())
            .finish()
    }
}

/// A spec that runs `script` with `/bin/sh -c` (absolute, so an `env` without `PATH` still works).
pub fn shell_spec(
    script: &str,
    cwd: impl Into<PathBuf>,
    stdout_path: impl Into<PathBuf>,
    stderr_path: impl Into<PathBuf>,
) -> ProcessSpec {
    ProcessSpec::new(
        "/bin/sh",
        vec!["-c".to_owned(), script.to_owned()],
        cwd,
        stdout_path,
        stderr_path,
    )
}

/// Why a command line could not be split into words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SplitError {
    /// The line holds no words at all.
    #[error("empty command line")]
    Empty,
    /// The line is not valid shell syntax (e.g. an unclosed quote).
    #[error("cannot split command line: {0}")]
    Syntax(String),
}

/// Splits a command line into words with shell quoting rules; an empty line is an error.
pub fn split_command_line(line: &str) -> Result<Vec<String>, SplitError> {
    let words = shell_words::split(line).map_err(|e| SplitError::Syntax(e.to_string()))?;
    if words.is_empty() {
        return Err(SplitError::Empty);
    }
    Ok(words)
}

/// How a process run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitKind {
    /// The leader exited with this status code.
    Exited(i32),
    /// The leader was killed by this signal (not by us).
    Signaled(i32),
    /// The timeout elapsed and the group was killed.
    TimedOut,
    /// Cancellation was requested and the group was killed (or never started).
    Cancelled,
}

impl fmt::Display for ExitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitKind::Exited(code) => write!(f, "exited with status {code}"),
            ExitKind::Signaled(sig) => write!(f, "killed by signal {sig}"),
            ExitKind::TimedOut => f.write_str("timed out"),
            ExitKind::Cancelled => f.write_str("cancelled"),
        }
    }
}

/// What a finished process run produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessOutcome {
    /// How the run ended.
    pub exit: ExitKind,
    /// The first `capture_limit` bytes of filtered stdout, as lossy UTF-8.
    pub stdout: String,
    /// Whether stdout was longer than `capture_limit`.
    pub stdout_truncated: bool,
    /// Bytes of filtered stdout written to `stdout_path` (equals the file's size).
    pub stdout_bytes: u64,
    /// The last [`STDERR_TAIL_BYTES`] bytes of filtered stderr, as lossy UTF-8.
    pub stderr_tail: String,
    /// Wall-clock time from spawn until output was fully drained.
    pub duration: Duration,
}

impl ProcessOutcome {
    /// True when the process exited with status 0.
    pub fn success(&self) -> bool {
        self.exit == ExitKind::Exited(0)
    }
}

/// Runs `spec` to completion, until its timeout, or until `cancel` becomes true.
///
/// Whatever ends the run, the child's whole process group is gone (SIGTERM,
/// then SIGKILL after [`KILL_GRACE`]) before this returns; dropping the
/// future SIGKILLs the group too. A closed `cancel` sender means "never cancel".
/// Errors are for the machinery (spawn, output files), not for the child failing.
pub async fn run_process(
    spec: ProcessSpec,
    mut cancel: watch::Receiver<bool>,
) -> io::Result<ProcessOutcome> {
    // Output files are created at their first byte (a silent stream leaves none): two
    // fewer inodes per step is most of a no-op step's cost on ext4.
    let stdout_file = LazyFile::new(&spec.stdout_path);
    let stderr_file = LazyFile::new(&spec.stderr_path);

    // Work that was cancelled before it started is not started at all.
    if *cancel.borrow_and_update() {
        return Ok(ProcessOutcome {
            exit: ExitKind::Cancelled,
            stdout: String::new(),
            stdout_truncated: false,
            stdout_bytes: 0,
            stderr_tail: String::new(),
            duration: Duration::ZERO,
        });
    }

    adopt_orphans();
    let started = Instant::now();
    let Started {
        mut child,
        stdin,
        stdout: stdout_pipe,
        stderr: stderr_pipe,
    } = start(&spec).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!(
                "cannot start `{}` in {}{}: {e}",
                spec.program,
                spec.cwd.display(),
                if spec.sandbox.is_some() {
                    " (in the sandbox)"
                } else {
                    ""
                }
            ),
        )
    })?;
    // A step with a host list gets the allowlist proxy for as long as it runs.
    let _proxy = match &spec.sandbox {
        Some(sandbox) => match sandbox.take_proxy_listener() {
            Ok(Some((listener, rules))) => {
                listener.set_nonblocking(true)?;
                let listener = tokio::net::TcpListener::from_std(listener)?;
                Some(ProxyTask(tokio::spawn(crate::sandbox::proxy::serve(
                    listener, rules,
                ))))
            }
            Ok(None) => None,
            Err(e) => {
                let _ = child.start_kill();
                return Err(e);
            }
        },
        None => None,
    };
    let pgid = child.id();
    // From here on, any early return or a dropped future kills the group.
    let mut guard = GroupGuard { pgid: Some(pgid) };

    let stdin_task = match (spec.stdin, stdin) {
        (Some(bytes), Some(pipe)) => Some(tokio::spawn(feed_stdin(pipe, bytes))),
        _ => None,
    };

    // Readers stop on this signal only if the drain overruns (see DRAIN_TIMEOUT).
    let (stop_tx, stop_rx) = watch::channel(false);
    let stdout_sink = StreamSink::new(
        stdout_file,
        spec.filter.as_ref().map(|f| f.start()),
        Keep::Head(spec.capture_limit),
        spec.echo
            .as_ref()
            .map(|e| LineEcho::new(e, format!("[{}] ", e.label))),
    );
    let stderr_sink = StreamSink::new(
        stderr_file,
        spec.filter.as_ref().map(|f| f.start()),
        Keep::Tail(STDERR_TAIL_BYTES),
        spec.echo
            .as_ref()
            .map(|e| LineEcho::new(e, format!("[{} stderr] ", e.label))),
    );
    let stdout_task = tokio::spawn(drain(stdout_pipe, stdout_sink, stop_rx.clone()));
    let stderr_task = tokio::spawn(drain(stderr_pipe, stderr_sink, stop_rx));

    let ending = tokio::select! {
        status = child.wait() => Ending::Leader(status?),
        () = sleep_until_deadline(spec.timeout.map(|t| tokio::time::Instant::now() + t)) => Ending::TimedOut,
        () = wait_true(&mut cancel) => Ending::Cancelled,
    };
    // Even after a normal exit of the leader, background children may still
    // hold our pipes (or just linger); they belong to the step and go with it.
    terminate_group(pgid, &mut child).await?;
    guard.pgid = None;
    // After a timeout or cancel the leader's status only reflects our own
    // signal, so it is not reported.
    let exit = match ending {
        Ending::Leader(status) => exit_kind(status),
        Ending::TimedOut => ExitKind::TimedOut,
        Ending::Cancelled => ExitKind::Cancelled,
    };

    let (stdout, stderr) = join_readers(stdout_task, stderr_task, &stop_tx).await?;

    if let Some(task) = stdin_task {
        // Only a process that escaped the group can still hold stdin open
        // without reading it; don't let it stall us.
        if !task.is_finished() {
            task.abort();
        }
        // A JoinError can only be our own abort: nothing to report.
        if let Ok(Err(e)) = task.await {
            return Err(with_context(e, "writing stdin of", &spec.program));
        }
    }

    if let Some(e) = stdout.error {
        return Err(with_path_context(e, &spec.stdout_path));
    }
    if let Some(e) = stderr.error {
        return Err(with_path_context(e, &spec.stderr_path));
    }
    Ok(ProcessOutcome {
        exit,
        stdout: String::from_utf8_lossy(&stdout.kept).into_owned(),
        stdout_truncated: stdout.truncated,
        stdout_bytes: stdout.bytes,
        stderr_tail: String::from_utf8_lossy(&stderr.kept).into_owned(),
        duration: started.elapsed(),
    })
}

/// A started leader process and the parent's ends of its pipes.
struct Started {
    child: Leader,
    stdin: Option<Box<dyn AsyncWrite + Send + Unpin>>,
    stdout: Box<dyn AsyncRead + Send + Unpin>,
    stderr: Box<dyn AsyncRead + Send + Unpin>,
}

/// Starts the leader: a program named by an absolute path and run unsandboxed (every
/// `sh` line) through [`spawn`](super::spawn), which saves most of the cost of starting
/// a process; anything else, or a kernel that path does not support, through tokio.
fn start(spec: &ProcessSpec) -> io::Result<Started> {
    if spec.sandbox.is_none() && spec.program.starts_with('/') {
        let request = super::spawn::Request {
            program: &spec.program,
            args: &spec.args,
            cwd: &spec.cwd,
            env: &spec.env,
            stdin_piped: spec.stdin.is_some(),
        };
        if let Some(spawned) = super::spawn::spawn(&request)? {
            return Ok(Started {
                child: Leader::Direct(spawned.child),
                stdin: spawned
                    .stdin
                    .map(|p| Box::new(p) as Box<dyn AsyncWrite + Send + Unpin>),
                stdout: Box::new(spawned.stdout),
                stderr: Box::new(spawned.stderr),
            });
        }
    }
    let mut command = Command::new(&spec.program);
    command
        .args(&spec.args)
        .current_dir(&spec.cwd)
        .env_clear()
        .envs(spec.env.iter().map(|(k, v)| (k, v)))
        .stdin(if spec.stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // pgid = child's pid: lets us signal the child and everything it forks at once.
        .process_group(0)
        .kill_on_drop(true);
    if let Some(sandbox) = spec.sandbox.clone() {
        // SAFETY: `enter` only makes system calls on memory prepared before the fork.
        unsafe {
            command.pre_exec(move || sandbox.enter());
        }
    }
    let mut child = command.spawn()?;
    let pid = child
        .id()
        .and_then(|pid| libc::pid_t::try_from(pid).ok())
        .ok_or_else(|| io::Error::other("spawned child has no usable pid"))?;
    let piped = || io::Error::other("child output was not piped");
    Ok(Started {
        stdin: child
            .stdin
            .take()
            .map(|p| Box::new(p) as Box<dyn AsyncWrite + Send + Unpin>),
        stdout: Box::new(child.stdout.take().ok_or_else(piped)?),
        stderr: Box::new(child.stderr.take().ok_or_else(piped)?),
        child: Leader::Tokio(child, pid),
    })
}

/// The leader process of a step, however it was started.
enum Leader {
    /// Started by `tokio::process::Command` (killed on drop); with its pid.
    Tokio(Child, libc::pid_t),
    /// Started by [`spawn`](super::spawn) (killed on drop).
    Direct(super::spawn::RawChild),
}

impl Leader {
    fn id(&self) -> libc::pid_t {
        match self {
            Leader::Tokio(_, pid) => *pid,
            Leader::Direct(child) => child.id(),
        }
    }

    async fn wait(&mut self) -> io::Result<ExitStatus> {
        match self {
            Leader::Tokio(child, _) => child.wait().await,
            Leader::Direct(child) => child.wait().await,
        }
    }

    fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        match self {
            Leader::Tokio(child, _) => child.try_wait(),
            Leader::Direct(child) => child.try_wait(),
        }
    }

    fn start_kill(&mut self) -> io::Result<()> {
        match self {
            Leader::Tokio(child, _) => child.start_kill(),
            Leader::Direct(child) => child.start_kill(),
        }
    }
}

/// The allowlist proxy of one process: it ends with the process.
struct ProxyTask(tokio::task::JoinHandle<()>);

impl Drop for ProxyTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What ended the waiting phase of a run.
enum Ending {
    Leader(ExitStatus),
    TimedOut,
    Cancelled,
}

/// SIGKILLs the process group when dropped while armed, so that an early
/// return or a dropped `run_process` future never leaves processes behind.
struct GroupGuard {
    pgid: Option<libc::pid_t>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(pgid) = self.pgid {
            signal_group(pgid, libc::SIGKILL);
        }
    }
}

/// Sends `signal` to every process in group `pgid`; a vanished group is not an error.
/// Sends `signal` to the group; returns false when the group no longer exists.
fn signal_group(pgid: libc::pid_t, signal: libc::c_int) -> bool {
    // A pgid of 0 or 1 would turn `kill(-pgid)` into "our own group" or
    // "every process we may signal"; a real child's pgid is never either.
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(-pgid, signal) };
    rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::ESRCH)
}

/// Makes this process the reaper of its descendants' orphans (once per process).
///
/// When a step's shell dies before the programs it started (SIGTERM reaches
/// them all at once), those programs are reparented. Without this they go to
/// init, and an init that reaps late or never (many container inits do)
/// keeps them as zombies: one per timeout or Ctrl-C, piling up over a long
/// run, and each one makes `kill(-pgid, 0)` report the group as alive so
/// that [`group_alive`] has to scan /proc. As the subreaper we adopt them and
/// [`reap_orphans`] collects them as soon as the leader is reaped.
fn adopt_orphans() {
    static ADOPT: std::sync::Once = std::sync::Once::new();
    ADOPT.call_once(|| {
        // SAFETY: prctl(PR_SET_CHILD_SUBREAPER) takes plain integers and only
        // changes how this process's descendants are reparented. If it fails,
        // orphans go to init as before: slower to wait out, never wrong.
        unsafe {
            libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
        }
    });
}

/// Reaps the members of group `pgid` that died after being reparented to us.
///
/// Only called once the leader is reaped: `waitid(P_PGID)` must not take the
/// leader's status away from tokio, and no other child of ours is in the group.
fn reap_orphans(pgid: libc::pid_t) {
    if pgid <= 1 {
        return;
    }
    let Ok(id) = libc::id_t::try_from(pgid) else {
        return;
    };
    loop {
        // SAFETY: an all-zero siginfo_t is a valid value; waitid only writes it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: `info` is a valid, writable siginfo_t for the whole call.
        let rc =
            unsafe { libc::waitid(libc::P_PGID, id, &mut info, libc::WEXITED | libc::WNOHANG) };
        // SAFETY: waitid filled `info` (or left it zeroed, which reads as pid 0).
        let pid = unsafe { info.si_pid() };
        // -1: no children of ours in the group (ECHILD); pid 0: none has exited yet.
        if rc != 0 || pid == 0 {
            return;
        }
    }
}

/// Whether any process of group `pgid` is still running (zombies don't count).
fn group_alive(pgid: libc::pid_t) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(-pgid, 0) };
    // EPERM means it exists but we may not signal it (e.g. a setuid program).
    let exists = rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM);
    // kill(2) also counts zombies: orphans that died but wait for init to
    // reap them, which some inits (containers) do late or never. Only /proc
    // can tell those apart, and we look there only when kill says "exists".
    exists && group_has_running_member(pgid)
}

/// Whether group `pgid` has any member at all, zombies included.
fn group_has_members(pgid: libc::pid_t) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(-pgid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Reaps members that die just as the group is found dead: a member still exiting
/// when [`reap_orphans`] ran becomes our zombie a moment later, and its own dying
/// parent may hand us zombie children of its own. Bounded by [`ZOMBIE_SETTLE`],
/// because a zombie whose parent is not us (an escaped process's child) is not ours
/// to reap.
async fn collect_last_zombies(pgid: libc::pid_t) {
    let give_up = Instant::now() + ZOMBIE_SETTLE;
    loop {
        reap_orphans(pgid);
        if !group_has_members(pgid) || Instant::now() >= give_up {
            return;
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Scans /proc for a non-zombie process in group `pgid`; assumes yes if /proc is unreadable.
fn group_has_running_member(pgid: libc::pid_t) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    let pgid = pgid.to_string();
    entries.flatten().any(|entry| {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        // A process that vanished between listing and reading is simply gone.
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // The command name may contain spaces and parens, so fields are
        // counted from the last ')': state, ppid, pgrp, ...
        let Some((_, rest)) = stat.rsplit_once(')') else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1);
        group == Some(pgid.as_str()) && !matches!(state, Some("Z" | "X" | "x"))
    })
}

/// Ends the whole group: SIGTERM, up to [`KILL_GRACE`] for it to go, then
/// SIGKILL. Also reaps the leader.
async fn terminate_group(pgid: libc::pid_t, child: &mut Leader) -> io::Result<()> {
    // The common case, a step whose processes all exited: the group is already gone
    // and there is nothing to wait for (this saves a thread hop per step).
    if !signal_group(pgid, libc::SIGTERM) {
        return child.wait().await.map(drop);
    }
    if !wait_group_gone(pgid, child).await? {
        signal_group(pgid, libc::SIGKILL);
        // SIGKILL cannot be ignored; waiting once more makes "the group is
        // gone" hold when we return, bar orphans not yet reaped by init.
        wait_group_gone(pgid, child).await?;
    }
    child.wait().await.map(drop)
}

/// Polls until the leader is reaped and the group is empty, for at most
/// [`KILL_GRACE`]; returns whether the group went away.
async fn wait_group_gone(pgid: libc::pid_t, child: &mut Leader) -> io::Result<bool> {
    let give_up = Instant::now() + KILL_GRACE;
    loop {
        // The leader is our child, so we reap it here; its status is taken
        // from `Child::wait` later (tokio keeps it).
        let leader_done = child.try_wait()?.is_some();
        if leader_done {
            // Members reparented to us (see `adopt_orphans`) that died: reaped
            // here, they leave no zombie behind to keep the group "existing".
            reap_orphans(pgid);
        }
        // The /proc scan may take a few milliseconds on a busy machine, so
        // it runs off the async worker threads.
        if leader_done
            && !tokio::task::spawn_blocking(move || group_alive(pgid))
                .await
                .unwrap_or(true)
        {
            collect_last_zombies(pgid).await;
            return Ok(true);
        }
        if Instant::now() >= give_up {
            return Ok(false);
        }
        tokio::time::sleep(GROUP_POLL).await;
    }
}

/// Maps a wait status to an [`ExitKind`].
fn exit_kind(status: ExitStatus) -> ExitKind {
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitKind::Exited(code),
        (None, Some(signal)) => ExitKind::Signaled(signal),
        // wait(2) only reports stopped/continued children when asked to, which we don't.
        (None, None) => ExitKind::Exited(-1),
    }
}

/// Sleeps until `deadline`, or forever when there is none.
async fn sleep_until_deadline(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Resolves once the watched flag is true; never, if the sender is gone while it is false.
async fn wait_true(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            if *rx.borrow() {
                return;
            }
            std::future::pending::<()>().await;
        }
    }
}

/// Feeds stdin, then closes it so the child sees EOF.
async fn feed_stdin<W: AsyncWrite + Unpin>(mut pipe: W, bytes: Vec<u8>) -> io::Result<()> {
    // A child that exits or closes stdin without reading all of it is normal
    // (`head -c 5`, `true`): that is EPIPE here, not a failure. Rust programs
    // ignore SIGPIPE, so the write returns the error instead of killing us.
    match pipe.write_all(&bytes).await {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(e),
        _ => Ok(()),
    }
}

/// An output file created (truncating) at its first write.
struct LazyFile {
    path: std::path::PathBuf,
    file: Option<tokio::fs::File>,
}

impl LazyFile {
    fn new(path: &Path) -> Self {
        Self {
            path: path.to_path_buf(),
            file: None,
        }
    }

    async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        let file = match &mut self.file {
            Some(file) => file,
            None => {
                let file = tokio::fs::File::create(&self.path)
                    .await
                    .map_err(|e| with_path_context(e, &self.path))?;
                self.file.insert(file)
            }
        };
        file.write_all(data).await
    }

    async fn flush(&mut self) -> io::Result<()> {
        match &mut self.file {
            Some(file) => file.flush().await,
            None => Ok(()),
        }
    }
}

/// Adds the path to an I/O error, keeping its kind.
fn with_path_context(e: io::Error, path: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Adds what was being done to whom to an I/O error, keeping its kind.
fn with_context(e: io::Error, doing: &str, program: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{doing} `{program}`: {e}"))
}

/// Waits for both readers to reach EOF; past [`DRAIN_TIMEOUT`] tells them to stop.
async fn join_readers(
    stdout_task: JoinHandle<Drained>,
    stderr_task: JoinHandle<Drained>,
    stop: &watch::Sender<bool>,
) -> io::Result<(Drained, Drained)> {
    let both = async { (stdout_task.await, stderr_task.await) };
    tokio::pin!(both);
    let (stdout, stderr) = tokio::select! {
        done = &mut both => done,
        () = tokio::time::sleep(DRAIN_TIMEOUT) => {
            // Receivers are still alive (the tasks own them), so this is delivered.
            let _ = stop.send(true);
            both.await
        }
    };
    // A JoinError here means a filter or echo sink panicked.
    let stdout = stdout.map_err(|e| io::Error::other(format!("stdout reader failed: {e}")))?;
    let stderr = stderr.map_err(|e| io::Error::other(format!("stderr reader failed: {e}")))?;
    Ok((stdout, stderr))
}

/// Which part of a stream is kept in memory.
enum Keep {
    /// The first n bytes.
    Head(usize),
    /// The last n bytes.
    Tail(usize),
}

/// The result of draining one stream.
struct Drained {
    bytes: u64,
    kept: Vec<u8>,
    truncated: bool,
    error: Option<io::Error>,
}

/// Reads a pipe to EOF (or until told to stop), handing each chunk to the sink.
async fn drain<R: AsyncRead + Unpin>(
    mut pipe: R,
    mut sink: StreamSink,
    mut stop: watch::Receiver<bool>,
) -> Drained {
    // Filled through `read_buf`, which writes into spare capacity (no memset), starting
    // small: most streams of most steps carry a few lines or nothing at all. A read that
    // fills the buffer grows it to READ_CHUNK, so a chatty stream is still read in large
    // pieces.
    let mut buf: Vec<u8> = Vec::with_capacity(FIRST_READ);
    loop {
        buf.clear();
        let read = tokio::select! {
            read = pipe.read_buf(&mut buf) => read,
            () = wait_true(&mut stop) => break,
        };
        match read {
            Ok(0) => break,
            Ok(n) => {
                sink.accept(&buf[..n]).await;
                if n == buf.capacity() && n < READ_CHUNK {
                    buf = Vec::with_capacity(READ_CHUNK);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                sink.fail(e);
                break;
            }
        }
    }
    sink.finish().await
}

/// Where one stream's bytes go: filter, then file, memory and echo.
struct StreamSink {
    file: LazyFile,
    filter: Option<Box<dyn ChunkFilter + Send>>,
    keep: Keep,
    kept: Vec<u8>,
    bytes: u64,
    echo: Option<LineEcho>,
    error: Option<io::Error>,
}

impl StreamSink {
    fn new(
        file: LazyFile,
        filter: Option<Box<dyn ChunkFilter + Send>>,
        keep: Keep,
        echo: Option<LineEcho>,
    ) -> Self {
        Self {
            file,
            filter,
            keep,
            kept: Vec::new(),
            bytes: 0,
            echo,
            error: None,
        }
    }

    /// Takes one raw chunk from the pipe.
    async fn accept(&mut self, raw: &[u8]) {
        match self.filter.as_mut().map(|f| f.push(raw)) {
            Some(filtered) => self.emit(&filtered).await,
            None => self.emit(raw).await,
        }
    }

    /// Records a failure; the first one is the one reported.
    fn fail(&mut self, e: io::Error) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    /// Passes filtered bytes on to the file, the memory copy and the echo.
    async fn emit(&mut self, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        self.bytes += data.len() as u64;
        match self.keep {
            Keep::Head(limit) => {
                let room = limit.saturating_sub(self.kept.len());
                self.kept.extend_from_slice(&data[..room.min(data.len())]);
            }
            Keep::Tail(limit) => {
                self.kept.extend_from_slice(data);
                // Trim in batches rather than on every chunk to stay linear.
                if self.kept.len() > limit.saturating_mul(2).max(READ_CHUNK) {
                    let cut = self.kept.len() - limit;
                    self.kept.drain(..cut);
                }
            }
        }
        if let Some(echo) = self.echo.as_mut() {
            echo.push(data);
        }
        // After a write error we keep draining (and discard): stopping would
        // leave the child blocked on, or killed by, a full pipe.
        if self.error.is_none() {
            if let Err(e) = self.file.write_all(data).await {
                self.fail(e);
            }
        }
    }

    /// Flushes the filter's held-back tail, the echo and the file.
    async fn finish(mut self) -> Drained {
        if let Some(tail) = self.filter.as_mut().map(|f| f.finish()) {
            self.emit(&tail).await;
        }
        if let Some(echo) = self.echo.as_mut() {
            echo.finish();
        }
        if self.error.is_none() {
            // tokio writes files in the background; flush waits for the last write.
            if let Err(e) = self.file.flush().await {
                self.fail(e);
            }
        }
        let (kept, truncated) = match self.keep {
            Keep::Head(limit) => (self.kept, self.bytes > limit as u64),
            Keep::Tail(limit) => {
                let mut kept = self.kept;
                let cut = kept.len().saturating_sub(limit);
                kept.drain(..cut);
                (kept, self.bytes > limit as u64)
            }
        };
        Drained {
            bytes: self.bytes,
            kept,
            truncated,
            error: self.error,
        }
    }
}

/// Splits a stream into lines and hands each, prefixed, to an echo sink.
struct LineEcho {
    sink: Arc<dyn Fn(&str) + Send + Sync>,
    prefix: String,
    line: Vec<u8>,
}

impl LineEcho {
    fn new(target: &EchoTarget, prefix: String) -> Self {
        Self {
            sink: Arc::clone(&target.sink),
            prefix,
            line: Vec::new(),
        }
    }

    fn push(&mut self, data: &[u8]) {
        for &byte in data {
            if byte == b'\n' {
                self.flush_line();
            } else {
                self.line.push(byte);
                if self.line.len() >= ECHO_LINE_MAX {
                    self.flush_line();
                }
            }
        }
    }

    fn finish(&mut self) {
        if !self.line.is_empty() {
            self.flush_line();
        }
    }

    fn flush_line(&mut self) {
        // Drop a CRLF's CR so Windows-style output doesn't garble the terminal.
        if self.line.last() == Some(&b'\r') {
            self.line.pop();
        }
        let text = String::from_utf8_lossy(&self.line);
        (self.sink)(&format!("{}{text}", self.prefix));
        self.line.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    use tempfile::TempDir;

    /// A cancel receiver whose sender is gone: the run is never cancelled.
    fn never() -> watch::Receiver<bool> {
        watch::channel(false).1
    }

    fn sh(dir: &TempDir, script: &str) -> ProcessSpec {
        let mut spec = shell_spec(
            script,
            dir.path(),
            dir.path().join("out"),
            dir.path().join("err"),
        );
        spec.env = vec![("PATH".to_owned(), path_var())];
        spec
    }

    fn path_var() -> String {
        std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned())
    }

    fn read_pids(path: &Path) -> Vec<i32> {
        std::fs::read_to_string(path)
            .unwrap()
            .split_whitespace()
            .map(|p| p.parse().unwrap())
            .collect()
    }

    /// State letter of a process from /proc, or None if it does not exist.
    fn proc_state(pid: i32) -> Option<char> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // comm may contain spaces or parens, so parse from the last ')'.
        let (_, rest) = stat.rsplit_once(')')?;
        rest.trim_start().chars().next()
    }

    /// Dead means gone, or a zombie waiting for init to reap it.
    fn is_dead(pid: i32) -> bool {
        matches!(proc_state(pid), None | Some('Z') | Some('X'))
    }

    /// Pids of live (non-zombie) processes whose process group is `pgid`.
    fn live_group_members(pgid: i32) -> Vec<i32> {
        let mut live = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            // fields: state ppid pgrp ...
            if fields.get(2) == Some(&pgid.to_string().as_str()) && !matches!(fields[0], "Z" | "X")
            {
                live.push(pid);
            }
        }
        live
    }

    fn assert_group_dead(pgid: i32, pids: &[i32]) {
        for &pid in pids {
            assert!(is_dead(pid), "pid {pid} still alive: {:?}", proc_state(pid));
        }
        assert_eq!(live_group_members(pgid), Vec::<i32>::new());
        // SAFETY: signal 0 only probes.
        let rc = unsafe { libc::kill(-pgid, 0) };
        if rc == 0 {
            // Only acceptable if every member left is an unreaped zombie.
            assert!(live_group_members(pgid).is_empty());
        } else {
            assert_eq!(io::Error::last_os_error().raw_os_error(), Some(libc::ESRCH));
        }
    }

    #[tokio::test]
    async fn exit_codes_and_signals() {
        let dir = TempDir::new().unwrap();
        let ok = run_process(sh(&dir, "true"), never()).await.unwrap();
        assert_eq!(ok.exit, ExitKind::Exited(0));
        assert!(ok.success());
        let fail = run_process(sh(&dir, "exit 3"), never()).await.unwrap();
        assert_eq!(fail.exit, ExitKind::Exited(3));
        assert!(!fail.success());
        let killed = run_process(sh(&dir, "kill -TERM $$"), never())
            .await
            .unwrap();
        assert_eq!(killed.exit, ExitKind::Signaled(libc::SIGTERM));
        assert!(!killed.success());
        assert_eq!(killed.exit.to_string(), "killed by signal 15");
    }

    #[tokio::test]
    async fn captures_stdout_stderr_and_writes_files() {
        let dir = TempDir::new().unwrap();
        std::fs::write(dir.path().join("out"), "old content that must vanish").unwrap();
        let out = run_process(sh(&dir, "echo hello; echo oops >&2; pwd"), never())
            .await
            .unwrap();
        let cwd = dir.path().canonicalize().unwrap();
        let expected = format!("hello\n{}\n", cwd.display());
        assert_eq!(out.stdout, expected);
        assert!(!out.stdout_truncated);
        assert_eq!(out.stdout_bytes, expected.len() as u64);
        assert_eq!(out.stderr_tail, "oops\n");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out")).unwrap(),
            expected
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("err")).unwrap(),
            "oops\n"
        );
    }

    #[tokio::test]
    async fn timeout_kills_the_whole_group() {
        let dir = TempDir::new().unwrap();
        let mut spec = sh(
            &dir,
            "echo $$ > pids; sleep 30 & echo $! >> pids; sleep 30 & echo $! >> pids; wait",
        );
        spec.timeout = Some(Duration::from_millis(300));
        let start = Instant::now();
        let out = run_process(spec, never()).await.unwrap();
        let took = start.elapsed();
        assert_eq!(out.exit, ExitKind::TimedOut);
        assert_eq!(out.exit.to_string(), "timed out");
        assert!(took < Duration::from_secs(3), "took {took:?}");
        let pids = read_pids(&dir.path().join("pids"));
        assert_eq!(pids.len(), 3);
        assert_group_dead(pids[0], &pids);
    }

    /// Every process of group `pgid`, zombies included.
    fn all_group_members(pgid: i32) -> Vec<(i32, String)> {
        let mut members = Vec::new();
        for entry in std::fs::read_dir("/proc").unwrap().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some((_, rest)) = stat.rsplit_once(')') else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            if fields.get(2) == Some(&pgid.to_string().as_str()) {
                members.push((pid, fields[0].to_owned()));
            }
        }
        members
    }

    #[tokio::test]
    async fn orphans_of_a_killed_group_are_reaped_not_left_as_zombies() {
        let dir = TempDir::new().unwrap();
        // The shell dies of SIGTERM alongside its children, which are then
        // reparented: to us, as the subreaper, and not to an init that may
        // never reap them (and whose zombies kept the group "existing").
        let mut spec = sh(
            &dir,
            "echo $$ > pids; sleep 30 & echo $! >> pids; sleep 30 & echo $! >> pids; wait",
        );
        spec.timeout = Some(Duration::from_millis(300));
        let out = run_process(spec, never()).await.unwrap();
        assert_eq!(out.exit, ExitKind::TimedOut);
        let pids = read_pids(&dir.path().join("pids"));
        assert_eq!(pids.len(), 3);
        assert_eq!(all_group_members(pids[0]), Vec::new());
        for pid in pids {
            assert_eq!(
                proc_state(pid),
                None,
                "pid {pid} is still in the process table"
            );
        }
    }

    #[tokio::test]
    async fn sigterm_ignoring_group_gets_sigkill_after_grace() {
        let dir = TempDir::new().unwrap();
        let mut spec = sh(
            &dir,
            "trap '' TERM; echo $$ > pids; sleep 30 & echo $! >> pids; sleep 30 & echo $! >> pids; wait",
        );
        spec.timeout = Some(Duration::from_millis(300));
        let start = Instant::now();
        let out = run_process(spec, never()).await.unwrap();
        let took = start.elapsed();
        assert_eq!(out.exit, ExitKind::TimedOut);
        // 300 ms timeout + 500 ms grace before SIGKILL.
        assert!(took >= Duration::from_millis(750), "took {took:?}");
        assert!(took < Duration::from_secs(4), "took {took:?}");
        let pids = read_pids(&dir.path().join("pids"));
        assert_eq!(pids.len(), 3);
        assert_group_dead(pids[0], &pids);
    }

    #[tokio::test]
    async fn heavy_output_with_timeout() {
        let dir = TempDir::new().unwrap();
        let mut spec = sh(&dir, "yes");
        spec.timeout = Some(Duration::from_millis(300));
        spec.capture_limit = 10;
        let out = run_process(spec, never()).await.unwrap();
        assert_eq!(out.exit, ExitKind::TimedOut);
        assert!(out.stdout_bytes > 0);
        assert_eq!(out.stdout, "y\ny\ny\ny\ny\n");
        assert!(out.stdout_truncated);
        let size = std::fs::metadata(dir.path().join("out")).unwrap().len();
        assert_eq!(size, out.stdout_bytes);
    }

    #[tokio::test]
    async fn cancel_kills_the_group() {
        let dir = TempDir::new().unwrap();
        let (tx, rx) = watch::channel(false);
        let canceller = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx.send(true).unwrap();
            tx
        });
        let start = Instant::now();
        let out = run_process(
            sh(&dir, "echo $$ > pids; sleep 30 & echo $! >> pids; wait"),
            rx,
        )
        .await
        .unwrap();
        assert_eq!(out.exit, ExitKind::Cancelled);
        assert!(start.elapsed() < Duration::from_secs(3));
        let pids = read_pids(&dir.path().join("pids"));
        assert_group_dead(pids[0], &pids);
        drop(canceller.await.unwrap());
    }

    #[tokio::test]
    async fn cancelled_before_start_does_not_spawn() {
        let dir = TempDir::new().unwrap();
        let (tx, rx) = watch::channel(true);
        let out = run_process(sh(&dir, "touch ran"), rx).await.unwrap();
        drop(tx);
        assert_eq!(out.exit, ExitKind::Cancelled);
        assert!(!dir.path().join("ran").exists());
        // Nothing was printed, so no output file was created.
        assert!(!dir.path().join("out").exists());
        assert!(!dir.path().join("err").exists());
    }

    #[tokio::test]
    async fn leader_exit_kills_background_children_holding_stdout() {
        let dir = TempDir::new().unwrap();
        let start = Instant::now();
        let out = run_process(
            sh(
                &dir,
                "echo $$ > pids; sleep 30 & echo $! >> pids; sleep 30 >/dev/null 2>&1 & echo $! >> pids; echo done",
            ),
            never(),
        )
        .await
        .unwrap();
        assert!(
            start.elapsed() < Duration::from_secs(3),
            "{:?}",
            start.elapsed()
        );
        assert_eq!(out.exit, ExitKind::Exited(0));
        assert_eq!(out.stdout, "done\n");
        let pids = read_pids(&dir.path().join("pids"));
        assert_eq!(pids.len(), 3);
        assert_group_dead(pids[0], &pids);
    }

    #[tokio::test]
    async fn escaped_process_holding_stdout_does_not_hang_the_run() {
        let dir = TempDir::new().unwrap();
        let start = Instant::now();
        // setsid moves the sleep out of our group; it still holds our stdout.
        // The leader waits until the escape has happened, or our group kill
        // could catch the child before it calls setsid.
        let out = run_process(
            sh(
                &dir,
                "setsid sh -c 'echo $$ > escaped; exec sleep 10' & \
                 while [ ! -s escaped ]; do sleep 0.01; done; echo hi",
            ),
            never(),
        )
        .await
        .unwrap();
        let took = start.elapsed();
        let escaped = read_pids(&dir.path().join("escaped"));
        let still_there = !is_dead(escaped[0]);
        // SAFETY: plain signal to a pid this test created.
        unsafe {
            libc::kill(escaped[0], libc::SIGKILL);
        }
        assert!(still_there, "the escaped process should be out of reach");
        assert_eq!(out.exit, ExitKind::Exited(0));
        assert_eq!(out.stdout, "hi\n");
        // The drain gives up after DRAIN_TIMEOUT instead of waiting 10 s.
        assert!(took >= DRAIN_TIMEOUT, "took {took:?}");
        assert!(
            took < DRAIN_TIMEOUT + Duration::from_secs(2),
            "took {took:?}"
        );
    }

    #[tokio::test]
    async fn dropping_the_future_kills_the_group() {
        let dir = TempDir::new().unwrap();
        let spec = sh(
            &dir,
            "echo $$ > pids; sleep 30 & echo $! >> pids; sleep 30 & echo $! >> pids; wait",
        );
        let res =
            tokio::time::timeout(Duration::from_millis(300), run_process(spec, never())).await;
        assert!(res.is_err(), "the run should still have been going");
        let pids = read_pids(&dir.path().join("pids"));
        assert_eq!(pids.len(), 3);
        // SIGKILL was sent on drop; give the kernel a moment to finish the kills.
        let give_up = Instant::now() + Duration::from_secs(2);
        while !pids.iter().all(|&p| is_dead(p)) && Instant::now() < give_up {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_group_dead(pids[0], &pids);
    }

    #[tokio::test]
    async fn large_output_streams_to_disk_with_bounded_capture() {
        let dir = TempDir::new().unwrap();
        let mut spec = sh(&dir, "head -c 50000000 /dev/zero");
        spec.capture_limit = 1024;
        let out = run_process(spec, never()).await.unwrap();
        assert!(out.success());
        assert_eq!(out.stdout_bytes, 50_000_000);
        assert_eq!(out.stdout.len(), 1024);
        assert!(out.stdout_truncated);
        let size = std::fs::metadata(dir.path().join("out")).unwrap().len();
        assert_eq!(size, 50_000_000);
    }

    #[tokio::test]
    async fn stderr_keeps_only_the_tail() {
        let dir = TempDir::new().unwrap();
        let out = run_process(
            sh(
                &dir,
                "head -c 100000 /dev/zero | tr '\\0' a >&2; printf END >&2",
            ),
            never(),
        )
        .await
        .unwrap();
        assert!(out.success());
        assert_eq!(out.stderr_tail.len(), STDERR_TAIL_BYTES);
        assert!(out.stderr_tail.ends_with("aaaEND"));
        let size = std::fs::metadata(dir.path().join("err")).unwrap().len();
        assert_eq!(size, 100_003);
    }

    #[tokio::test]
    async fn stdin_ignored_by_child_does_not_block() {
        let dir = TempDir::new().unwrap();
        let mut spec = sh(&dir, "true");
        spec.stdin = Some(vec![b'x'; 10 << 20]);
        let start = Instant::now();
        let out = run_process(spec, never()).await.unwrap();
        assert!(out.success());
        assert!(start.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn stdin_partially_read() {
        let dir = TempDir::new().unwrap();
        let mut spec = sh(&dir, "head -c 5");
        spec.stdin = Some(b"abcdefgh".repeat(1 << 20));
        let out = run_process(spec, never()).await.unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "abcde");
    }

    #[tokio::test]
    async fn stdin_is_fed_and_closed() {
        let dir = TempDir::new().unwrap();
        let mut spec = sh(&dir, "cat");
        spec.stdin = Some(b"line one\nline two\n".to_vec());
        let out = run_process(spec, never()).await.unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "line one\nline two\n");

        // A big stdin round-trips through cat while both sides stream.
        let mut spec = sh(&dir, "cat");
        let big: Vec<u8> = (0..(3u32 << 20)).map(|i| (i % 251) as u8).collect();
        spec.stdin = Some(big.clone());
        spec.capture_limit = 16;
        let out = run_process(spec, never()).await.unwrap();
        assert!(out.success());
        assert_eq!(out.stdout_bytes, big.len() as u64);
        assert_eq!(std::fs::read(dir.path().join("out")).unwrap(), big);
    }

    #[tokio::test]
    async fn no_stdin_means_dev_null() {
        let dir = TempDir::new().unwrap();
        let mut spec = sh(&dir, "cat; echo end");
        spec.timeout = Some(Duration::from_secs(5));
        let out = run_process(spec, never()).await.unwrap();
        assert!(out.success());
        assert_eq!(out.stdout, "end\n");
    }

    #[tokio::test]
    async fn environment_is_exactly_the_given_one() {
        let dir = TempDir::new().unwrap();
        // Variables the test process surely has must not reach the child.
        assert!(std::env::var_os("PATH").is_some());
        let mut spec = ProcessSpec::new(
            "env",
            Vec::new(),
            dir.path(),
            dir.path().join("out"),
            dir.path().join("err"),
        );
        spec.env = vec![
            ("PATH".to_owned(), path_var()),
            ("RUNBOOK_TEST_VAR".to_owned(), "hello world".to_owned()),
        ];
        let out = run_process(spec, never()).await.unwrap();
        assert!(out.success());
        let mut lines: Vec<&str> = out.stdout.lines().collect();
        lines.sort_unstable();
        assert_eq!(
            lines,
            vec![
                format!("PATH={}", path_var()).as_str(),
                "RUNBOOK_TEST_VAR=hello world"
            ]
        );
        assert!(!out.stdout.contains("HOME="));
        assert!(!out.stdout.contains("CARGO"));
    }

    #[tokio::test]
    async fn spawn_failure_names_the_program() {
        let dir = TempDir::new().unwrap();
        let spec = ProcessSpec::new(
            "runbook-no-such-program-xyz",
            vec!["arg".to_owned()],
            dir.path(),
            dir.path().join("out"),
            dir.path().join("err"),
        );
        let err = run_process(spec, never()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(
            err.to_string().contains("runbook-no-such-program-xyz"),
            "{err}"
        );
    }

    #[tokio::test]
    async fn missing_output_directory_is_an_error_naming_the_file() {
        let dir = TempDir::new().unwrap();
        let mut spec = sh(&dir, "echo hello");
        spec.stdout_path = dir.path().join("no/such/dir/out");
        let err = run_process(spec, never()).await.unwrap_err();
        assert!(err.to_string().contains("no/such/dir/out"), "{err}");
    }

    struct Upper;
    struct UpperChunk;
    impl OutputFilter for Upper {
        fn start(&self) -> Box<dyn ChunkFilter + Send> {
            Box::new(UpperChunk)
        }
    }
    impl ChunkFilter for UpperChunk {
        fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
            chunk.to_ascii_uppercase()
        }
        fn finish(&mut self) -> Vec<u8> {
            Vec::new()
        }
    }

    /// Replaces a token, holding back a possible token prefix at each chunk's end.
    struct Redact {
        token: &'static [u8],
        pushes: Arc<AtomicUsize>,
    }
    struct RedactChunk {
        token: &'static [u8],
        pending: Vec<u8>,
        pushes: Arc<AtomicUsize>,
    }
    impl OutputFilter for Redact {
        fn start(&self) -> Box<dyn ChunkFilter + Send> {
            Box::new(RedactChunk {
                token: self.token,
                pending: Vec::new(),
                pushes: Arc::clone(&self.pushes),
            })
        }
    }
    impl ChunkFilter for RedactChunk {
        fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
            self.pushes.fetch_add(1, Ordering::SeqCst);
            self.pending.extend_from_slice(chunk);
            let mut out = Vec::new();
            let mut i = 0;
            while i + self.token.len() <= self.pending.len() {
                if self.pending[i..].starts_with(self.token) {
                    out.extend_from_slice(b"[REDACTED]");
                    i += self.token.len();
                } else {
                    out.push(self.pending[i]);
                    i += 1;
                }
            }
            self.pending.drain(..i);
            out
        }
        fn finish(&mut self) -> Vec<u8> {
            std::mem::take(&mut self.pending)
        }
    }

    #[tokio::test]
    async fn filter_uppercases_file_and_capture() {
        let dir = TempDir::new().unwrap();
        let mut spec = sh(&dir, "printf 'hello world'; printf 'bad news' >&2");
        spec.filter = Some(Arc::new(Upper));
        let out = run_process(spec, never()).await.unwrap();
        assert_eq!(out.stdout, "HELLO WORLD");
        assert_eq!(out.stderr_tail, "BAD NEWS");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("out")).unwrap(),
            "HELLO WORLD"
        );
        assert_eq!(
            std::fs::read_to_string(dir.path().join("err")).unwrap(),
            "BAD NEWS"
        );
    }

    #[tokio::test]
    async fn filter_redacts_token_split_across_chunks() {
        let dir = TempDir::new().unwrap();
        let pushes = Arc::new(AtomicUsize::new(0));
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&lines);
        let mut spec = sh(
            &dir,
            "printf 'key=hunt'; printf 'x=hunt' >&2; sleep 0.3; \
             printf 'er2 ok\\nend hunter2'; printf 'er2\\n' >&2",
        );
        spec.filter = Some(Arc::new(Redact {
            token: b"hunter2",
            pushes: Arc::clone(&pushes),
        }));
        spec.echo = Some(EchoTarget::new("s", move |l: &str| {
            seen.lock().unwrap().push(l.to_owned())
        }));
        let out = run_process(spec, never()).await.unwrap();
        // At least two reads per stream: the token really was split.
        assert!(pushes.load(Ordering::SeqCst) >= 4);
        assert_eq!(out.stdout, "key=[REDACTED] ok\nend [REDACTED]");
        assert_eq!(out.stderr_tail, "x=[REDACTED]\n");
        let file = std::fs::read_to_string(dir.path().join("out")).unwrap();
        assert_eq!(file, out.stdout);
        assert_eq!(out.stdout_bytes, file.len() as u64);
        // Echo sees only redacted text, too.
        let mut echoed = lines.lock().unwrap().clone();
        echoed.sort_unstable();
        assert_eq!(
            echoed,
            vec![
                "[s stderr] x=[REDACTED]",
                "[s] end [REDACTED]",
                "[s] key=[REDACTED] ok"
            ]
        );
        assert!(!echoed.iter().any(|l| l.contains("hunter2")));
    }

    #[tokio::test]
    async fn echo_forwards_lines_with_label() {
        let dir = TempDir::new().unwrap();
        let lines = Arc::new(Mutex::new(Vec::<String>::new()));
        let seen = Arc::clone(&lines);
        let mut spec = sh(&dir, "printf 'one\\r\\ntwo\\n'; echo err >&2; printf tail");
        spec.echo = Some(EchoTarget::new("build", move |l: &str| {
            seen.lock().unwrap().push(l.to_owned())
        }));
        let out = run_process(spec, never()).await.unwrap();
        assert!(out.success());
        let echoed = lines.lock().unwrap().clone();
        let stdout_lines: Vec<&String> = echoed
            .iter()
            .filter(|l| l.starts_with("[build] "))
            .collect();
        assert_eq!(
            stdout_lines,
            vec!["[build] one", "[build] two", "[build] tail"]
        );
        assert!(echoed.contains(&"[build stderr] err".to_owned()));
        assert_eq!(echoed.len(), 4);
    }

    #[test]
    fn spec_debug_hides_env_values_and_stdin() {
        let mut spec = shell_spec("true", "/", "/tmp/o", "/tmp/e");
        spec.env = vec![("TOKEN".to_owned(), "s3cret-value".to_owned())];
        spec.stdin = Some(b"s3cret-stdin".to_vec());
        spec.echo = Some(EchoTarget::stderr("x"));
        let shown = format!("{spec:?}");
        assert!(shown.contains("TOKEN"));
        assert!(!shown.contains("s3cret"));
        assert_eq!(spec.program, "/bin/sh");
        assert_eq!(spec.args, vec!["-c", "true"]);
    }

    #[test]
    fn split_command_line_follows_shell_quoting() {
        assert_eq!(
            split_command_line(r#"claude -p "fix the bug" --model 'opus 4' a\ b"#).unwrap(),
            vec!["claude", "-p", "fix the bug", "--model", "opus 4", "a b"]
        );
        assert_eq!(split_command_line(""), Err(SplitError::Empty));
        assert_eq!(split_command_line("   \t "), Err(SplitError::Empty));
        assert!(matches!(
            split_command_line("echo 'unclosed"),
            Err(SplitError::Syntax(_))
        ));
    }

    #[test]
    fn exit_kind_display_and_success() {
        assert_eq!(ExitKind::Exited(2).to_string(), "exited with status 2");
        assert_eq!(ExitKind::Cancelled.to_string(), "cancelled");
        let outcome = ProcessOutcome {
            exit: ExitKind::TimedOut,
            stdout: String::new(),
            stdout_truncated: false,
            stdout_bytes: 0,
            stderr_tail: String::new(),
            duration: Duration::ZERO,
        };
        assert!(!outcome.success());
    }
}
