//! The per-run lock: at most one runbook process drives a run at a time.
//!
//! It is an exclusive, non-blocking `flock(2)` on the run's lock file. The
//! kernel drops the lock when the holder's file descriptor closes — including
//! when the process crashes — so a stale lock can never wedge a resume. The
//! holder writes its pid into the file purely so the error can name it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// How long a lock whose recorded holder is dead may take to come free. After a crash
/// (kill -9, abort) a child forked in that instant still holds the lock until it execs:
/// microseconds, or some milliseconds on a loaded machine. A resume started right after
/// the crash waits that out instead of blaming a process that no longer exists.
const ORPHANED_LOCK_WAIT: Duration = Duration::from_secs(2);

/// Why a run lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error("{}", held_message(.path, *.pid))]
    Held {
        /// The lock file.
        path: PathBuf,
        /// The holder's pid as it wrote it into the lock file, if readable.
        pid: Option<u32>,
    },
    /// The lock file could not be opened, locked or written.
    #[error("cannot lock {}: {source}", .path.display())]
    Io {
        /// The lock file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// Renders the "someone else is driving this run" message.
fn held_message(path: &Path, pid: Option<u32>) -> String {
    let who = match pid {
        Some(pid) => format!("another runbook process (pid {pid})"),
        None => "another runbook process".to_owned(),
    };
    format!(
        "{who} is driving this run (lock {} is held); wait for it to finish or stop it first",
        path.display()
    )
}

/// An exclusive lock on a run, released when dropped.
#[derive(Debug)]
pub struct RunLock {
    /// Keeping the descriptor open is what keeps the lock held.
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Takes the lock without blocking, or reports the process that holds it.
    pub fn acquire(path: impl AsRef<Path>) -> Result<RunLock, LockError> {
        let path = path.as_ref().to_path_buf();
        let io_err = |source| LockError::Io {
            path: path.clone(),
            source,
        };
        // No truncation on open: the current holder's pid must survive a
        // failed attempt so the error can report it.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err)?;
        let give_up = Instant::now() + ORPHANED_LOCK_WAIT;
        loop {
            match flock_exclusive_nonblocking(&file) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let pid = read_pid(&mut file);
                    // The holder named in the file is gone, yet the lock is held: by a
                    // child it was forking when it died, which still shares the
                    // descriptor until its exec (where close-on-exec drops it).
                    let orphaned = pid.is_some_and(|p| !process_exists(p));
                    if orphaned && Instant::now() < give_up {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    return Err(LockError::Held { path, pid });
                }
                Err(e) => return Err(io_err(e)),
            }
        }
        // We hold the lock now; record who we are for the next contender.
        let write_pid = |file: &mut File| -> io::Result<()> {
            file.set_len(0)?;
            file.seek(SeekFrom::Start(0))?;
            writeln!(file, "{}", std::process::id())
        };
        write_pid(&mut file).map_err(io_err)?;
        Ok(RunLock { file, path })
    }

    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Closing the descriptor releases the lock anyway; unlocking explicitly
        // just makes the release not depend on descriptor duplication (fork).
        // The file itself is left in place: deleting a flock file races with a
        // contender that has it open.
        // SAFETY: the fd is owned by `self.file` and open for the whole call.
        unsafe {
            libc::flock(self.file.as_raw_fd(), libc::LOCK_UN);
        }
    }
}

/// `flock(LOCK_EX | LOCK_NB)`, retrying on EINTR.
fn flock_exclusive_nonblocking(file: &File) -> io::Result<()> {
    loop {
        // SAFETY: `flock` only reads the fd, which `file` keeps open.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// Whether a process with this pid exists (a zombie counts: it is gone for our purposes
/// only once reaped, and it holds no descriptors by then anyway).
fn process_exists(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if pid <= 0 {
        return false;
    }
    // SAFETY: kill(2) with signal 0 only checks for existence and permission.
    let rc = unsafe { libc::kill(pid, 0) };
    rc == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Reads the pid the holder wrote, if the file holds one.
fn read_pid(file: &mut File) -> Option<u32> {
    let mut text = String::new();
    file.seek(SeekFrom::Start(0)).ok()?;
    file.read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_acquire_fails_until_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        let first = RunLock::acquire(&path).unwrap();
        assert_eq!(first.path(), path);

        match RunLock::acquire(&path) {
            Err(err @ LockError::Held { .. }) => {
                let LockError::Held { pid, .. } = &err else {
                    unreachable!()
                };
                assert_eq!(*pid, Some(std::process::id()));
                let msg = err.to_string();
                assert!(msg.contains("another runbook process"), "{msg}");
                assert!(msg.contains(&std::process::id().to_string()), "{msg}");
            }
            other => panic!("expected Held, got {other:?}"),
        }

        drop(first);
        let again = RunLock::acquire(&path).unwrap();
        drop(again);
    }

    #[test]
    fn a_lock_left_to_a_child_of_a_dead_holder_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lock");
        // The holder's descriptor, with the pid of a process that has exited: what a
        // child forked just before its parent crashed looks like from outside.
        let holder = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .unwrap();
        flock_exclusive_nonblocking(&holder).unwrap();
        let mut dead = std::process::Command::new("true").spawn().unwrap();
        let dead_pid = dead.id();
        dead.wait().unwrap();
        std::fs::write(&path, format!("{dead_pid}\n")).unwrap();
        let release = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(100));
            drop(holder);
        });
        let lock = RunLock::acquire(&path).expect("the orphaned lock comes free");
        release.join().unwrap();
        assert_eq!(
            std::fs::read_to_string(lock.path()).unwrap().trim(),
            std::process::id().to_string()
        );
    }

    #[test]
    fn missing_directory_is_an_io_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = RunLock::acquire(dir.path().join("no/such/dir/lock")).unwrap_err();
        assert!(matches!(err, LockError::Io { .. }), "{err:?}");
    }
}
