//! Landlock, through its three system calls: the ruleset is built in the parent (where
//! allocating and opening paths is safe) and only `landlock_restrict_self` runs in the
//! child, between fork and exec.

use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Run a file.
pub const EXECUTE: u64 = 1 << 0;
/// Open a file for writing.
pub const WRITE_FILE: u64 = 1 << 1;
/// Open a file for reading.
pub const READ_FILE: u64 = 1 << 2;
/// List a directory.
pub const READ_DIR: u64 = 1 << 3;
const REMOVE_DIR: u64 = 1 << 4;
const REMOVE_FILE: u64 = 1 << 5;
// 1 << 6 (MAKE_CHAR) and 1 << 11 (MAKE_BLOCK) are never granted: device nodes.
const MAKE_DIR: u64 = 1 << 7;
const MAKE_REG: u64 = 1 << 8;
const MAKE_SOCK: u64 = 1 << 9;
const MAKE_FIFO: u64 = 1 << 10;
const MAKE_SYM: u64 = 1 << 12;
const REFER: u64 = 1 << 13;
/// Truncate a file (ABI 3).
pub const TRUNCATE: u64 = 1 << 14;
/// ioctl on a device (ABI 5).
pub const IOCTL_DEV: u64 = 1 << 15;

/// Everything a file (not a directory) rule may grant.
const FILE_RIGHTS: u64 = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV;

/// Reading and running.
pub const READ: u64 = EXECUTE | READ_FILE | READ_DIR;
/// Everything, for writable roots (block and character devices excepted).
pub const WRITE: u64 = READ
    | WRITE_FILE
    | REMOVE_DIR
    | REMOVE_FILE
    | MAKE_DIR
    | MAKE_REG
    | MAKE_SOCK
    | MAKE_FIFO
    | MAKE_SYM
    | REFER
    | TRUNCATE;

const BIND_TCP: u64 = 1 << 0;
const CONNECT_TCP: u64 = 1 << 1;
const SCOPE_ABSTRACT_UNIX_SOCKET: u64 = 1 << 0;
const SCOPE_SIGNAL: u64 = 1 << 1;

const CREATE_RULESET_VERSION: u32 = 1 << 0;
const RULE_PATH_BENEATH: libc::c_int = 1;
const RULE_NET_PORT: libc::c_int = 2;

#[repr(C)]
struct RulesetAttr {
    handled_access_fs: u64,
    handled_access_net: u64,
    scoped: u64,
}

#[repr(C, packed)]
struct PathBeneathAttr {
    allowed_access: u64,
    parent_fd: i32,
}

#[repr(C)]
struct NetPortAttr {
    allowed_access: u64,
    port: u64,
}

/// The Landlock ABI version the kernel offers (0: none).
pub fn abi() -> u32 {
    // SAFETY: querying the version takes no pointer and creates nothing.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<RulesetAttr>(),
            0usize,
            CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(v).unwrap_or(0)
}

/// The filesystem rights an ABI version knows.
fn fs_rights(abi: u32) -> u64 {
    let mut all = (1 << 13) - 1; // ABI 1: EXECUTE..=MAKE_SYM
    if abi >= 2 {
        all |= REFER;
    }
    if abi >= 3 {
        all |= TRUNCATE;
    }
    if abi >= 5 {
        all |= IOCTL_DEV;
    }
    all
}

/// A ruleset being built: what it handles (denies unless a rule allows it) and its rules.
pub struct Ruleset {
    fd: OwnedFd,
    fs: u64,
}

/// What a ruleset restricts beyond the filesystem.
#[derive(Debug, Clone, Copy)]
pub struct Restrict {
    /// Deny TCP bind and connect except to the ports later allowed (ABI 4).
    pub tcp: bool,
    /// Deny abstract unix sockets and signals that reach outside the sandbox (ABI 6).
    pub scopes: bool,
}

impl Ruleset {
    /// A ruleset handling every filesystem right of `abi`, and TCP/scopes if asked and known.
    pub fn new(abi: u32, restrict: Restrict) -> io::Result<Ruleset> {
        let fs = fs_rights(abi);
        let attr = RulesetAttr {
            handled_access_fs: fs,
            handled_access_net: if restrict.tcp && abi >= 4 {
                BIND_TCP | CONNECT_TCP
            } else {
                0
            },
            scoped: if restrict.scopes && abi >= 6 {
                SCOPE_ABSTRACT_UNIX_SOCKET | SCOPE_SIGNAL
            } else {
                0
            },
        };
        // Older kernels reject the fields they do not know: pass only theirs.
        let size = match abi {
            0..=3 => 8,
            4 | 5 => 16,
            _ => 24,
        };
        // SAFETY: `attr` is a valid ruleset attribute of at least `size` bytes.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_landlock_create_ruleset,
                &attr as *const RulesetAttr,
                size as usize,
                0u32,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: the kernel just gave us this descriptor (close-on-exec).
        let fd = unsafe { OwnedFd::from_raw_fd(fd as RawFd) };
        Ok(Ruleset { fd, fs })
    }

    /// Allows `access` on `path` and everything beneath it; a missing path is skipped.
    pub fn allow(&mut self, path: &Path, access: u64) -> io::Result<()> {
        let c = CString::new(path.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
        // SAFETY: `c` is a valid C string; O_PATH opens nothing but a reference.
        let raw = unsafe { libc::open(c.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
        if raw < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) | Some(libc::EACCES) => Ok(()),
                _ => Err(e),
            };
        }
        // SAFETY: just opened.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        let is_dir = std::fs::metadata(path).map(|m| m.is_dir()).unwrap_or(false);
        let mut allowed = access & self.fs;
        if !is_dir {
            allowed &= FILE_RIGHTS;
        }
        if allowed == 0 {
            return Ok(());
        }
        let attr = PathBeneathAttr {
            allowed_access: allowed,
            parent_fd: fd.as_raw_fd(),
        };
        // SAFETY: `attr` is a valid path-beneath rule; the ruleset fd is ours.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.fd.as_raw_fd(),
                RULE_PATH_BENEATH,
                &attr as *const PathBeneathAttr,
                0u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Allows connecting to TCP `port` (any address; the ruleset must handle TCP).
    pub fn allow_connect(&mut self, port: u16) -> io::Result<()> {
        let attr = NetPortAttr {
            allowed_access: CONNECT_TCP,
            port: u64::from(port),
        };
        // SAFETY: `attr` is a valid net-port rule; the ruleset fd is ours.
        let r = unsafe {
            libc::syscall(
                libc::SYS_landlock_add_rule,
                self.fd.as_raw_fd(),
                RULE_NET_PORT,
                &attr as *const NetPortAttr,
                0u32,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The finished ruleset, for [`restrict_self`] in the child.
    pub fn into_fd(self) -> OwnedFd {
        self.fd
    }
}

/// Confines the calling process (and all it execs) to the ruleset. Async-signal-safe.
pub fn restrict_self(ruleset: RawFd) -> io::Result<()> {
    // SAFETY: plain system call on a descriptor we own.
    let r = unsafe { libc::syscall(libc::SYS_landlock_restrict_self, ruleset, 0u32) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
