//! What runs in the child between fork and exec. Only system calls on buffers prepared
//! by the parent: after a fork in a threaded program, allocating or locking could
//! deadlock on a lock another thread held at the fork. Errors are bare errnos: that
//! is all the standard library passes back from the child.

use super::landlock;
use super::seccomp::Filter;
use std::ffi::CString;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};

/// The namespace layer: a private user, mount (and, without network, net) namespace in
/// which everything is read-only but the writable roots, and the protected paths inside
/// them are read-only again.
#[derive(Debug)]
pub struct Namespaces {
    /// `CLONE_NEW*` flags for `unshare`.
    pub flags: libc::c_int,
    /// `/proc/self/uid_map` content: the caller's uid mapped to itself.
    pub uid_map: Vec<u8>,
    /// `/proc/self/gid_map` content.
    pub gid_map: Vec<u8>,
    /// Mounted read-write over the read-only tree.
    pub writable: Vec<CString>,
    /// Mounted read-only again inside the writable roots.
    pub protected: Vec<CString>,
    /// Unix sockets of other programs (a tmux server, ssh-agent, docker, D-Bus), each
    /// covered with `/dev/null` so that connecting finds no socket: Landlock does not
    /// govern connecting to a socket by path.
    pub masked_sockets: Vec<CString>,
    /// The working directory, entered again once its mount is the writable one.
    pub cwd: CString,
    /// For a network allowlist: where to hand the proxy's listening socket to the parent.
    pub proxy: Option<ProxyHandOver>,
    /// A directory of the process's own, mounted over `/dev/shm`: POSIX shared memory and
    /// semaphores (Python's multiprocessing) work, and no other process's are reachable.
    pub shm: Option<CString>,
}

/// The allowlist proxy's way in: the child, already in its own network namespace (which
/// has nothing but loopback), listens on `127.0.0.1:port` there and passes the socket to
/// the parent, which accepts on it and connects out from the host's network. Nothing
/// else is reachable, whatever address or port the agent tries.
#[derive(Debug)]
pub struct ProxyHandOver {
    /// The child's end of a datagram socket pair (close-on-exec).
    pub sender: OwnedFd,
    /// The port inside the namespace.
    pub port: u16,
}

impl ProxyHandOver {
    fn listen_and_send(&self) -> io::Result<()> {
        // SAFETY: plain system calls on stack memory; every descriptor is closed.
        unsafe {
            // Loopback starts down in a new network namespace.
            let s = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
            if s < 0 {
                return Err(io::Error::last_os_error());
            }
            let mut ifr: libc::ifreq = std::mem::zeroed();
            for (i, b) in b"lo\0".iter().enumerate() {
                ifr.ifr_name[i] = *b as libc::c_char;
            }
            ifr.ifr_ifru.ifru_flags = (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            let r = libc::ioctl(s, libc::SIOCSIFFLAGS, &ifr);
            let e = io::Error::last_os_error();
            libc::close(s);
            if r < 0 {
                return Err(e);
            }
            let l = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            if l < 0 {
                return Err(io::Error::last_os_error());
            }
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: self.port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
                },
                sin_zero: [0; 8],
            };
            let r = libc::bind(
                l,
                (&addr as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            if r < 0 || libc::listen(l, 128) < 0 {
                let e = io::Error::last_os_error();
                libc::close(l);
                return Err(e);
            }
            // One byte of payload and the descriptor as SCM_RIGHTS.
            let mut byte = [b'L'];
            let mut iov = libc::iovec {
                iov_base: byte.as_mut_ptr().cast(),
                iov_len: 1,
            };
            let mut control = [0u64; 4];
            let mut msg: libc::msghdr = std::mem::zeroed();
            msg.msg_iov = &mut iov;
            msg.msg_iovlen = 1;
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(4) as usize;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(4) as usize;
            std::ptr::copy_nonoverlapping(
                (&l as *const libc::c_int).cast::<u8>(),
                libc::CMSG_DATA(cmsg),
                4,
            );
            let r = libc::sendmsg(self.sender.as_raw_fd(), &msg, 0);
            let e = io::Error::last_os_error();
            // The agent must not hold the listener: only the parent accepts on it.
            libc::close(l);
            if r < 0 {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Everything the child applies, prepared by the parent.
#[derive(Debug)]
pub struct Prepared {
    pub(super) namespaces: Option<Namespaces>,
    pub(super) ruleset: Option<OwnedFd>,
    pub(super) filter: Filter,
    pub(super) last_cap: libc::c_ulong,
    pub(super) proxy: Option<ProxyParent>,
}

/// The parent's side of the allowlist proxy hand-over.
#[derive(Debug)]
pub struct ProxyParent {
    /// Receives the listener each spawned child makes.
    pub receiver: OwnedFd,
    /// What the proxy admits.
    pub rules: std::sync::Arc<super::proxy::Allowlist>,
}

const AT_RECURSIVE: libc::c_uint = 0x8000;
const MOUNT_ATTR_RDONLY: u64 = 1;

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

fn check(r: libc::c_long) -> io::Result<()> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn write_file(path: &std::ffi::CStr, data: &[u8]) -> io::Result<()> {
    // SAFETY: valid C string; the descriptor is closed on every path.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        let e = io::Error::last_os_error();
        libc::close(fd);
        if n != data.len() as isize {
            return Err(e);
        }
    }
    Ok(())
}

fn bind(path: &CString) -> io::Result<()> {
    // SAFETY: valid C strings; a bind mount of a path onto itself.
    check(unsafe {
        libc::mount(
            path.as_ptr(),
            path.as_ptr(),
            std::ptr::null(),
            libc::MS_BIND | libc::MS_REC,
            std::ptr::null(),
        )
    } as libc::c_long)
}

fn set_readonly(path: &std::ffi::CStr, readonly: bool, flags: libc::c_uint) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: if readonly { MOUNT_ATTR_RDONLY } else { 0 },
        attr_clr: if readonly { 0 } else { MOUNT_ATTR_RDONLY },
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: valid C string and attribute struct, alive for the call.
    check(unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            flags,
            &attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    })
}

impl Namespaces {
    fn enter(&self) -> io::Result<()> {
        // SAFETY: unshare takes flags only; the child is single-threaded after fork.
        check(unsafe { libc::unshare(self.flags) } as libc::c_long)?;
        match write_file(c"/proc/self/setgroups", b"deny") {
            Err(e) if e.raw_os_error() != Some(libc::ENOENT) => return Err(e),
            _ => {}
        }
        write_file(c"/proc/self/uid_map", &self.uid_map)?;
        write_file(c"/proc/self/gid_map", &self.gid_map)?;
        // SAFETY: valid C string; stops our mounts from propagating back to the host.
        check(unsafe {
            libc::mount(
                std::ptr::null(),
                c"/".as_ptr(),
                std::ptr::null(),
                libc::MS_REC | libc::MS_PRIVATE,
                std::ptr::null(),
            )
        } as libc::c_long)?;
        set_readonly(c"/", true, AT_RECURSIVE)?;
        for socket in &self.masked_sockets {
            // SAFETY: valid C strings; a file bind mount over the socket.
            let r = unsafe {
                libc::mount(
                    c"/dev/null".as_ptr(),
                    socket.as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            };
            if r < 0 {
                let e = io::Error::last_os_error();
                // Gone since the parent looked: nothing to hide.
                if e.raw_os_error() != Some(libc::ENOENT) {
                    return Err(e);
                }
            }
        }
        if let Some(shm) = &self.shm {
            // SAFETY: valid C strings; a bind mount of our own directory.
            check(unsafe {
                libc::mount(
                    shm.as_ptr(),
                    c"/dev/shm".as_ptr(),
                    std::ptr::null(),
                    libc::MS_BIND,
                    std::ptr::null(),
                )
            } as libc::c_long)?;
            // The bind copies the read-only flag of the tree it comes from.
            set_readonly(c"/dev/shm", false, 0)?;
        }
        // Protected paths first: a writable root's recursive bind then carries their
        // read-only mounts along, and only its own top mount is made writable.
        for p in &self.protected {
            bind(p)?;
            set_readonly(p, true, AT_RECURSIVE)?;
        }
        for w in &self.writable {
            bind(w)?;
            set_readonly(w, false, 0)?;
        }
        if let Some(proxy) = &self.proxy {
            proxy.listen_and_send()?;
        }
        // The old working directory is on the mount beneath the new ones.
        // SAFETY: valid C string.
        check(unsafe { libc::chdir(self.cwd.as_ptr()) } as libc::c_long)
    }
}

impl Prepared {
    /// Applies every layer to the calling (forked, not yet exec'd) process.
    pub fn enter(&self) -> io::Result<()> {
        if let Some(ns) = &self.namespaces {
            ns.enter()?;
        }
        drop_capabilities(self.last_cap)?;
        // SAFETY: plain prctl; required by both Landlock and seccomp for an unprivileged caller.
        check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } as libc::c_long)?;
        if let Some(r) = &self.ruleset {
            landlock::restrict_self(r.as_raw_fd())?;
        }
        self.filter.load()
    }
}

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Leaves the process (root in its user namespace) nothing to regain at exec.
fn drop_capabilities(last_cap: libc::c_ulong) -> io::Result<()> {
    for cap in 0..=last_cap {
        // SAFETY: plain prctl.
        let r = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
        }
    }
    // SAFETY: plain prctl.
    unsafe {
        libc::prctl(
            libc::PR_CAP_AMBIENT,
            libc::PR_CAP_AMBIENT_CLEAR_ALL,
            0,
            0,
            0,
        )
    };
    let header = CapHeader {
        version: 0x2008_0522, // _LINUX_CAPABILITY_VERSION_3
        pid: 0,
    };
    let data = [CapData {
        effective: 0,
        permitted: 0,
        inheritable: 0,
    }; 2];
    // SAFETY: header and two data entries, as version 3 expects.
    check(unsafe { libc::syscall(libc::SYS_capset, &header as *const CapHeader, data.as_ptr()) })
}
