//! The `runbook` binary.

fn main() {
    std::process::exit(runbook::cli::main());
}
