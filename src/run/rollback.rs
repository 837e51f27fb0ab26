//! Compensation: the `rollback` blocks of completed steps and of phases that did work,
//! in reverse order of completion, then the runbook's own. A failing compensation is
//! reported and recorded, and the others still run.

use super::event::{now, Event};
use super::state::RunState;
use super::{Session, SHELL};
use crate::agents::process::{run_process, ProcessSpec};
use crate::ir::RollbackBlock;

/// Runs every compensation that applies; returns whether all succeeded.
pub async fn run(session: &Session, state: &RunState, reason: &str) -> Result<bool, String> {
    let runbook = session.checked.runbook();
    let journal = |e: Event| session.journal.append(&e).map_err(|e| e.to_string());
    // Compensations change the world: the journal must say that a rollback began (and
    // everything before it) before the first one runs, or a resume could carry on.
    let started = journal(Event::RollbackStarted {
        time: now(),
        reason: reason.to_string(),
    })?;
    session
        .journal
        .durable(started)
        .await
        .map_err(|e| e.to_string())?;
    session.progress.line(&format!("rolling back: {reason}"));
    let mut blocks: Vec<(String, &RollbackBlock)> = Vec::new();
    let mut phases_done = std::collections::HashSet::new();
    for (i, name) in state.completed.iter().enumerate().rev() {
        let Some(id) = runbook.node_named(name) else {
            continue;
        };
        let node = runbook.node(id);
        if let Some(rb) = node.step().and_then(|s| s.rollback.as_ref()) {
            blocks.push((format!("step {name}"), rb));
        }
        // A phase is compensated after the last of its completed steps is (in reverse
        // order: at its earliest completed step).
        let phase = node.phase;
        let earlier_in_phase = state.completed[..i]
            .iter()
            .filter_map(|n| runbook.node_named(n))
            .any(|other| runbook.node(other).phase == phase);
        if !earlier_in_phase && phases_done.insert(phase) {
            let p = runbook.phase(phase);
            if let Some(rb) = &p.rollback {
                blocks.push((format!("phase {}", p.name), rb));
            }
        }
    }
    for rb in runbook.rollback.iter().rev() {
        blocks.push(("runbook".to_string(), rb));
    }
    let mut all_ok = true;
    let base = session.dir.path().join("rollback");
    // Compensations run as the builtin shell, confined like any shell step to the
    // worktree they run in.
    let tmp = session.dir.path().join("tmp").join("rollback");
    let shell = runbook.agent(crate::ir::SHELL);
    let sandbox = super::confine::prepare(session, shell, &session.workdir, &tmp, &[], None, &[])
        .map_err(|e| format!("cannot confine the compensations: {e}"))?;
    let mut env = session.base_env.clone();
    if sandbox.is_some() {
        env.push(("TMPDIR".into(), tmp.display().to_string()));
    }
    let already = std::fs::read_dir(&base).map(|d| d.count()).unwrap_or(0);
    let mut n = already;
    let empty = std::collections::BTreeMap::new();
    for (scope, rb) in blocks {
        for template in &rb.sh {
            n += 1;
            let dir = base.join(format!("{n:03}"));
            std::fs::create_dir_all(&dir)
                .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
            let command = match session
                .renderer
                .render(template, &session.context, &empty, 1, "")
            {
                Ok(c) => c,
                Err(e) => {
                    all_ok = false;
                    session.progress.line(&format!(
                        "✗ ROLLBACK FAILED ({scope}): cannot render `{}`: {e}",
                        template.text
                    ));
                    journal(Event::RollbackAction {
                        time: now(),
                        scope: scope.clone(),
                        command: template.text.clone(),
                        ok: false,
                        exit_code: None,
                        log: dir.display().to_string(),
                    })?;
                    continue;
                }
            };
            let spec = ProcessSpec {
                program: SHELL.into(),
                args: vec!["-c".into(), command.clone()],
                cwd: session.workdir.clone(),
                env: env.clone(),
                stdin: None,
                stdout_path: dir.join("stdout.log"),
                stderr_path: dir.join("stderr.log"),
                timeout: rb.timeout.as_ref().map(|t| t.duration),
                capture_limit: 4096,
                filter: Some(session.filter.clone()),
                echo: session.echo(&scope),
                sandbox: sandbox.clone(),
            };
            // Compensation must finish even after Ctrl-C: it gets its own, never-set cancel.
            let (_keep, never) = tokio::sync::watch::channel(false);
            let outcome = run_process(spec, never).await;
            let (ok, code, detail) = match &outcome {
                Ok(o) => (
                    o.success(),
                    match o.exit {
                        crate::agents::process::ExitKind::Exited(c) => Some(c),
                        _ => None,
                    },
                    o.stderr_tail.trim().to_string(),
                ),
                Err(e) => (false, None, e.to_string()),
            };
            journal(Event::RollbackAction {
                time: now(),
                scope: scope.clone(),
                command: command.clone(),
                ok,
                exit_code: code,
                log: dir.display().to_string(),
            })?;
            if ok {
                session.progress.line(&format!("↩ {scope}: {command}"));
            } else {
                all_ok = false;
                session.progress.line(&format!(
                    "✗ ROLLBACK FAILED ({scope}): `{command}` {}{}\n  log: {}",
                    code.map(|c| format!("exited {c}"))
                        .unwrap_or_else(|| "did not finish".into()),
                    if detail.is_empty() {
                        String::new()
                    } else {
                        format!(": {detail}")
                    },
                    dir.display()
                ));
            }
        }
    }
    if let Some(ws) = &session.workspace {
        // The decisions it reads were durable before the first compensation ran.
        if let Err(e) = super::tree::reset_after_rollback(session, ws) {
            all_ok = false;
            session.progress.line(&format!(
                "✗ ROLLBACK FAILED: cannot reset the run branch {}: {e}",
                ws.branch()
            ));
        }
    }
    journal(Event::RollbackFinished {
        time: now(),
        ok: all_ok,
    })?;
    Ok(all_ok)
}
