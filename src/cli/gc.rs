//! `runbook gc`: removes the git worktrees of finished runs. Records and run branches
//! stay: they are the audit trail and the result.

use super::run::{load_state, records_root};
use super::{EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::record::lock::RunLock;
use crate::record::run_dir::{list_runs, RunDir};

/// Arguments of `runbook gc`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print what would be removed; remove nothing.
    #[arg(long)]
    dry_run: bool,
}

/// Runs the subcommand.
pub fn run(args: Args) -> i32 {
    let root = match records_root() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let repo = match crate::workspace::Workspace::discover(&root) {
        Ok(Some(r)) => r,
        Ok(None) => {
            eprintln!(
                "nothing to do: {} is not in a git repository, so runs have no worktrees",
                root.display()
            );
            return EXIT_OK;
        }
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let mut removed = 0usize;
    let mut failed = false;
    for id in list_runs(&root) {
        let Ok(dir) = RunDir::open(&root, id.clone()) else {
            continue;
        };
        let Ok((state, _, _)) = load_state(&dir) else {
            continue;
        };
        let Some(status) = &state.finished else {
            // Suspended or interrupted runs resume in their worktrees.
            continue;
        };
        // A run someone is driving (a `rollback` in progress) is left alone.
        let Ok(_lock) = RunLock::acquire(dir.lock_file()) else {
            continue;
        };
        let trees = match crate::workspace::worktrees_under(&repo, dir.path()) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("warning: run {id}: {e}");
                failed = true;
                continue;
            }
        };
        if trees.is_empty() {
            continue;
        }
        if args.dry_run {
            println!(
                "would remove {} worktrees of run {id} ({status})",
                trees.len()
            );
            removed += trees.len();
            continue;
        }
        match crate::workspace::remove_worktrees_under(&repo, dir.path()) {
            Ok(n) => {
                println!("removed {n} worktrees of run {id} ({status})");
                removed += n;
            }
            Err(e) => {
                eprintln!("error: run {id}: {e}");
                failed = true;
            }
        }
    }
    if removed == 0 && !failed {
        println!("nothing to remove");
    }
    if failed {
        EXIT_FAILED
    } else {
        EXIT_OK
    }
}
