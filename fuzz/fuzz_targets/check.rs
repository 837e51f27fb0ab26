//! Parser, lowering, checker and formatter on arbitrary bytes: see `check_text`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

// An empty directory for the whole process: the file's relative imports and prompt
// files resolve there and find nothing.
static DIR: OnceLock<std::path::PathBuf> = OnceLock::new();

fuzz_target!(|data: &[u8]| {
    let dir = DIR.get_or_init(runbook_fuzz::scratch_dir);
    runbook_fuzz::check_text(data, dir);
});
