//! The OS sandbox every agent and shell process runs in: a user and mount namespace in
//! which only the writable roots are writable (and the protected paths inside them are
//! not), a network namespace without interfaces when the network is off, Landlock for
//! what may be read, written and run and for TCP ports, and a seccomp filter for the
//! sockets and system calls Landlock does not see. Everything is prepared in the parent;
//! the child only makes system calls (`child.rs`).

mod child;
mod landlock;
pub mod policy;
pub mod proxy;
mod seccomp;

pub use child::Prepared;
use seccomp::{Filter, Sockets};
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

/// Directories every sandboxed program may read and run from: without them nothing runs.
pub const SYSTEM_DIRS: &[&str] = &[
    "/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc", "/opt", "/proc", "/sys",
];

/// Devices every sandboxed program may read and write.
pub const DEVICES: &[&str] = &[
    "/dev/null",
    "/dev/zero",
    "/dev/full",
    "/dev/random",
    "/dev/urandom",
];

/// Whether a run confines its processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Every agent and shell process runs in the sandbox; a run that cannot have it does
    /// not start.
    On,
    /// No OS sandbox (`--sandbox off`): only the write check before commit holds.
    Off,
}

impl Mode {
    /// The word of `--sandbox`.
    pub fn word(self) -> &'static str {
        match self {
            Mode::On => "on",
            Mode::Off => "off",
        }
    }
}

/// Network access of one process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Net {
    /// No network: a namespace without interfaces, unix sockets only.
    Off,
    /// Only these hosts, through the allowlist proxy (the only address the step's
    /// network namespace has).
    Hosts(Vec<String>),
    /// Unrestricted.
    On,
}

/// What one process may touch, as paths.
#[derive(Debug, Clone)]
pub struct Policy {
    /// Its working directory.
    pub cwd: PathBuf,
    /// Readable (and runnable), beyond [`SYSTEM_DIRS`].
    pub read: Vec<PathBuf>,
    /// Writable: directories (and everything beneath) or files.
    pub write: Vec<PathBuf>,
    /// Read-only even where they lie inside a writable root.
    pub protected: Vec<PathBuf>,
    /// Its network.
    pub network: Net,
    /// The user's home, where sockets (gpg-agent, ssh) are looked for too.
    pub home: Option<PathBuf>,
    /// Where the allowlist proxy logs each request it admits or denies.
    pub network_log: Option<PathBuf>,
    /// A writable directory of the process's own to mount over `/dev/shm`.
    pub shm: Option<PathBuf>,
}

/// What the kernel offers, probed once per process.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct Support {
    /// The Landlock ABI version.
    pub landlock_abi: u32,
    /// The highest capability number, to drop them all.
    #[serde(skip)]
    last_cap: libc::c_ulong,
}

impl Support {
    /// One line for records and `runbook show`.
    pub fn describe(&self) -> String {
        format!(
            "namespaces (user, mount, net) + Landlock ABI {} + seccomp",
            self.landlock_abi
        )
    }
}

/// Why the sandbox cannot confine a process.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The kernel or machine lacks a layer.
    #[error("the OS sandbox is unavailable: {missing}")]
    Unavailable {
        /// What is missing, and what would provide it.
        missing: String,
    },
    /// Preparing one process's sandbox failed.
    #[error("cannot prepare the sandbox: {0}")]
    Prepare(#[from] io::Error),
}

impl SandboxError {
    /// How to go on without it, for the help line.
    pub const OPT_OUT: &'static str = "run with `--sandbox off` to go on without the OS sandbox \
         (recorded in the run's records and shown by `runbook show`); only the write check \
         before each commit will hold";
}

/// Checks, once per process, that every layer can be set up, by starting a program in a
/// full sandbox. Fails closed, naming the layer that is missing.
pub fn probe() -> Result<Support, SandboxError> {
    static PROBED: OnceLock<Result<Support, String>> = OnceLock::new();
    PROBED
        .get_or_init(|| probe_uncached().map_err(|e| e.to_string()))
        .clone()
        .map_err(|missing| SandboxError::Unavailable { missing })
}

fn probe_uncached() -> Result<Support, String> {
    if !cfg!(any(target_arch = "x86_64", target_arch = "aarch64")) {
        return Err("the sandbox supports Linux on x86_64 and aarch64 only".into());
    }
    let abi = landlock::abi();
    if abi == 0 {
        return Err(
            "Landlock is not enabled in this kernel (it needs Linux 5.13 or later with \
             `landlock` in the `lsm=` boot parameter or CONFIG_LSM)"
                .into(),
        );
    }
    // SAFETY: plain prctl query.
    if unsafe { libc::prctl(libc::PR_GET_SECCOMP, 0, 0, 0, 0) } < 0 {
        return Err("seccomp filters are not available (CONFIG_SECCOMP_FILTER)".into());
    }
    let support = Support {
        landlock_abi: abi,
        last_cap: last_cap(),
    };
    let dir = std::env::temp_dir();
    let policy = Policy {
        cwd: dir.clone(),
        read: vec![],
        write: vec![dir],
        protected: vec![],
        network: Net::Off,
        home: None,
        network_log: None,
        shm: None,
    };
    let full = Prepared::new(&policy, &support).map_err(|e| e.to_string())?;
    if let Err(e) = trial(full) {
        // Find the layer to blame by trying the namespaces alone.
        let mut ns_only = Prepared::new(&policy, &support).map_err(|e| e.to_string())?;
        ns_only.ruleset = None;
        ns_only.filter = Filter::allow_all();
        if let Err(ns) = trial(ns_only) {
            return Err(format!(
                "cannot create user, mount and network namespaces ({ns}); unprivileged user \
                 namespaces may be disabled (sysctl kernel.unprivileged_userns_clone, \
                 user.max_user_namespaces, or AppArmor's \
                 kernel.apparmor_restrict_unprivileged_userns)"
            ));
        }
        return Err(format!("cannot apply Landlock and seccomp ({e})"));
    }
    Ok(support)
}

/// Starts `/bin/sh -c :` inside `prepared`.
fn trial(prepared: Prepared) -> io::Result<()> {
    use std::os::unix::process::CommandExt;
    let mut cmd = std::process::Command::new("/bin/sh");
    cmd.args(["-c", ":"])
        .env_clear()
        .current_dir(std::env::temp_dir())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    // SAFETY: `enter` only makes system calls on memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || prepared.enter());
    }
    let status = cmd.status()?;
    if status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "the test program ended with {status}"
        )))
    }
}

fn last_cap() -> libc::c_ulong {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(63)
}

/// Where other programs keep their unix sockets, and how deep to look.
const SOCKET_DIRS: &[(&str, usize)] = &[("/tmp", 3), ("/var/tmp", 2), ("/run", 4), ("/dev/shm", 2)];
/// The same under the user's home (ssh control masters, gpg-agent, Docker Desktop).
const HOME_SOCKET_DIRS: &[(&str, usize)] = &[(".ssh", 2), (".gnupg", 2), (".docker/run", 1)];

/// The unix sockets outside `roots` that a sandboxed process could connect to.
fn foreign_sockets(roots: &[&Path], home: Option<&Path>) -> Vec<PathBuf> {
    all_sockets(home)
        .iter()
        .filter(|p| !roots.iter().any(|r| p.starts_with(r)))
        .cloned()
        .collect()
}

/// Every socket in the places other programs keep them. Looked up at most once a
/// second: a run starting many processes at once must not walk /tmp for each.
fn all_sockets(home: Option<&Path>) -> Arc<Vec<PathBuf>> {
    use std::sync::Mutex;
    use std::time::{Duration, Instant};
    type Cache = Option<(Instant, Option<PathBuf>, Arc<Vec<PathBuf>>)>;
    static CACHE: Mutex<Cache> = Mutex::new(None);
    let mut cache = CACHE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((at, h, found)) = &*cache {
        if at.elapsed() < Duration::from_secs(1) && h.as_deref() == home {
            return found.clone();
        }
    }
    let mut out = Vec::new();
    // A bound on the work, whatever lies in /tmp.
    let mut budget = 20_000;
    for (dir, depth) in SOCKET_DIRS {
        walk_sockets(Path::new(dir), *depth, &mut budget, &mut out);
    }
    if let Some(home) = home {
        for (dir, depth) in HOME_SOCKET_DIRS {
            walk_sockets(&home.join(dir), *depth, &mut budget, &mut out);
        }
    }
    let found = Arc::new(out);
    *cache = Some((Instant::now(), home.map(Path::to_path_buf), found.clone()));
    found
}

fn walk_sockets(dir: &Path, depth: usize, budget: &mut usize, out: &mut Vec<PathBuf>) {
    use std::os::unix::fs::FileTypeExt;
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if *budget == 0 {
            return;
        }
        *budget -= 1;
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_socket() {
            out.push(entry.path());
        } else if kind.is_dir() && depth > 1 {
            walk_sockets(&entry.path(), depth - 1, budget, out);
        }
    }
}

/// A close-on-exec datagram socket pair: (parent's end, child's end).
fn socket_pair() -> io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use std::os::fd::FromRawFd;
    let mut fds = [0; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } < 0
    {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: just created, owned by nobody else.
    Ok(unsafe {
        (
            std::os::fd::OwnedFd::from_raw_fd(fds[0]),
            std::os::fd::OwnedFd::from_raw_fd(fds[1]),
        )
    })
}

/// Receives the descriptor a child sent (already there: the child sends before exec).
fn receive_fd(from: &std::os::fd::OwnedFd) -> io::Result<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_mut_ptr().cast(),
        iov_len: 1,
    };
    let mut control = [0u64; 4];
    // SAFETY: the message points at live stack buffers of the sizes given.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        let n = libc::recvmsg(
            from.as_raw_fd(),
            &mut msg,
            libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC,
        );
        if n < 0 {
            return Err(io::Error::other(format!(
                "the sandboxed process handed over no proxy socket: {}",
                io::Error::last_os_error()
            )));
        }
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if cmsg.is_null()
            || (*cmsg).cmsg_level != libc::SOL_SOCKET
            || (*cmsg).cmsg_type != libc::SCM_RIGHTS
        {
            return Err(io::Error::other("the proxy hand-over carried no socket"));
        }
        let mut fd: libc::c_int = -1;
        std::ptr::copy_nonoverlapping(
            libc::CMSG_DATA(cmsg),
            (&mut fd as *mut libc::c_int).cast::<u8>(),
            4,
        );
        Ok(std::os::fd::OwnedFd::from_raw_fd(fd))
    }
}

/// The first path the step needs (its working directory, then its roots) that the
/// private `/dev/shm` mounted over the real one would hide.
fn hidden_by_private_shm(policy: &Policy) -> Option<&Path> {
    policy.shm.as_ref()?;
    std::iter::once(&policy.cwd)
        .chain(&policy.write)
        .chain(&policy.read)
        .map(PathBuf::as_path)
        .find(|p| p.starts_with("/dev/shm"))
}

fn cstring(path: &Path) -> io::Result<CString> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in a path"))
}

impl Prepared {
    /// Builds every layer for a process confined to `policy`.
    pub fn new(policy: &Policy, support: &Support) -> Result<Prepared, SandboxError> {
        if let Some(hidden) = hidden_by_private_shm(policy) {
            return Err(SandboxError::Prepare(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "{} is under /dev/shm, which the sandbox replaces with an empty \
                     directory of the step's own, so the step would not find it; move the \
                     project out of /dev/shm, or run with `--sandbox off`",
                    hidden.display()
                ),
            )));
        }
        let restrict = landlock::Restrict {
            tcp: policy.network != Net::On,
            scopes: true,
        };
        let mut rules = landlock::Ruleset::new(support.landlock_abi, restrict)?;
        for dir in SYSTEM_DIRS {
            rules.allow(Path::new(dir), landlock::READ)?;
        }
        for dev in DEVICES {
            rules.allow(
                Path::new(dev),
                landlock::READ_FILE | landlock::WRITE_FILE | landlock::TRUNCATE,
            )?;
        }
        for p in &policy.read {
            rules.allow(p, landlock::READ)?;
        }
        for p in &policy.write {
            rules.allow(p, landlock::WRITE)?;
        }
        // Mounted over /dev/shm, its paths no longer pass through the writable root that
        // holds it (Landlock follows mounts): it needs a rule of its own.
        let shm = match &policy.shm {
            Some(dir) if Path::new("/dev/shm").is_dir() => {
                std::fs::create_dir_all(dir)?;
                rules.allow(dir, landlock::WRITE)?;
                Some(cstring(dir)?)
            }
            _ => None,
        };
        let mut proxy = None;
        let mut hand_over = None;
        if let Net::Hosts(hosts) = &policy.network {
            if support.landlock_abi >= 4 {
                rules.allow_connect(proxy::PORT)?;
            }
            let (receiver, sender) = socket_pair()?;
            proxy = Some(child::ProxyParent {
                receiver,
                rules: Arc::new(proxy::Allowlist::new(
                    hosts.clone(),
                    policy.network_log.clone(),
                )),
            });
            hand_over = Some(child::ProxyHandOver {
                sender,
                port: proxy::PORT,
            });
        }

        let mut flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNS;
        if policy.network != Net::On {
            flags |= libc::CLONE_NEWNET;
        }
        // SAFETY: plain getters.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mut writable: Vec<PathBuf> = policy
            .write
            .iter()
            .filter(|p| p.exists())
            .cloned()
            .collect();
        // Outer roots first: an inner one is mounted on top of what they bring along.
        writable.sort_by_key(|p| p.components().count());
        let protected = policy
            .protected
            .iter()
            .filter(|p| p.exists() && writable.iter().any(|w| p.starts_with(w) && *p != w))
            .map(|p| cstring(p))
            .collect::<io::Result<Vec<_>>>()?;
        let mut roots: Vec<&Path> = writable.iter().map(PathBuf::as_path).collect();
        roots.extend(policy.read.iter().map(PathBuf::as_path));
        let masked_sockets = foreign_sockets(&roots, policy.home.as_deref())
            .iter()
            .map(|p| cstring(p))
            .collect::<io::Result<Vec<_>>>()?;
        let namespaces = child::Namespaces {
            flags,
            uid_map: format!("{uid} {uid} 1\n").into_bytes(),
            gid_map: format!("{gid} {gid} 1\n").into_bytes(),
            writable: writable
                .iter()
                .map(|p| cstring(p))
                .collect::<io::Result<Vec<_>>>()?,
            protected,
            masked_sockets,
            cwd: cstring(&policy.cwd)?,
            proxy: hand_over,
            shm,
        };
        Ok(Prepared {
            namespaces: Some(namespaces),
            ruleset: Some(rules.into_fd()),
            filter: Filter::new(match policy.network {
                Net::Off => Sockets::Unix,
                Net::Hosts(_) => Sockets::UnixAndTcp,
                Net::On => Sockets::Any,
            }),
            last_cap: support.last_cap,
            proxy,
        })
    }

    /// The same without the namespace layer: Landlock and seccomp alone, to measure what
    /// each layer costs (`benches/sandbox.rs`). Not a mode a run uses.
    pub fn without_namespaces(mut self) -> Prepared {
        self.namespaces = None;
        self
    }

    /// After a successful spawn: the listener the child made for the allowlist proxy,
    /// and the rules to serve it with; `None` for a step without a host list.
    pub fn take_proxy_listener(
        &self,
    ) -> io::Result<Option<(std::net::TcpListener, Arc<proxy::Allowlist>)>> {
        let Some(p) = &self.proxy else {
            return Ok(None);
        };
        let fd = receive_fd(&p.receiver)?;
        Ok(Some((std::net::TcpListener::from(fd), p.rules.clone())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    /// Runs `script` under `sh -c` in a sandbox of `policy`; returns (success, stderr).
    fn sandboxed(policy: &Policy, script: &str) -> (bool, String) {
        let support = probe().expect("the sandbox must be available on the test machine");
        let prepared = Arc::new(Prepared::new(policy, &support).unwrap());
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.args(["-c", script])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .current_dir(&policy.cwd);
        // SAFETY: `enter` only makes system calls on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || prepared.enter());
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn policy(work: &Path) -> Policy {
        Policy {
            cwd: work.to_path_buf(),
            read: vec![],
            write: vec![work.to_path_buf()],
            protected: vec![work.join(".git")],
            network: Net::Off,
            home: None,
            network_log: None,
            shm: None,
        }
    }

    #[test]
    fn writes_inside_succeed_and_outside_fail() {
        let d = tempfile::tempdir().unwrap();
        let work = d.path().join("work");
        let outside = d.path().join("outside");
        std::fs::create_dir_all(work.join(".git")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("f"), "x").unwrap();
        let p = policy(&work);
        let (ok, err) = sandboxed(
            &p,
            "echo hi > a && mkdir -p d/e && echo x > d/e/f && mv a b && rm b && cat d/e/f",
        );
        assert!(ok, "{err}");
        for attack in [
            format!("echo x > {}/new", outside.display()),
            format!("echo x >> {}/f", outside.display()),
            format!("chmod 777 {}/f", outside.display()),
            format!("touch {}/f", outside.display()),
            format!("cat {}/f", outside.display()),
            format!("ln -s /etc {}/l", outside.display()),
            "echo x > .git/config".to_string(),
            "mkdir .git/hooks".to_string(),
        ] {
            let (ok, _) = sandboxed(&p, &attack);
            assert!(!ok, "not blocked: {attack}");
        }
        assert_eq!(std::fs::read_to_string(outside.join("f")).unwrap(), "x");
    }

    #[test]
    fn network_off_blocks_inet_sockets() {
        let d = tempfile::tempdir().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let p = policy(d.path());
        let script = format!("exec 3<>/dev/tcp/127.0.0.1/{port}");
        // dash has no /dev/tcp; bash does, when present.
        if Path::new("/bin/bash").exists() {
            let (ok, _) = sandboxed(&p, &format!("/bin/bash -c '{script}'"));
            assert!(!ok);
        }
        let mut on = p.clone();
        on.network = Net::On;
        if Path::new("/bin/bash").exists() {
            let (ok, err) = sandboxed(&on, &format!("/bin/bash -c '{script}'"));
            assert!(ok, "{err}");
        }
    }
}
