//! Checkpoints: what a checkpoint shows, the hash a decision is bound to, and the
//! interactive prompt.

use super::context::StepView;
use super::event::{now, Decision, Event};
use super::Session;
use crate::ir::{Checkpoint, NodeId, ShowItem};
use crate::record::sha256_hex;
use std::collections::BTreeMap;

/// How much of each shown file or output is displayed.
const SHOW_CAP: usize = 32 * 1024;

/// What the scheduler does next at a checkpoint.
#[derive(Debug)]
pub enum Action {
    /// Approved: go on.
    Proceed,
    /// No decision yet: wait (suspend when nothing else can run).
    Wait,
    /// Rejected: roll back.
    Reject(String),
    /// Re-run the revise step with the comment.
    Revise {
        /// The step to re-run.
        target: NodeId,
        /// The reviewer's comment.
        comment: String,
    },
}

/// The text a checkpoint shows, and its sha256.
pub fn content(
    session: &Session,
    node: NodeId,
    steps: &BTreeMap<String, StepView>,
) -> (String, String) {
    let runbook = session.checked.runbook();
    let n = runbook.node(node);
    let cp = n.checkpoint().expect("a checkpoint");
    let mut text = String::new();
    text.push_str(&format!(
        "checkpoint {}: {}\n",
        n.name,
        n.title.as_deref().unwrap_or("")
    ));
    if let Some(ask) = &cp.ask {
        match session.renderer.render(ask, &session.context, steps, 1, "") {
            Ok(q) => text.push_str(&format!("question: {q}\n")),
            Err(e) => text.push_str(&format!("question: (cannot render: {e})\n")),
        }
    }
    for item in &cp.show {
        match item {
            ShowItem::Path(p, _) => {
                let path = session.workdir.join(p);
                text.push_str(&format!("\n── {p} ──\n"));
                match std::fs::read(&path) {
                    Ok(bytes) => text.push_str(&cap(&String::from_utf8_lossy(&bytes))),
                    Err(e) => text.push_str(&format!("(cannot read: {e})\n")),
                }
            }
            ShowItem::Diff(_) => {
                text.push_str("\n── diff ──\n");
                let diff = match &session.workspace {
                    Some(ws) => super::tree::attributed_diff(session, ws),
                    None => diff(&session.workdir),
                };
                text.push_str(&cap(&diff));
            }
            ShowItem::StepValue {
                node: Some(id),
                field,
                ..
            } => {
                let name = &runbook.node(*id).name;
                text.push_str(&format!("\n── steps.{name}.{field} ──\n"));
                let view = steps.get(name).cloned().unwrap_or_default();
                let value = match field.as_str() {
                    "files" => view.files.join("\n"),
                    "status" => view.status,
                    _ => view.output,
                };
                text.push_str(&cap(&value));
            }
            ShowItem::StepValue { node: None, .. } => {}
        }
        if !text.ends_with('\n') {
            text.push('\n');
        }
    }
    let redacted = session.redactor.redact_str(&text);
    let sha = sha256_hex(text.as_bytes());
    (redacted, sha)
}

fn cap(s: &str) -> String {
    cap_at(s, SHOW_CAP)
}

/// The first `max` bytes of `s` (at a character boundary), saying how much was left out.
pub fn cap_at(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}\n… ({} more bytes)\n", &s[..end], s.len() - end)
}

/// The working tree's changes, from git when it is a repository.
fn diff(workdir: &std::path::Path) -> String {
    let out = std::process::Command::new("git")
        .args(["diff", "--stat", "--patch", "HEAD", "--"])
        .current_dir(workdir)
        .output();
    match out {
        Ok(o) if o.status.success() => {
            let text = String::from_utf8_lossy(&o.stdout).to_string();
            if text.trim().is_empty() {
                "(no changes)\n".into()
            } else {
                text
            }
        }
        _ => "(not a git repository: no diff to show)\n".into(),
    }
}

/// Who is deciding: `--as`, else RUNBOOK_USER, else USER.
pub fn default_identity() -> String {
    std::env::var("RUNBOOK_USER")
        .or_else(|_| std::env::var("USER"))
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into())
}

/// Whether `identity` may decide `cp`: anyone, unless it names its approvers.
pub fn may_decide(cp: &Checkpoint, identity: &str) -> bool {
    cp.approvers.is_empty() || cp.approvers.iter().any(|a| a == identity)
}

/// The checkpoint's `timeout` as written, if it was asked longer ago than that.
pub fn expired(cp: &Checkpoint, state: &super::state::RunState, name: &str) -> Option<String> {
    let timeout = cp.timeout.as_ref()?;
    let asked = super::event::parse_time(state.asked_at.get(name)?)?;
    let limit = i64::try_from(timeout.duration.as_millis()).unwrap_or(i64::MAX);
    (super::event::now_ms().saturating_sub(asked) > limit).then(|| timeout.text.clone())
}

/// Turns a recorded decision into an action.
pub fn act(cp: &Checkpoint, decision: Decision, comment: Option<String>) -> Action {
    match decision {
        Decision::Approve | Decision::Skip | Decision::Ours | Decision::Theirs => Action::Proceed,
        Decision::Reject => {
            Action::Reject(comment.unwrap_or_else(|| "rejected at the checkpoint".into()))
        }
        Decision::Revise => match cp.revise {
            Some((target, _)) => Action::Revise {
                target,
                comment: comment.unwrap_or_default(),
            },
            None => Action::Reject(
                "revise requested, but the checkpoint names no step to revise".into(),
            ),
        },
    }
}

/// Decides a checkpoint now: a recorded decision bound to this content, a
/// pre-approval, the terminal, or nothing yet.
pub fn decide(
    session: &Session,
    state: &super::state::RunState,
    node: NodeId,
    steps: &BTreeMap<String, StepView>,
) -> Result<Action, String> {
    let runbook = session.checked.runbook();
    let n = runbook.node(node);
    let cp = n.checkpoint().expect("a checkpoint");
    let (text, sha) = content(session, node, steps);
    if let Some(d) = state.decisions.get(&n.name) {
        if d.content_sha256 == sha {
            return Ok(act(cp, d.decision, d.comment.clone()));
        }
        session.progress.line(&format!(
            "checkpoint {}: what it shows changed since {} decided; asking again",
            n.name, d.by
        ));
    }
    let journal = |e: Event| session.journal.append(&e).map_err(|e| e.to_string());
    if let Some(expired) = expired(cp, state, &n.name) {
        // Fail closed: no decision in time counts as a rejection.
        let reason = format!("no decision within {expired}");
        journal(Event::CheckpointDecided {
            time: now(),
            checkpoint: n.name.clone(),
            decision: Decision::Reject,
            by: "timeout".into(),
            comment: Some(reason.clone()),
            content_sha256: sha,
            preapproved: false,
        })?;
        return Ok(Action::Reject(reason));
    }
    // What was shown is part of the record: the decision is bound to its sha256, and an
    // auditor can read exactly what the approver saw.
    let shown = session
        .dir
        .path()
        .join("checkpoints")
        .join(&n.name)
        .join(format!("{sha}.txt"));
    if let Err(e) = shown
        .parent()
        .map_or(Ok(()), std::fs::create_dir_all)
        .and_then(|()| crate::record::run_dir::write_replace(&shown, text.as_bytes()))
    {
        session
            .progress
            .warn(&format!("cannot record {}: {e}", shown.display()));
    } else {
        crate::record::crash::reached("file:checkpoint");
    }
    journal(Event::CheckpointAsked {
        time: now(),
        checkpoint: n.name.clone(),
        content_sha256: sha.clone(),
        escalation: false,
        tip: session
            .workspace
            .as_ref()
            .and_then(|ws| ws.tip().ok())
            .map(|t| t.to_string()),
    })?;
    let pre = session.options.approve_all || session.options.approve.iter().any(|a| a == &n.name);
    let may_decide = may_decide(cp, &session.options.identity);
    if pre && !may_decide {
        // A pre-approval is a decision like any other: `approvers` binds it too.
        session.progress.line(&format!(
            "checkpoint {}: not pre-approved, {} is not among its approvers ({})",
            n.name,
            session.options.identity,
            cp.approvers.join(", ")
        ));
    }
    if pre && may_decide {
        let by = if session.options.approve_all {
            "--approve-all"
        } else {
            "--approve"
        };
        journal(Event::CheckpointDecided {
            time: now(),
            checkpoint: n.name.clone(),
            decision: Decision::Approve,
            by: format!("{} ({by})", session.options.identity),
            comment: None,
            content_sha256: sha,
            preapproved: true,
        })?;
        session
            .progress
            .line(&format!("✓ checkpoint {} pre-approved ({by})", n.name));
        return Ok(Action::Proceed);
    }
    if !session.options.interactive {
        return Ok(Action::Wait);
    }
    let (decision, comment) = session
        .progress
        .suspend(|| prompt(&n.name, n.title.as_deref(), &text, cp.revise.is_some()));
    let (decision, comment) = match decision {
        Some(d) => (d, comment),
        None => return Ok(Action::Wait),
    };
    if !may_decide {
        session.progress.line(&format!(
            "{} may not decide checkpoint {} (approvers: {}); the run waits for them",
            session.options.identity,
            n.name,
            cp.approvers.join(", ")
        ));
        return Ok(Action::Wait);
    }
    journal(Event::CheckpointDecided {
        time: now(),
        checkpoint: n.name.clone(),
        decision,
        by: session.options.identity.clone(),
        comment: comment.clone(),
        content_sha256: sha,
        preapproved: false,
    })?;
    Ok(act(cp, decision, comment))
}

/// Asks on the terminal. `None` means "decide later" (suspend).
fn prompt(
    name: &str,
    title: Option<&str>,
    text: &str,
    can_revise: bool,
) -> (Option<Decision>, Option<String>) {
    use dialoguer::{Input, Select};
    let summary: String = text.lines().take(40).collect::<Vec<_>>().join("\n");
    eprintln!(
        "\n━━ checkpoint {name}{} ━━\n{summary}",
        title.map(|t| format!(": {t}")).unwrap_or_default()
    );
    let mut items = vec!["approve", "reject (roll back and stop)"];
    if can_revise {
        items.push("revise (re-run the step with a comment)");
    }
    items.push("show everything");
    items.push("decide later (suspend the run)");
    loop {
        let choice = Select::new()
            .with_prompt("decision")
            .items(&items)
            .default(0)
            .interact_opt();
        let Ok(Some(i)) = choice else {
            return (None, None);
        };
        match items[i] {
            "approve" => return (Some(Decision::Approve), None),
            "show everything" => eprintln!("{text}"),
            "decide later (suspend the run)" => return (None, None),
            item if item.starts_with("reject") => {
                let c: String = Input::new()
                    .with_prompt("reason (optional)")
                    .allow_empty(true)
                    .interact_text()
                    .unwrap_or_default();
                return (Some(Decision::Reject), (!c.is_empty()).then_some(c));
            }
            _ => {
                let c: String = Input::new()
                    .with_prompt("what should change")
                    .interact_text()
                    .unwrap_or_default();
                return (Some(Decision::Revise), Some(c));
            }
        }
    }
}

/// One answer of a decision menu: its label, the decision (`None`: decide later), and
/// the prompt for a comment it asks for.
type Choice = (String, Option<Decision>, Option<&'static str>);

/// Shows a menu of decisions; `(None, None)` means "decide later" (or no answer).
fn choose(choices: &[Choice]) -> (Option<Decision>, Option<String>) {
    use dialoguer::{Input, Select};
    let labels: Vec<&str> = choices.iter().map(|(label, _, _)| label.as_str()).collect();
    let Ok(Some(i)) = Select::new()
        .with_prompt("decision")
        .items(&labels)
        .default(0)
        .interact_opt()
    else {
        return (None, None);
    };
    let (_, decision, comment) = &choices[i];
    let comment = comment.map(|prompt| {
        Input::<String>::new()
            .with_prompt(prompt)
            .interact_text()
            .unwrap_or_default()
    });
    (*decision, comment)
}

/// Asks what to do about a step whose commit conflicts with the run branch.
pub fn conflict_prompt(step: &str, text: &str) -> (Option<Decision>, Option<String>) {
    eprintln!("\n━━ merge conflict: step {step} ━━\n{text}");
    choose(&[
        (
            format!("re-run {step} on top of the run branch, with the conflict as feedback"),
            Some(Decision::Approve),
            None,
        ),
        (
            format!("re-run {step} with a comment too"),
            Some(Decision::Revise),
            Some("comment"),
        ),
        (
            "keep the run branch's side of the conflicting paths (ours)".into(),
            Some(Decision::Ours),
            None,
        ),
        (
            format!("take {step}'s side of the conflicting paths (theirs)"),
            Some(Decision::Theirs),
            None,
        ),
        ("roll back and stop".into(), Some(Decision::Reject), None),
        ("decide later (suspend the run)".into(), None, None),
    ])
}

/// Asks what to do about a failed `on_failure escalate` step.
pub fn escalate_prompt(step: &str, reason: &str) -> (Option<Decision>, Option<String>) {
    eprintln!("\n━━ step {step} failed ━━\n{reason}");
    choose(&[
        ("retry".into(), Some(Decision::Approve), None),
        (
            "retry with a comment (feedback)".into(),
            Some(Decision::Revise),
            Some("feedback"),
        ),
        ("skip the step and go on".into(), Some(Decision::Skip), None),
        ("roll back and stop".into(), Some(Decision::Reject), None),
        ("decide later (suspend the run)".into(), None, None),
    ])
}
