//! The journal reader and resume on arbitrary bytes: see `journal`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(runbook_fuzz::scratch_dir);
    runbook_fuzz::journal(data, dir);
});
