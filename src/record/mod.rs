//! The on-disk run records: everything a run leaves under `.runbook/runs/<run-id>/`.
//!
//! This module owns the run directory layout (`run_dir`), run identifiers
//! (`run_id`), the durable append-only event journal (`journal`), the
//! one-driver-per-run lock (`lock`), secret redaction of everything written
//! (`redact`) and the crash-point test hooks that every durable write passes
//! (`crash`). It knows nothing about what the events mean; callers bring
//! their own serializable event types.

pub mod crash;
pub mod journal;
pub mod lock;
pub mod redact;
pub mod run_dir;
pub mod run_id;

pub use journal::{read_events, Journal, JournalContents, JournalError, CRASH_AFTER_EVENTS_ENV};
pub use lock::{LockError, RunLock};
pub use redact::{Redactor, StreamRedactor};
pub use run_dir::{list_runs, runs_dir, write_atomic, RunDir, StepAttemptDir, RUNS_DIR};
pub use run_id::{ParseRunIdError, RunId};

use sha2::{Digest, Sha256};

/// Locks a mutex, ignoring poison: no critical section of the record stage can leave
/// its state half-updated, so the data is still consistent after a panic elsewhere.
fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Lowercase hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let digest = Sha256::digest(bytes);
    let mut hex = String::with_capacity(64);
    for b in digest {
        // Writing into a String cannot fail.
        let _ = write!(hex, "{b:02x}");
    }
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_hex_known_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
