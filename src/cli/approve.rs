//! `runbook approve RUN CHECKPOINT`: records who decided what, and when.

use super::run::{load_checked, open_run, OpenRun};
use super::{EXIT_OK, EXIT_USAGE};
use crate::record::journal::Journal;
use crate::run::event::{now, Decision, Event};
use crate::run::state::NodeStatus;

/// Arguments of `runbook approve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The run id (or a unique prefix).
    run: String,
    /// The checkpoint (or the escalated step) to decide.
    checkpoint: String,
    /// Reject: the run rolls back and stops when resumed.
    #[arg(long, conflicts_with_all = ["revise", "skip"])]
    reject: bool,
    /// Send the `revise` step back with this comment (its `feedback`).
    #[arg(long, value_name = "COMMENT", conflicts_with = "skip")]
    revise: Option<String>,
    /// Escalated steps only: skip the failed step and go on.
    #[arg(long, conflicts_with = "take")]
    skip: bool,
    /// Merge conflicts only: resolve the conflicting paths with the run branch's side
    /// (`ours`) or the step's (`theirs`).
    #[arg(long, value_name = "SIDE", conflicts_with_all = ["reject", "revise"])]
    take: Option<TakeSide>,
    /// Who decides (default: $RUNBOOK_USER or $USER).
    #[arg(long = "as", value_name = "NAME")]
    identity: Option<String>,
}

/// The side `--take` names.
#[derive(clap::ValueEnum, Debug, Clone, Copy)]
pub enum TakeSide {
    /// The run branch: what was merged before the conflicting step.
    Ours,
    /// The conflicting step's commit.
    Theirs,
}

/// Runs the subcommand.
pub fn run(args: Args) -> i32 {
    match approve(args) {
        Ok(()) => EXIT_OK,
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_USAGE
        }
    }
}

fn approve(args: Args) -> Result<(), String> {
    let OpenRun {
        dir,
        lock: _lock,
        state,
        file,
        ..
    } = open_run(&args.run)?;
    if let Some(status) = &state.finished {
        return Err(format!("run {} already finished ({status})", dir.id()));
    }
    let sha = match state.status(&args.checkpoint) {
        NodeStatus::Asked { content_sha256 } => content_sha256.clone(),
        other => {
            let waiting: Vec<&String> = state
                .nodes
                .iter()
                .filter(|(_, s)| matches!(s, NodeStatus::Asked { .. }))
                .map(|(n, _)| n)
                .collect();
            return Err(format!(
                "`{}` is not waiting for a decision (it is {}); waiting: {}",
                args.checkpoint,
                other.word(),
                if waiting.is_empty() {
                    "nothing".to_string()
                } else {
                    waiting
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            ));
        }
    };
    if let Some(d) = state.decisions.get(&args.checkpoint) {
        // One question, one answer: a second decision would silently overrule the
        // first (an approval racing a rejection), and the audit trail would hold both.
        return Err(format!(
            "`{}` was already decided ({} by {}); resume the run to apply that decision: runbook resume {}",
            args.checkpoint,
            decision_word(d.decision),
            d.by,
            dir.id()
        ));
    }
    let (checked, _) =
        load_checked(&file).map_err(|_| format!("{} no longer checks", file.display()))?;
    let runbook = checked.runbook();
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(crate::run::checkpoint::default_identity);
    let node = runbook
        .node_named(&args.checkpoint)
        .map(|id| runbook.node(id));
    let checkpoint = node.and_then(|n| n.checkpoint());
    if let Some(cp) = checkpoint {
        if let Some(limit) = crate::run::checkpoint::expired(cp, &state, &args.checkpoint) {
            return Err(format!(
                "checkpoint `{}` timed out: nobody decided within {limit}, which counts as a rejection; `runbook resume {}` rolls the run back",
                args.checkpoint,
                dir.id()
            ));
        }
        if !cp.approvers.is_empty() && !cp.approvers.contains(&identity) {
            return Err(format!(
                "{identity} may not decide `{}`: its approvers are {}",
                args.checkpoint,
                cp.approvers.join(", ")
            ));
        }
        if args.revise.is_some() && cp.revise.is_none() {
            return Err(format!(
                "checkpoint `{}` names no step to revise (add `revise STEP` to it)",
                args.checkpoint
            ));
        }
        if args.skip {
            return Err("--skip decides escalated steps, not checkpoints".into());
        }
    }
    let conflict = state.conflicts.get(&args.checkpoint);
    if args.take.is_some() && conflict.is_none() {
        return Err(format!(
            "--take decides merge conflicts, and `{}` did not conflict",
            args.checkpoint
        ));
    }
    if args.skip && conflict.is_some() {
        return Err(format!(
            "`{}` conflicts with the run branch: decide with --take ours|theirs, --revise, --reject, or no flag to re-run it on top of the run branch",
            args.checkpoint
        ));
    }
    let decision = if let Some(side) = args.take {
        match side {
            TakeSide::Ours => Decision::Ours,
            TakeSide::Theirs => Decision::Theirs,
        }
    } else if args.reject {
        Decision::Reject
    } else if args.revise.is_some() {
        Decision::Revise
    } else if args.skip {
        Decision::Skip
    } else {
        Decision::Approve
    };
    let journal = Journal::open_append::<Event>(dir.events())
        .map_err(|e| format!("cannot open the journal: {e}"))?;
    let seq = journal
        .append(&Event::CheckpointDecided {
            time: now(),
            checkpoint: args.checkpoint.clone(),
            decision,
            by: identity.clone(),
            comment: args.revise.clone(),
            content_sha256: sha,
            preapproved: false,
        })
        .map_err(|e| e.to_string())?;
    journal
        .wait_durable_blocking(seq)
        .map_err(|e| e.to_string())?;
    journal.close().map_err(|e| e.to_string())?;
    eprintln!(
        "{identity} {} `{}` of run {}; continue with: runbook resume {}",
        decision_word(decision),
        args.checkpoint,
        dir.id(),
        dir.id()
    );
    Ok(())
}

/// The past tense of a decision, for messages.
fn decision_word(decision: Decision) -> &'static str {
    match decision {
        Decision::Approve => "approved",
        Decision::Reject => "rejected",
        Decision::Revise => "asked to revise",
        Decision::Skip => "skipped",
        Decision::Ours => "kept the run branch's side of",
        Decision::Theirs => "took the step's side of",
    }
}
