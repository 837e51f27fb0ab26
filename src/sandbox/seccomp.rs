//! The seccomp filter: a classic BPF program compiled in the parent and loaded in the
//! child. It closes what Landlock does not see: non-unix sockets when the network is
//! off (UDP and raw sockets included), io_uring (which would bypass the socket rule),
//! mounts, namespaces, tracing other processes, kernel keyrings and modules.

use std::io;

/// Which sockets a step may open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sockets {
    /// Any socket.
    Any,
    /// Unix sockets, and TCP (stream) over IPv4/IPv6 for the network allowlist's proxy.
    UnixAndTcp,
    /// Unix sockets only.
    Unix,
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

/// Calls no step may make, whatever its permissions.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn denied() -> Vec<libc::c_long> {
    let mut v = vec![
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount_setattr,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_fsopen,
        libc::SYS_fsconfig,
        libc::SYS_fsmount,
        libc::SYS_fspick,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_pidfd_getfd,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_syslog,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_vhangup,
        libc::SYS_fanotify_init,
    ];
    #[cfg(target_arch = "x86_64")]
    v.extend([libc::SYS_iopl, libc::SYS_ioperm, libc::SYS_uselib]);
    v
}

const RET_ALLOW: u32 = 0x7fff_0000;
const RET_KILL_PROCESS: u32 = 0x8000_0000;
const RET_ERRNO: u32 = 0x0005_0000;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JSET_K: u16 = (libc::BPF_JMP | libc::BPF_JSET | libc::BPF_K) as u16;
const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

// Offsets into `struct seccomp_data` (little-endian: the low half of each argument first).
const NR: u32 = 0;
const ARCH: u32 = 4;
const ARG0: u32 = 16;
const ARG1: u32 = 24;

/// Namespace flags a `clone` may not carry.
const CLONE_NS: u32 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u32;

fn stmt(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter {
        code,
        jt: 0,
        jf: 0,
        k,
    }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

fn errno(e: i32) -> libc::sock_filter {
    stmt(RET_K, RET_ERRNO | (e as u32 & 0xffff))
}

/// A compiled filter.
#[derive(Clone)]
pub struct Filter {
    program: Vec<libc::sock_filter>,
}

impl std::fmt::Debug for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Filter({} instructions)", self.program.len())
    }
}

impl Filter {
    /// The filter for a step that may open `sockets`.
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    pub fn new(sockets: Sockets) -> Filter {
        let mut p = vec![
            // Another architecture's numbers mean other calls: never let them through.
            stmt(LD_W_ABS, ARCH),
            jump(JEQ_K, AUDIT_ARCH, 1, 0),
            stmt(RET_K, RET_KILL_PROCESS),
            stmt(LD_W_ABS, NR),
        ];
        #[cfg(target_arch = "x86_64")]
        {
            // x32 numbers alias the same calls with another bit set.
            p.push(jump(JGE_K, 0x4000_0000, 0, 1));
            p.push(errno(libc::EPERM));
        }
        for nr in denied() {
            p.push(jump(JEQ_K, nr as u32, 0, 1));
            p.push(errno(libc::EPERM));
        }
        // clone3 passes its flags in memory a filter cannot read: make libc fall back
        // to clone, whose flags it can.
        p.push(jump(JEQ_K, libc::SYS_clone3 as u32, 0, 1));
        p.push(errno(libc::ENOSYS));
        p.extend([
            jump(JEQ_K, libc::SYS_clone as u32, 0, 4),
            stmt(LD_W_ABS, ARG0),
            jump(JSET_K, CLONE_NS, 0, 1),
            errno(libc::EPERM),
            stmt(RET_K, RET_ALLOW),
        ]);
        match sockets {
            Sockets::Any => {}
            Sockets::Unix => p.extend([
                jump(JEQ_K, libc::SYS_socket as u32, 0, 4),
                stmt(LD_W_ABS, ARG0),
                jump(JEQ_K, libc::AF_UNIX as u32, 0, 1),
                stmt(RET_K, RET_ALLOW),
                errno(libc::EACCES),
            ]),
            Sockets::UnixAndTcp => p.extend([
                jump(JEQ_K, libc::SYS_socket as u32, 0, 9),
                stmt(LD_W_ABS, ARG0),
                jump(JEQ_K, libc::AF_UNIX as u32, 5, 0),
                jump(JEQ_K, libc::AF_INET as u32, 1, 0),
                jump(JEQ_K, libc::AF_INET6 as u32, 0, 4),
                stmt(LD_W_ABS, ARG1),
                // The type's low bits; SOCK_NONBLOCK and SOCK_CLOEXEC live above them.
                stmt(AND_K, 0xf),
                jump(JEQ_K, libc::SOCK_STREAM as u32, 0, 1),
                stmt(RET_K, RET_ALLOW),
                errno(libc::EACCES),
            ]),
        }
        p.push(stmt(RET_K, RET_ALLOW));
        Filter { program: p }
    }

    /// A filter that allows everything (to test the other layers alone).
    pub fn allow_all() -> Filter {
        Filter {
            program: vec![stmt(RET_K, RET_ALLOW)],
        }
    }

    /// Loads the filter into the calling thread. Async-signal-safe; needs no_new_privs.
    pub fn load(&self) -> io::Result<()> {
        let prog = libc::sock_fprog {
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: `prog` points at our program, alive for the call.
        let r = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                0u32,
                &prog as *const libc::sock_fprog,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }
}
