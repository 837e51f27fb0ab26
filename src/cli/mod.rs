//! The command line: argument parsing and one module per subcommand. This is the edge
//! where stage errors become messages and exit codes.

mod agents;
mod approve;
mod check;
mod dry_run;
mod fmt;
mod gc;
mod plan;
mod run;
mod runs;

use clap::{Parser, Subcommand};
use std::io::IsTerminal;

/// Exit code: success.
pub const EXIT_OK: i32 = 0;
/// Exit code: the runbook has errors, or the run failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code: bad usage or unreadable input.
pub const EXIT_USAGE: i32 = 2;

#[derive(Parser, Debug)]
#[command(name = "runbook", version, about = "Declarative runbooks for agent-driven changes: check, plan and run them", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check runbooks for errors (names, cycles, races, templates, permissions, policy).
    Check(check::Args),
    /// Print the plan a reviewer approves: phases, steps, permissions, checkpoints, rollback.
    Plan(plan::Args),
    /// Rewrite runbook files in the canonical layout (--check: print a diff, exit 1).
    Fmt(fmt::Args),
    /// Run a runbook: steps, checkpoints, retries, rollback, with durable records.
    Run(run::RunArgs),
    /// Continue a suspended, interrupted or crashed run.
    Resume(run::ResumeArgs),
    /// Record a decision at a waiting checkpoint (approve, --reject, --revise).
    Approve(approve::Args),
    /// Run the compensations of a suspended, interrupted or failed run.
    Rollback(run::RollbackArgs),
    /// List runs.
    Runs,
    /// Show a run's audit trail (--changes: who changed which file, and why).
    Show(runs::ShowArgs),
    /// Remove the git worktrees of finished runs (records and branches stay).
    Gc(gc::Args),
    /// List the CLI agent presets: installed or not, version, which key variables are set.
    Agents(agents::Args),
}

/// Runs the CLI and returns the process exit code.
pub fn main() -> i32 {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { EXIT_USAGE } else { EXIT_OK };
            let _ = e.print();
            return code;
        }
    };
    match cli.command {
        Command::Check(args) => check::run(args),
        Command::Plan(args) => plan::run(args),
        Command::Fmt(args) => fmt::run(args),
        Command::Run(args) => run::run(args),
        Command::Resume(args) => run::resume(args),
        Command::Approve(args) => approve::run(args),
        Command::Rollback(args) => run::rollback(args),
        Command::Runs => runs::list(),
        Command::Show(args) => runs::show(args),
        Command::Gc(args) => gc::run(args),
        Command::Agents(args) => agents::run(args),
    }
}

/// Whether to color output written to stderr.
pub fn color_stderr() -> bool {
    std::env::var_os("NO_COLOR").is_none() && std::io::stderr().is_terminal()
}

/// The root of the git repository containing `dir`, if any.
pub fn repository_root(dir: &std::path::Path) -> Option<std::path::PathBuf> {
    let dir = std::fs::canonicalize(dir).ok()?;
    dir.ancestors()
        .find(|d| d.join(".git").exists())
        .map(std::path::Path::to_path_buf)
}
