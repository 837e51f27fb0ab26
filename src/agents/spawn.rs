//! Starting an unsandboxed program without glibc's `posix_spawn`.
//!
//! A no-op shell step costs the interpreter about as much as the whole step costs
//! ninja, and the start of the process is a large part of it. glibc's `posix_spawn`
//! (what `std::process::Command` uses) maps a fresh stack for every child and
//! unmaps it afterwards; in a multi-threaded process that `munmap` interrupts every
//! other CPU the process ran on to flush its TLB. Its child also asks for the
//! disposition of every signal, one system call each, while the parent waits.
//!
//! [`spawn`] does the same `clone(CLONE_VM | CLONE_VFORK)` on a stack it keeps for
//! the next child, resets only the signals this program can have handlers for, and
//! gets a pidfd from `clone` itself, which it waits on through the tokio reactor.
//!
//! It only takes programs named by an absolute path (the shell that runs every `sh`
//! line); programs found on `PATH` and sandboxed ones, which need `pre_exec`, go
//! through `tokio::process::Command` as before. On a kernel without `CLONE_PIDFD`
//! (before 5.2) [`spawn`] says so once and is not tried again.

use std::ffi::{c_int, c_void, CString};
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::atomic::{AtomicBool, AtomicI32, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::io::unix::AsyncFd;
use tokio::net::unix::pipe;

/// Usable bytes of each child stack. The child only makes a handful of system calls
/// through libc before `execve`; glibc gives its own such child 32 KiB.
const STACK_BYTES: usize = 64 * 1024;

/// What to start.
pub struct Request<'a> {
    /// Absolute path of the program.
    pub program: &'a str,
    /// Arguments, without the program name.
    pub args: &'a [String],
    /// Working directory of the child.
    pub cwd: &'a Path,
    /// The child's whole environment.
    pub env: &'a [(String, String)],
    /// Whether stdin is a pipe (otherwise `/dev/null`).
    pub stdin_piped: bool,
}

/// A started child: its pid, a pidfd to wait on, and the parent's ends of its pipes.
pub struct Spawned {
    /// The child; waits on, kills and reaps it.
    pub child: RawChild,
    /// Writes the child's stdin, when it was asked for.
    pub stdin: Option<pipe::Sender>,
    /// Reads the child's stdout.
    pub stdout: pipe::Receiver,
    /// Reads the child's stderr.
    pub stderr: pipe::Receiver,
}

/// Set once `clone` has refused `CLONE_PIDFD`: the kernel is too old for this path.
static UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Starts `req`, or returns `Ok(None)` when this kernel cannot (the caller then uses
/// `tokio::process::Command`). Must be called inside a tokio runtime.
pub fn spawn(req: &Request<'_>) -> io::Result<Option<Spawned>> {
    if UNSUPPORTED.load(Ordering::Relaxed) {
        return Ok(None);
    }
    debug_assert!(req.program.starts_with('/'));
    reap_dropped();

    // Everything the child reads is built here: after `clone` it may not allocate.
    let program = c_string(req.program.as_bytes())?;
    let argv_owned = std::iter::once(req.program)
        .chain(req.args.iter().map(String::as_str))
        .map(|a| c_string(a.as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let envp_owned = req
        .env
        .iter()
        .map(|(k, v)| c_string(format!("{k}={v}").as_bytes()))
        .collect::<io::Result<Vec<_>>>()?;
    let argv = null_terminated(&argv_owned);
    let envp = null_terminated(&envp_owned);
    let cwd = c_string(req.cwd.as_os_str().as_bytes())?;

    let (stdout_r, stdout_w) = pipe_pair()?;
    let (stderr_r, stderr_w) = pipe_pair()?;
    let stdin = if req.stdin_piped {
        Some(pipe_pair()?)
    } else {
        None
    };
    let stdin_source = match &stdin {
        Some((read, _)) => read.as_raw_fd(),
        None => dev_null()?,
    };

    let plan = ChildPlan {
        program: program.as_ptr(),
        argv: argv.as_ptr(),
        envp: envp.as_ptr(),
        cwd: cwd.as_ptr(),
        fds: [stdin_source, stdout_w.as_raw_fd(), stderr_w.as_raw_fd()],
        failed: AtomicI32::new(0),
        errno: AtomicI32::new(0),
    };

    let stack = Stack::take()?;
    let mut pidfd: c_int = -1;
    let (pid, clone_error) = {
        // The child starts with every signal blocked, so that no handler of ours runs
        // in it (on our memory) before it has reset them.
        let mut all = empty_sigset();
        let mut old = empty_sigset();
        // SAFETY: both sets are valid, initialised sigset_t values.
        unsafe {
            libc::sigfillset(&mut all);
            libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut old);
        }
        // SAFETY: `child_main` only reads `plan` and the strings it points to, all of
        // which outlive this call: with CLONE_VFORK, `clone` returns only after the
        // child has called `execve` or `_exit`. The stack is ours alone until then.
        let pid = unsafe {
            libc::clone(
                child_main,
                stack.top(),
                libc::CLONE_VM | libc::CLONE_VFORK | libc::CLONE_PIDFD | libc::SIGCHLD,
                std::ptr::from_ref(&plan).cast_mut().cast::<c_void>(),
                &mut pidfd as *mut c_int,
            )
        };
        let clone_error = (pid < 0).then(io::Error::last_os_error);
        // SAFETY: restores the mask saved above.
        unsafe {
            libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut());
        }
        (pid, clone_error)
    };
    stack.give_back();

    if let Some(e) = clone_error {
        if matches!(e.raw_os_error(), Some(libc::EINVAL | libc::ENOSYS)) {
            UNSUPPORTED.store(true, Ordering::Relaxed);
            return Ok(None);
        }
        return Err(e);
    }
    // SAFETY: with CLONE_PIDFD a successful clone stores a new descriptor we own.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
    let mut child = RawChild {
        pid,
        pidfd: None,
        status: None,
    };

    let failed = plan.failed.load(Ordering::Acquire);
    if failed != 0 {
        // The child has already called `_exit`: reap it, report why.
        let _ = child.reap(0);
        let e = io::Error::from_raw_os_error(plan.errno.load(Ordering::Acquire));
        return Err(match Stage::from(failed) {
            Stage::Exec => e,
            stage => io::Error::new(e.kind(), format!("{}: {e}", stage.doing())),
        });
    }
    drop((stdout_w, stderr_w));
    // SAFETY: an OwnedFd always returns the same open descriptor, which it keeps
    // open until the AsyncFd drops it.
    let registered =
        unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) };
    child.pidfd = Some(registered.map_err(io::Error::from)?);
    let stdin = match stdin {
        Some((read, write)) => {
            drop(read);
            Some(pipe::Sender::from_owned_fd_unchecked(nonblocking(write)?)?)
        }
        None => None,
    };
    Ok(Some(Spawned {
        child,
        stdin,
        stdout: pipe::Receiver::from_owned_fd_unchecked(nonblocking(stdout_r)?)?,
        stderr: pipe::Receiver::from_owned_fd_unchecked(nonblocking(stderr_r)?)?,
    }))
}

/// A child started by [`spawn`]. Dropping it unreaped SIGKILLs it and reaps it later.
pub struct RawChild {
    pid: libc::pid_t,
    pidfd: Option<AsyncFd<OwnedFd>>,
    status: Option<ExitStatus>,
}

impl RawChild {
    /// The child's pid (also its process group id).
    pub fn id(&self) -> libc::pid_t {
        self.pid
    }

    /// Reaps the child if it has exited; its status stays available afterwards.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.reap(libc::WNOHANG)
    }

    /// Waits for the child to exit and reaps it.
    pub async fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.status {
                return Ok(status);
            }
            let Some(pidfd) = &self.pidfd else {
                // Only a failed start has no pidfd, and `spawn` reaped that child.
                return Err(io::Error::other("child has no pidfd"));
            };
            let mut ready = pidfd.readable().await?;
            if reap(self.pid, &mut self.status, libc::WNOHANG)?.is_none() {
                ready.clear_ready();
            }
        }
    }

    /// Sends SIGKILL to the child (not its group) unless it has been reaped.
    pub fn start_kill(&mut self) -> io::Result<()> {
        if self.status.is_some() {
            return Ok(());
        }
        // SAFETY: kill(2) takes plain integers. The pid is not reused while unreaped.
        if unsafe { libc::kill(self.pid, libc::SIGKILL) } != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    fn reap(&mut self, flags: c_int) -> io::Result<Option<ExitStatus>> {
        reap(self.pid, &mut self.status, flags)
    }
}

/// `waitpid(pid, flags)`, remembering the status: a child is reaped only once.
fn reap(
    pid: libc::pid_t,
    status: &mut Option<ExitStatus>,
    flags: c_int,
) -> io::Result<Option<ExitStatus>> {
    if let Some(status) = *status {
        return Ok(Some(status));
    }
    let mut raw: c_int = 0;
    loop {
        // SAFETY: waitpid writes only `raw`.
        let rc = unsafe { libc::waitpid(pid, &mut raw, flags) };
        if rc == pid {
            return Ok(Some(*status.insert(ExitStatus::from_raw(raw))));
        }
        if rc == 0 {
            return Ok(None);
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

impl Drop for RawChild {
    fn drop(&mut self) {
        if self.status.is_some() {
            return;
        }
        let _ = self.start_kill();
        if !matches!(self.reap(libc::WNOHANG), Ok(Some(_))) {
            // Not dead yet a microsecond after SIGKILL: the next spawn reaps it.
            if let Ok(mut dropped) = DROPPED.lock() {
                dropped.push(self.pid);
            }
        }
    }
}

/// Children dropped before they could be reaped (see [`RawChild`]'s `Drop`).
static DROPPED: Mutex<Vec<libc::pid_t>> = Mutex::new(Vec::new());

/// Reaps the dropped children that have died since.
fn reap_dropped() {
    let Ok(mut dropped) = DROPPED.lock() else {
        return;
    };
    dropped.retain(|&pid| {
        let mut raw = 0;
        // SAFETY: waitpid writes only `raw`; the pid is our unreaped child.
        unsafe { libc::waitpid(pid, &mut raw, libc::WNOHANG) == 0 }
    });
}

/// Which step of the child's set-up failed, stored in [`ChildPlan::failed`].
#[derive(Clone, Copy)]
enum Stage {
    Group = 1,
    Chdir = 2,
    Redirect = 3,
    Exec = 4,
}

impl Stage {
    fn from(code: i32) -> Self {
        match code {
            1 => Stage::Group,
            2 => Stage::Chdir,
            3 => Stage::Redirect,
            _ => Stage::Exec,
        }
    }

    fn doing(self) -> &'static str {
        match self {
            Stage::Group => "cannot make the child a process group leader",
            Stage::Chdir => "cannot enter the working directory",
            Stage::Redirect => "cannot connect the child's stdin/stdout/stderr",
            Stage::Exec => "cannot execute the program",
        }
    }
}

/// What the child needs, prepared by the parent. Shared memory: the child writes
/// `failed` and `errno`, which the parent reads once `clone` has returned.
#[repr(C)]
struct ChildPlan {
    program: *const libc::c_char,
    argv: *const *const libc::c_char,
    envp: *const *const libc::c_char,
    cwd: *const libc::c_char,
    fds: [RawFd; 3],
    failed: AtomicI32,
    errno: AtomicI32,
}

/// Signals this program may have handlers for (tokio's signal streams, std's
/// SIGPIPE = ignore). A handler must not run in the child, which shares our memory
/// until `execve`; SIGPIPE goes back to its default as every Rust child's does. Other
/// ignored signals stay ignored, as `execve` and `posix_spawn` keep them.
const RESET_SIGNALS: [c_int; 10] = [
    libc::SIGPIPE,
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGCHLD,
    libc::SIGWINCH,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
];

/// The child, between `clone` and `execve`. It shares the parent's memory, so it
/// only makes system calls on memory prepared by the parent, never allocates,
/// locks or unwinds, and leaves through `execve` or `_exit`.
extern "C" fn child_main(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the `ChildPlan` the parent keeps alive until we exec or exit.
    let plan = unsafe { &*arg.cast::<ChildPlan>() };
    // SAFETY: all pointers come from the plan, and every structure is initialised.
    unsafe {
        if libc::setpgid(0, 0) != 0 {
            fail(plan, Stage::Group);
        }
        for signal in RESET_SIGNALS {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(signal, std::ptr::null(), &mut current) != 0 {
                continue;
            }
            let handled = current.sa_sigaction != libc::SIG_DFL
                && (current.sa_sigaction != libc::SIG_IGN || signal == libc::SIGPIPE);
            if handled {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
            }
        }
        let mut none: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut none);
        libc::sigprocmask(libc::SIG_SETMASK, &none, std::ptr::null_mut());

        if libc::chdir(plan.cwd) != 0 {
            fail(plan, Stage::Chdir);
        }
        // Sources are never 0..=2 (see `above_stdio`), so no dup2 clobbers another.
        for (target, &source) in plan.fds.iter().enumerate() {
            if libc::dup2(source, target as c_int) < 0 {
                fail(plan, Stage::Redirect);
            }
        }
        libc::execve(plan.program, plan.argv, plan.envp);
        fail(plan, Stage::Exec)
    }
}

/// Records the failing stage and errno for the parent, then exits the child.
fn fail(plan: &ChildPlan, stage: Stage) -> ! {
    // SAFETY: __errno_location returns this thread's errno slot.
    let errno = unsafe { *libc::__errno_location() };
    plan.errno.store(errno, Ordering::Release);
    plan.failed.store(stage as i32, Ordering::Release);
    // SAFETY: _exit ends the child without running anything of the parent's.
    unsafe { libc::_exit(127) }
}

/// A child stack, mapped once with a guard page below it and kept for reuse.
struct Stack {
    base: *mut c_void,
}

// SAFETY: a Stack is plain memory handed from thread to thread, used by one child at a time.
unsafe impl Send for Stack {}

/// Stacks not in use. One per child being started at the same moment.
static STACKS: Mutex<Vec<Stack>> = Mutex::new(Vec::new());

impl Stack {
    fn page() -> usize {
        // SAFETY: sysconf takes a plain integer.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(page).unwrap_or(4096)
    }

    fn take() -> io::Result<Stack> {
        if let Some(stack) = STACKS.lock().ok().and_then(|mut s| s.pop()) {
            return Ok(stack);
        }
        let guard = Self::page();
        // SAFETY: an anonymous private mapping; the result is checked.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                guard + STACK_BYTES,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the lowest page of the mapping just made. An overflow faults there
        // instead of writing over whatever lies below.
        if unsafe { libc::mprotect(base, guard, libc::PROT_NONE) } != 0 {
            let e = io::Error::last_os_error();
            // SAFETY: unmapping the mapping made above, which nothing uses.
            unsafe { libc::munmap(base, guard + STACK_BYTES) };
            return Err(e);
        }
        Ok(Stack { base })
    }

    /// The highest address, 16-byte aligned: stacks grow down.
    fn top(&self) -> *mut c_void {
        let end = self.base as usize + Self::page() + STACK_BYTES;
        (end & !15) as *mut c_void
    }

    fn give_back(self) {
        if let Ok(mut stacks) = STACKS.lock() {
            stacks.push(self);
        }
        // A poisoned pool leaks this stack: nothing else can go wrong with it.
    }
}

/// `/dev/null` for reading, opened once (above fd 2) and kept open.
fn dev_null() -> io::Result<RawFd> {
    static NULL: OnceLock<OwnedFd> = OnceLock::new();
    if let Some(fd) = NULL.get() {
        return Ok(fd.as_raw_fd());
    }
    let file = std::fs::File::open("/dev/null")?;
    let fd = above_stdio(OwnedFd::from(file))?;
    Ok(NULL.get_or_init(|| fd).as_raw_fd())
}

/// A close-on-exec pipe, both ends above fd 2: (read, write).
fn pipe_pair() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as c_int; 2];
    // SAFETY: pipe2 writes two descriptors into `fds`; the result is checked.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: both descriptors are new and ours.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    Ok((above_stdio(read)?, above_stdio(write)?))
}

/// Moves a descriptor that landed on 0, 1 or 2 above 2, so that redirecting the child's
/// stdio cannot clobber it. Rust's start-up code opens `/dev/null` on any of the three
/// that is closed, so this only matters if one is closed later on.
fn above_stdio(fd: OwnedFd) -> io::Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: F_DUPFD_CLOEXEC duplicates a descriptor we own; the result is checked.
    let moved = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if moved < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a new descriptor, ours.
    Ok(unsafe { OwnedFd::from_raw_fd(moved) })
}

/// Makes our end of a pipe non-blocking, as the tokio reactor needs.
fn nonblocking(fd: OwnedFd) -> io::Result<OwnedFd> {
    // SAFETY: fcntl on a descriptor we own; the result is checked. Pipe ends are
    // opened with no status flags but O_CLOEXEC, which F_SETFL does not touch.
    if unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_SETFL, libc::O_NONBLOCK) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn c_string(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "`{}` contains a NUL byte",
                String::from_utf8_lossy(bytes).escape_debug()
            ),
        )
    })
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings
        .iter()
        .map(|s| s.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect()
}

fn empty_sigset() -> libc::sigset_t {
    // SAFETY: an all-zero sigset_t is the empty set on Linux.
    unsafe { std::mem::zeroed() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn request<'a>(args: &'a [String], env: &'a [(String, String)], cwd: &'a Path) -> Request<'a> {
        Request {
            program: "/bin/sh",
            args,
            cwd,
            env,
            stdin_piped: true,
        }
    }

    async fn run(script: &str, env: &[(String, String)], stdin: &[u8]) -> (ExitStatus, String) {
        let args = vec!["-c".to_owned(), script.to_owned()];
        let cwd = std::env::temp_dir();
        let mut spawned = spawn(&request(&args, env, &cwd)).unwrap().unwrap();
        let mut input = spawned.stdin.take().unwrap();
        input.write_all(stdin).await.unwrap();
        drop(input);
        let mut out = String::new();
        spawned.stdout.read_to_string(&mut out).await.unwrap();
        (spawned.child.wait().await.unwrap(), out)
    }

    #[tokio::test]
    async fn the_child_gets_its_arguments_environment_stdin_and_exit_code() {
        let env = vec![("ONLY".to_owned(), "this".to_owned())];
        let (status, out) = run("cat; env; exit 7", &env, b"fed\n").await;
        assert_eq!(status.code(), Some(7));
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], "fed");
        assert!(lines.contains(&"ONLY=this"), "{out}");
        // Only the variables given (plus what sh itself sets) reach the child.
        assert!(!out.contains("HOME="), "{out}");
    }

    /// The hex mask on the `field:` line of a /proc status file.
    fn signal_mask(status: &str, field: &str) -> u64 {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        u64::from_str_radix(line[field.len()..].trim(), 16).unwrap()
    }

    #[tokio::test]
    async fn the_child_leads_its_group_with_no_signal_blocked_and_sigpipe_default() {
        let (status, out) = run(
            "cut -d' ' -f1,5 /proc/$$/stat; cat /proc/$$/status",
            &[],
            b"",
        )
        .await;
        assert!(status.success(), "{out}");
        let (ids, child) = out.split_once('\n').unwrap();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        assert_eq!(ids[0], ids[1], "pid and pgid differ: {out}");
        assert_eq!(signal_mask(child, "SigBlk:"), 0, "{child}");
        // Rust ignores SIGPIPE; the child gets the default back. Signals ignored
        // when we were started stay ignored, as with any exec.
        let ours = std::fs::read_to_string("/proc/self/status").unwrap();
        let sigpipe = 1 << (libc::SIGPIPE - 1);
        assert_ne!(signal_mask(&ours, "SigIgn:") & sigpipe, 0);
        assert_eq!(
            signal_mask(child, "SigIgn:"),
            signal_mask(&ours, "SigIgn:") & !sigpipe,
            "{child}"
        );
    }

    #[tokio::test]
    async fn a_missing_program_or_directory_is_an_error_and_leaves_no_child() {
        let args: Vec<String> = Vec::new();
        let tmp = std::env::temp_dir();
        let missing = Request {
            program: "/nonexistent/program",
            args: &args,
            cwd: &tmp,
            env: &[],
            stdin_piped: false,
        };
        let err = spawn(&missing).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);

        let nowhere = tmp.join("runbook-spawn-test-no-such-dir");
        let bad_cwd = Request {
            program: "/bin/sh",
            cwd: &nowhere,
            ..missing
        };
        let err = spawn(&bad_cwd).err().unwrap();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
        assert!(err.to_string().contains("working directory"), "{err}");
    }

    #[tokio::test]
    async fn a_dropped_child_is_killed_and_reaped() {
        let args = vec!["-c".to_owned(), "sleep 30".to_owned()];
        let cwd = std::env::temp_dir();
        let spawned = spawn(&request(&args, &[], &cwd)).unwrap().unwrap();
        let pid = spawned.child.id();
        drop(spawned);
        for _ in 0..200 {
            reap_dropped();
            // SAFETY: kill with signal 0 only checks that the process exists.
            if unsafe { libc::kill(pid, 0) } != 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("pid {pid} outlived its RawChild");
    }
}
