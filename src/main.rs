//! The `runbook` binary.

fn main() {
    tune_allocator();
    std::process::exit(runbook::cli::main());
}

/// Checking builds many small, short-lived nodes. glibc's defaults hand freed memory
/// back to the kernel and fault it in again as the heap breathes, which cost a third of
/// the wall time of `runbook check` on the 10,000-step benchmark; keeping the heap
/// (no trimming, no per-allocation mmap for large buffers) removes that churn without
/// raising the peak.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only changes allocator parameters; it is called before any other
    // thread exists, as glibc requires.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 512 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}
