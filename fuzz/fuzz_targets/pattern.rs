//! Glob compilation, matching, `covers` and the write-violation check: see `patterns`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| runbook_fuzz::patterns(data));
