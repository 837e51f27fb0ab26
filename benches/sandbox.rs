//! What the OS sandbox adds to starting a process: `/bin/true` started plainly, inside
//! Landlock + seccomp, and inside the full sandbox (user, mount and network namespaces
//! as well). The difference between the rows is the sandbox's cost per process; a
//! step's cost is this per process it starts plus preparing (`prepare_*`, once per
//! attempt). Targets: ≤ 0.5 ms for Landlock + seccomp, ≤ 10 ms with namespaces.

use runbook::sandbox::{probe, Net, Policy, Prepared};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

fn main() {
    divan::main();
}

fn policy(dir: &Path, network: Net) -> Policy {
    Policy {
        cwd: dir.to_path_buf(),
        read: vec![PathBuf::from("/usr/bin")],
        write: vec![dir.to_path_buf()],
        protected: vec![dir.join(".git")],
        network,
        home: std::env::var_os("HOME").map(PathBuf::from),
        network_log: None,
        shm: None,
    }
}

fn run(prepared: Option<Arc<Prepared>>) {
    let mut cmd = Command::new("/bin/true");
    cmd.env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(p) = prepared {
        // SAFETY: `enter` only makes system calls on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || p.enter());
        }
    }
    assert!(cmd.status().unwrap().success());
}

#[divan::bench(sample_count = 200)]
fn spawn_plain() {
    run(None);
}

#[divan::bench(sample_count = 200)]
fn spawn_landlock_seccomp(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let support = probe().expect("sandbox");
    let p = Arc::new(
        Prepared::new(&policy(dir.path(), Net::Off), &support)
            .unwrap()
            .without_namespaces(),
    );
    bencher.bench_local(|| run(Some(p.clone())));
}

#[divan::bench(sample_count = 200)]
fn spawn_full_network_off(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let support = probe().expect("sandbox");
    let p = Arc::new(Prepared::new(&policy(dir.path(), Net::Off), &support).unwrap());
    bencher.bench_local(|| run(Some(p.clone())));
}

#[divan::bench(sample_count = 200)]
fn spawn_full_network_on(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let support = probe().expect("sandbox");
    let p = Arc::new(Prepared::new(&policy(dir.path(), Net::On), &support).unwrap());
    bencher.bench_local(|| run(Some(p.clone())));
}

#[divan::bench(sample_count = 200)]
fn prepare_per_attempt(bencher: divan::Bencher) {
    let dir = tempfile::tempdir().unwrap();
    let support = probe().expect("sandbox");
    bencher.bench_local(|| Prepared::new(&policy(dir.path(), Net::Off), &support).unwrap());
}
