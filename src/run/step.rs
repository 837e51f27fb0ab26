//! One step through its attempts: render, run the agent, run the `until` check, check
//! `produces`, and record every attempt.

use super::confine;
use super::context::{StepView, OUTPUT_CAP};
use super::event::FileChange;
use super::event::{now, Event};
use super::tree;
use super::{Session, SHELL};
use crate::agents::process::{
    run_process, ExitKind, ProcessOutcome, ProcessSpec, STDERR_TAIL_BYTES,
};
use crate::ir::{AgentKind, NodeId, OnFailure, Step};
use crate::record::sha256_hex;
use crate::workspace::StepTree;
use std::sync::Arc;
use std::time::Instant;

/// How a step ended.
#[derive(Debug)]
pub enum StepEnd {
    /// It succeeded; its view for templates.
    Succeeded(StepView),
    /// It failed after its last attempt.
    Failed(String),
    /// `when` was false.
    Skipped,
    /// Interrupted (Ctrl-C): left in flight in the journal, to re-run on resume.
    Interrupted,
    /// The journal could not be written: the run cannot go on safely.
    JournalError(String),
    /// Its commit conflicts with the run branch: a human decides. The text shows both sides.
    Conflict(super::state::ConflictRecord, String),
    /// The run stopped scheduling while it waited for a process slot: nothing was started
    /// or recorded, and it is pending again.
    NotStarted,
}

/// What the scheduler gets back.
#[derive(Debug)]
pub struct StepReport {
    /// The step.
    pub node: NodeId,
    /// How it ended.
    pub end: StepEnd,
    /// The journal sequence number of its last event.
    pub seq: u64,
}

#[derive(Default)]
struct AttemptResult {
    ok: bool,
    reason: Option<String>,
    exit_code: Option<i32>,
    output: String,
    interrupted: bool,
    /// The attempt's commit, what it changed, and the run branch after its merge.
    commit: Option<git2::Oid>,
    changes: Vec<FileChange>,
    tip: Option<git2::Oid>,
    /// Its commit conflicts with the run branch (and a description for the human).
    conflict: Option<(super::state::ConflictRecord, String)>,
    /// It never got a process slot (the run stopped meanwhile).
    not_started: bool,
    /// The process slot, held until the attempt's end is in the journal: with `--jobs N`
    /// the journal never shows more than N attempts between start and finish.
    slot: Option<Slot>,
    /// What a CLI agent reported, and the argv it was started with.
    agent: Option<crate::agents::report::AgentReport>,
    argv: Option<Vec<String>>,
    /// Held from before its commit is merged until its `step_finished` is in the journal:
    /// the journal then records landings in the order the branch took them, and a
    /// resume that resets the branch to a recorded tip never keeps the merge of a step
    /// whose end was lost (which would then land a second time).
    landing: Option<tokio::sync::OwnedMutexGuard<()>>,
    /// Its `result.json`: the path and the bytes, written by the journal's writer right
    /// before the attempt's `step_finished` line.
    record: Option<(std::path::PathBuf, Vec<u8>)>,
}

/// A `--jobs` process slot.
pub type Slot = tokio::sync::OwnedSemaphorePermit;

/// Runs `node` from attempt `first_attempt`, with `feedback` for it; `rebase` moves its
/// worktree onto the run branch first (a re-run after a merge conflict). Returns the
/// report and the last attempt's process slot, for the caller to free once the report
/// is on its way.
pub async fn run(
    session: Arc<Session>,
    node: NodeId,
    first_attempt: u32,
    counted: u32,
    feedback: String,
    rebase: bool,
) -> (StepReport, Option<Slot>) {
    let mut slot = None;
    let report = attempts(
        session,
        node,
        first_attempt,
        counted,
        feedback,
        rebase,
        &mut slot,
    )
    .await;
    (report, slot)
}

/// [`run`]'s attempts; the last one's slot is left in `held`.
async fn attempts(
    session: Arc<Session>,
    node: NodeId,
    first_attempt: u32,
    counted: u32,
    mut feedback: String,
    rebase: bool,
    held: &mut Option<Slot>,
) -> StepReport {
    let runbook = session.checked.runbook();
    let n = runbook.node(node);
    let step = n.step().expect("scheduled nodes that run are steps");
    let mut seq = 0;
    let journal = |e: Event| session.journal.append(&e).map_err(|e| e.to_string());

    if let Some(when) = &step.when {
        match session.with_views(|steps| session.renderer.condition(when, &session.context, steps))
        {
            Ok(true) => {}
            Ok(false) => {
                let e = Event::StepSkipped {
                    time: now(),
                    step: n.name.clone(),
                    reason: format!("when \"{}\" is false", when.text),
                };
                return match journal(e) {
                    Ok(s) => StepReport {
                        node,
                        end: StepEnd::Skipped,
                        seq: s,
                    },
                    Err(e) => StepReport {
                        node,
                        end: StepEnd::JournalError(e),
                        seq,
                    },
                };
            }
            Err(e) => {
                return fail_without_attempt(
                    &session,
                    node,
                    first_attempt,
                    format!("cannot evaluate `when`: {e}"),
                );
            }
        }
    }

    let tree = match &session.workspace {
        None => None,
        Some(ws) => {
            let prepared = {
                let (session, ws) = (session.clone(), ws.clone());
                tokio::task::spawn_blocking(move || tree::prepare(&session, &ws, node, rebase))
                    .await
                    .unwrap_or_else(|e| Err(format!("preparing the worktree panicked: {e}")))
            };
            match prepared {
                Ok(t) => Some(t),
                Err(e) => {
                    return fail_without_attempt(
                        &session,
                        node,
                        first_attempt,
                        format!("cannot prepare the step's worktree: {e}"),
                    )
                }
            }
        }
    };
    let total = step.until.as_ref().map_or(1, |u| u.attempts);
    let mut attempt = first_attempt;
    let mut used = counted;
    loop {
        used += 1;
        let last = !(used < total && step.until.is_some());
        let result = attempt_once(
            &session,
            node,
            step,
            attempt,
            &feedback,
            tree.as_ref(),
            last,
        )
        .await;
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                return StepReport {
                    node,
                    end: StepEnd::JournalError(e),
                    seq,
                }
            }
        };
        if result.0.not_started {
            return StepReport {
                node,
                end: StepEnd::NotStarted,
                seq,
            };
        }
        if result.0.interrupted {
            // No `step_finished` carries this attempt's result: it is written here.
            if let Some((path, bytes)) = &result.0.record {
                write_record_or_warn(&session, path, bytes);
            }
            return StepReport {
                node,
                end: StepEnd::Interrupted,
                seq,
            };
        }
        let (mut r, started, duration_ms) = result;
        let _ = started;
        let retry = !r.ok && r.conflict.is_none() && used < total && step.until.is_some();
        let e = Event::StepFinished {
            time: now(),
            step: n.name.clone(),
            attempt,
            ok: r.ok,
            reason: r.reason.clone(),
            exit_code: r.exit_code,
            duration_ms,
            retry,
            commit: r.commit.map(|c| c.to_string()),
            changes: r.changes.clone(),
            tip: r.tip.map(|t| t.to_string()),
            // The message is in `message.md`: the journal keeps what the state needs.
            agent: r.agent.clone().map(|mut a| {
                a.message.clear();
                a
            }),
        };
        let appended = match r.record.take() {
            Some((path, bytes)) => session
                .journal
                .append_after_record(&e, path, bytes)
                .map_err(|e| e.to_string()),
            None => journal(e),
        };
        // Its end is queued: the slot may go to the next process (after a retry's, this
        // attempt's own next one).
        *held = r.slot;
        drop(r.landing);
        match appended {
            Ok(s) => seq = s,
            Err(e) => {
                return StepReport {
                    node,
                    end: StepEnd::JournalError(e),
                    seq,
                }
            }
        }
        session
            .progress
            .step_finished(&n.name, attempt, r.ok, retry, duration_ms);
        if let Some((record, text)) = r.conflict {
            return StepReport {
                node,
                end: StepEnd::Conflict(record, text),
                seq,
            };
        }
        if r.ok {
            let view = StepView {
                output: r.output,
                files: r.changes.iter().map(|c| c.path.clone()).collect(),
                status: "succeeded".into(),
            };
            return StepReport {
                node,
                end: StepEnd::Succeeded(view),
                seq,
            };
        }
        if !retry {
            return StepReport {
                node,
                end: StepEnd::Failed(r.reason.unwrap_or_else(|| "failed".into())),
                seq,
            };
        }
        feedback = r.reason.unwrap_or_default();
        *held = None;
        attempt += 1;
    }
}

fn fail_without_attempt(
    session: &Session,
    node: NodeId,
    attempt: u32,
    reason: String,
) -> StepReport {
    let n = session.checked.runbook().node(node);
    let e = Event::StepFinished {
        time: now(),
        step: n.name.clone(),
        attempt,
        ok: false,
        reason: Some(reason.clone()),
        exit_code: None,
        duration_ms: 0,
        retry: false,
        commit: None,
        changes: Vec::new(),
        tip: None,
        agent: None,
    };
    match session.journal.append(&e) {
        Ok(seq) => StepReport {
            node,
            end: StepEnd::Failed(reason),
            seq,
        },
        Err(e) => StepReport {
            node,
            end: StepEnd::JournalError(e.to_string()),
            seq: 0,
        },
    }
}

/// The environment of an agent process: PATH, HOME, LANG, the agent's `env`, the run's variables.
fn environment(
    session: &Session,
    agent: &crate::ir::Agent,
    step: &str,
    attempt: u32,
    prompt_file: &std::path::Path,
) -> Vec<(String, String)> {
    let mut env = session.base_env.clone();
    for name in &agent.permissions.env.value {
        if let Some(value) = session.secrets.get(name) {
            env.push((name.clone(), value.clone()));
        } else if let Ok(value) = std::env::var(name) {
            env.push((name.clone(), value));
        }
    }
    env.push(("RUNBOOK_RUN_ID".into(), session.context.run_id.clone()));
    env.push(("RUNBOOK_RUN_DIR".into(), session.context.run_dir.clone()));
    env.push(("RUNBOOK_STEP".into(), step.to_string()));
    env.push(("RUNBOOK_ATTEMPT".into(), attempt.to_string()));
    env.push((
        "RUNBOOK_PROMPT_FILE".into(),
        prompt_file.display().to_string(),
    ));
    env
}

#[allow(clippy::too_many_arguments)]
async fn attempt_once(
    session: &Arc<Session>,
    node: NodeId,
    step: &Step,
    attempt: u32,
    feedback: &str,
    tree: Option<&StepTree>,
    last: bool,
) -> Result<(AttemptResult, Instant, u64), String> {
    let workdir = tree.map_or_else(|| session.workdir.clone(), |t| t.path.clone());
    let runbook = session.checked.runbook();
    let n = runbook.node(node);
    let agent = runbook.agent(step.agent.expect("checked steps have agents"));
    let dir = session
        .dir
        .create_attempt_dir(&n.name, attempt)
        .map_err(|e| {
            let dir = session.dir.step_attempt_dir(&n.name, attempt);
            format!("cannot create {}: {e}", dir.path().display())
        })?;
    let prompt_path = dir.join("prompt.md");
    let started = Instant::now();

    // Render what the agent receives.
    let rendered: Result<Vec<String>, String> = session.with_views(|steps| match &agent.kind {
        AgentKind::Command { .. } => step
            .prompt
            .iter()
            .map(|t| {
                session
                    .renderer
                    .render(t, &session.context, steps, attempt, feedback)
            })
            .collect(),
        AgentKind::Shell => step
            .sh
            .iter()
            .map(|t| {
                session
                    .renderer
                    .render(t, &session.context, steps, attempt, feedback)
            })
            .collect(),
    });
    let body = rendered.as_ref().map(|r| r.join("\n")).unwrap_or_default();
    let redacted = session.redactor.redact_str(&body);
    crate::record::run_dir::write_record(&prompt_path, redacted.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", prompt_path.display()))?;
    let prompt_sha256 = sha256_hex(body.as_bytes());

    // Everything above overlaps other steps' processes; from here on this attempt holds
    // one of the `--jobs` slots until its outcome is known.
    let Some(slot) = take_slot(session).await else {
        // Nothing of it happened: no record of it either.
        let _ = session.dir.remove_attempt_dir(&n.name, attempt);
        let r = AttemptResult {
            not_started: true,
            ..Default::default()
        };
        return Ok((r, started, 0));
    };
    let started = Instant::now();
    let guard = match (&session.workspace, tree) {
        (Some(ws), Some(_)) => Some(ws.guard().map_err(|e| e.to_string())?),
        _ => None,
    };
    // Nothing waits for a start to be durable: it rides the next commit.
    session
        .journal
        .append_deferred(&Event::StepStarted {
            time: now(),
            step: n.name.clone(),
            attempt,
            agent: agent.name.clone(),
            prompt_sha256: prompt_sha256.clone(),
            base: tree.map(|t| t.base.to_string()),
        })
        .map_err(|e| e.to_string())?;
    session.progress.step_started(&n.name, attempt);

    // An attempt that ends before its process starts is recorded like any other end.
    let fail_early = |reason: String, slot| {
        let mut r = AttemptResult {
            ok: false,
            reason: Some(reason),
            slot: Some(slot),
            ..Default::default()
        };
        stop_if_final(session, step, last, &r);
        let ms = started.elapsed().as_millis() as u64;
        r.record = Some(result_record(
            &dir,
            n,
            agent,
            attempt,
            &r,
            ms,
            &prompt_sha256,
            session,
        ));
        (r, started, ms)
    };
    let lines = match rendered {
        Ok(lines) => lines,
        Err(e) => {
            return Ok(fail_early(format!("cannot render the template: {e}"), slot));
        }
    };
    let mut env = environment(session, agent, &n.name, attempt, &prompt_path);
    let timeout = runbook.step_timeout(step);
    // What the rendered lines run must be in `exec`, whatever the templates made of them.
    let mut to_check: Vec<&str> = match &agent.kind {
        AgentKind::Shell => lines.iter().map(String::as_str).collect(),
        AgentKind::Command { .. } => Vec::new(),
    };
    let rendered_until = step.until.as_ref().map(|until| {
        session.with_views(|steps| {
            session
                .renderer
                .render(&until.command, &session.context, steps, attempt, feedback)
        })
    });
    if let Some(Ok(command)) = &rendered_until {
        to_check.push(command);
    }
    let refused: Vec<String> = to_check
        .iter()
        .flat_map(|l| confine::disallowed_programs(agent, l))
        .collect();
    let tmp = session
        .dir
        .path()
        .join("tmp")
        .join(format!("{}-{attempt}", n.name));
    // A CLI agent the interpreter knows: its flags and config from the permissions.
    let tool = match (&agent.kind, agent.tool) {
        (AgentKind::Command { run }, Some(t)) => Some((t, run.as_str())),
        _ => None,
    };
    let mut invocation = None;
    if let (Some((t, run)), true) = (tool, refused.is_empty()) {
        match prepare_tool(
            session,
            agent,
            t,
            run,
            &workdir,
            &tmp,
            &dir,
            &prompt_path,
            &mut env,
        ) {
            Ok(inv) => invocation = Some(inv),
            Err(reason) => return Ok(fail_early(reason, slot)),
        }
    }
    let endpoints = invocation
        .as_ref()
        .map(|i| i.endpoints.clone())
        .unwrap_or_default();
    let mut extra_read = vec![prompt_path.clone()];
    for program in invocation.iter().flat_map(|i| &i.programs) {
        extra_read.extend(confine::program_paths(session, &workdir, program));
    }
    let sandbox = if refused.is_empty() {
        confine::prepare(
            session,
            agent,
            &workdir,
            &tmp,
            &extra_read,
            Some(&dir.join("network.log")),
            &endpoints,
        )
    } else {
        Err(format!(
            "not started: {} not in the `exec` list of agent `{}`",
            refused
                .iter()
                .map(|p| format!("`{p}`"))
                .collect::<Vec<_>>()
                .join(", "),
            agent.name
        ))
    };
    let sandbox = match sandbox {
        Ok(s) => s,
        Err(reason) => {
            return Ok(fail_early(reason, slot));
        }
    };
    if sandbox.is_some() {
        env.push(("TMPDIR".into(), tmp.display().to_string()));
        env.extend(confine::proxy_env(session, agent, &endpoints));
    }
    // The temp dir goes with the attempt, whichever way it ends.
    let _tmp_guard = (sandbox.is_some() || invocation.is_some()).then(|| TempDirGuard(tmp.clone()));
    let stdout_path = dir.join("stdout.log");
    let stderr_path = dir.join("stderr.log");

    let outcome = match &agent.kind {
        AgentKind::Command { run } => {
            let argv = match &invocation {
                Some(inv) => inv.argv.clone(),
                None => match crate::agents::process::split_command_line(run) {
                    Ok(argv) => argv,
                    Err(e) => {
                        return Ok(fail_early(format!("cannot split `{run}`: {e}"), slot));
                    }
                },
            };
            let on_stdin = invocation.as_ref().map_or(true, |i| i.prompt_on_stdin);
            let spec = ProcessSpec {
                program: argv[0].clone(),
                args: argv[1..].to_vec(),
                cwd: workdir.clone(),
                env: env.clone(),
                stdin: on_stdin.then(|| body.clone().into_bytes()),
                stdout_path: stdout_path.clone(),
                stderr_path: stderr_path.clone(),
                timeout,
                capture_limit: OUTPUT_CAP,
                filter: Some(session.filter.clone()),
                echo: session.echo(&n.name),
                sandbox: sandbox.clone(),
            };
            let scratch = invocation.as_ref().map(new_scratch).unwrap_or_default();
            let outcome = run_process(spec, session.cancel.clone()).await;
            remove_scratch(&scratch);
            outcome
        }
        AgentKind::Shell => {
            run_lines(
                session,
                &workdir,
                &lines,
                &env,
                &stdout_path,
                &stderr_path,
                timeout,
                &n.name,
                sandbox.clone(),
            )
            .await
        }
    };
    let mut result = match outcome {
        Err(e) => AttemptResult {
            ok: false,
            reason: Some(e.to_string()),
            exit_code: None,
            output: String::new(),
            interrupted: false,
            ..Default::default()
        },
        Ok(o) => judge(&o, timeout),
    };
    if result.interrupted {
        return Ok((result, started, started.elapsed().as_millis() as u64));
    }
    if let (Some((t, _)), Some(inv)) = (tool, &invocation) {
        result.argv = Some(
            inv.argv
                .iter()
                .map(|a| session.redactor.redact_str(a))
                .collect(),
        );
        let transcript = inv.transcript.as_deref();
        apply_report(
            session,
            agent,
            t,
            &dir,
            &stdout_path,
            transcript,
            &mut result,
        );
    }
    if result.ok {
        for p in &step.produces {
            if !produced(&workdir, &p.path) {
                result.ok = false;
                result.reason = Some(format!(
                    "the step did not produce `{}`, which it must create or change",
                    p.path
                ));
                break;
            }
        }
    }
    if result.ok {
        if let Some(check) = rendered_until {
            match check {
                Err(e) => {
                    result.ok = false;
                    result.reason = Some(format!("cannot render the `until` check: {e}"));
                }
                Ok(command) => {
                    let spec = ProcessSpec {
                        program: SHELL.into(),
                        args: vec!["-c".into(), command.clone()],
                        cwd: workdir.clone(),
                        env: env.clone(),
                        stdin: None,
                        stdout_path: dir.join("check.log"),
                        stderr_path: dir.join("check.stderr.log"),
                        timeout,
                        capture_limit: 16 * 1024,
                        filter: Some(session.filter.clone()),
                        echo: None,
                        sandbox: sandbox.clone(),
                    };
                    match run_process(spec, session.cancel.clone()).await {
                        Err(e) => {
                            result.ok = false;
                            result.reason =
                                Some(format!("the check `{command}` could not start: {e}"));
                        }
                        Ok(o) if matches!(o.exit, ExitKind::Cancelled) => {
                            result.interrupted = true;
                            return Ok((result, started, started.elapsed().as_millis() as u64));
                        }
                        Ok(o) if !o.success() => {
                            result.ok = false;
                            let mut out = o.stdout.clone();
                            if !o.stderr_tail.is_empty() {
                                out.push_str(&o.stderr_tail);
                            }
                            result.reason = Some(check_failure(&command, &o.exit, &out));
                        }
                        Ok(_) => {}
                    }
                }
            }
        }
    }
    if let (Some(ws), Some(tree), Some(guard)) = (&session.workspace, tree, guard) {
        result.landing = Some(session.landing.clone().lock_owned().await);
        let subject = n
            .title
            .clone()
            .unwrap_or_else(|| lines_subject(&lines_for_subject(step, &body)));
        let outcome = {
            let (session, ws, tree) = (session.clone(), ws.clone(), tree.clone());
            let (name, agent_name, ok) = (n.name.clone(), agent.name.clone(), result.ok);
            let write = agent.permissions.write.value.clone();
            let prompt_sha256 = prompt_sha256.clone();
            tokio::task::spawn_blocking(move || -> Result<Finished, String> {
                let found = tree::violations(&ws, &tree, &write, &guard)?;
                if !found.is_empty() {
                    let reason = tree::reject_attempt(
                        &session,
                        &ws,
                        &tree,
                        &agent_name,
                        attempt,
                        found,
                        &guard,
                    )?;
                    return Ok(Finished::Violated(reason));
                }
                if !ok {
                    return Ok(Finished::NotLanded);
                }
                let info = tree::CommitInfo {
                    step: &name,
                    subject: &subject,
                    agent: &agent_name,
                    attempt,
                    prompt_sha256: &prompt_sha256,
                };
                let landed = tree::land(&session, &ws, &tree, &info)?;
                if matches!(landed, tree::Landed::Merged { .. }) {
                    // Its files are its commit now; a revise recreates the worktree there.
                    // Keeping one checkout per running step, not per step of the run,
                    // bounds disk use and what every `.git` snapshot has to read.
                    ws.remove_step_tree(&tree.step).map_err(|e| e.to_string())?;
                }
                Ok(Finished::Landed(landed))
            })
            .await
            .unwrap_or_else(|e| Err(format!("committing the step panicked: {e}")))
        };
        match outcome {
            Err(e) => {
                result.ok = false;
                result.reason = Some(format!("cannot commit the step's changes: {e}"));
            }
            Ok(Finished::NotLanded) => {}
            Ok(Finished::Violated(reason)) => {
                result.ok = false;
                result.reason = Some(reason);
            }
            Ok(Finished::Landed(tree::Landed::Merged {
                commit,
                changes,
                tip,
            })) => {
                result.commit = commit;
                result.changes = changes;
                result.tip = Some(tip);
            }
            Ok(Finished::Landed(tree::Landed::Conflict { conflict, changes })) => {
                let text = tree::describe_conflict(&n.name, &conflict);
                session
                    .journal
                    .append(&Event::MergeConflict {
                        time: now(),
                        step: n.name.clone(),
                        attempt,
                        commit: conflict.theirs.to_string(),
                        ours: conflict.ours.to_string(),
                        paths: conflict.paths.clone(),
                        changes: changes.clone(),
                    })
                    .map_err(|e| e.to_string())?;
                result.ok = false;
                result.commit = Some(conflict.theirs);
                result.changes = changes;
                result.reason = Some(format!(
                    "its commit conflicts with the run branch in {}",
                    conflict.paths.join(", ")
                ));
                let record = super::state::ConflictRecord {
                    commit: conflict.theirs.to_string(),
                    ours: conflict.ours.to_string(),
                    paths: conflict.paths.clone(),
                    changes: result.changes.clone(),
                };
                result.conflict = Some((record, text));
            }
        }
    }
    // Before the slot is free: no step may start after a failure that ends the run.
    stop_if_final(session, step, last, &result);
    result.slot = Some(slot);
    let ms = started.elapsed().as_millis() as u64;
    result.record = Some(result_record(
        &dir,
        n,
        agent,
        attempt,
        &result,
        ms,
        &prompt_sha256,
        session,
    ));
    Ok((result, started, ms))
}

/// Stops the scheduling of new steps when this failed attempt ends the run (its last
/// attempt, and the step rolls back on failure).
fn stop_if_final(session: &Session, step: &Step, last: bool, result: &AttemptResult) {
    if !result.ok && result.conflict.is_none() && last && step.on_failure == OnFailure::Rollback {
        session
            .stopping
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Waits for a process slot; `None` when the run stops scheduling (or is interrupted)
/// first.
async fn take_slot(session: &Arc<Session>) -> Option<tokio::sync::OwnedSemaphorePermit> {
    let stopping = || session.stopping.load(std::sync::atomic::Ordering::SeqCst);
    if stopping() || *session.cancel.borrow() {
        return None;
    }
    let mut cancel = session.cancel.clone();
    let permit = tokio::select! {
        p = session.slots.clone().acquire_owned() => p.ok()?,
        _ = cancel.wait_for(|c| *c) => return None,
    };
    // The run may have stopped while this one waited.
    (!stopping()).then_some(permit)
}

/// How the workspace side of an attempt ended.
enum Finished {
    /// The attempt failed on its own: nothing to commit, files kept for the next one.
    NotLanded,
    /// It changed what it may not: dropped, with this reason.
    Violated(String),
    /// Committed and merged, or conflicting.
    Landed(tree::Landed),
}

/// The text a commit subject is taken from when the step has no title.
fn lines_for_subject(step: &Step, body: &str) -> String {
    if step.sh.is_empty() {
        body.to_string()
    } else {
        body.lines().next().unwrap_or("").to_string()
    }
}

/// The first non-empty line, without Markdown heading marks.
fn lines_subject(text: &str) -> String {
    text.lines()
        .map(|l| l.trim().trim_start_matches('#').trim())
        .find(|l| !l.is_empty())
        .unwrap_or("(empty prompt)")
        .to_string()
}

/// Runs each `sh` line through `sh -c`, stopping at the first failure; the logs of all
/// lines end up, in order, in the attempt's stdout.log and stderr.log.
#[allow(clippy::too_many_arguments)]
async fn run_lines(
    session: &Arc<Session>,
    workdir: &std::path::Path,
    lines: &[String],
    env: &[(String, String)],
    stdout_path: &std::path::Path,
    stderr_path: &std::path::Path,
    timeout: Option<std::time::Duration>,
    step: &str,
    sandbox: Option<Arc<crate::sandbox::Prepared>>,
) -> std::io::Result<ProcessOutcome> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut last: Option<ProcessOutcome> = None;
    let mut captured = String::new();
    let single = lines.len() == 1;
    for (i, line) in lines.iter().enumerate() {
        let (out, err) = if single {
            (stdout_path.to_path_buf(), stderr_path.to_path_buf())
        } else {
            (
                stdout_path.with_extension(format!("{i}.log")),
                stderr_path.with_extension(format!("{i}.log")),
            )
        };
        let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let spec = ProcessSpec {
            program: SHELL.into(),
            args: vec!["-c".into(), line.clone()],
            cwd: workdir.to_path_buf(),
            env: env.to_vec(),
            stdin: None,
            stdout_path: out.clone(),
            stderr_path: err.clone(),
            timeout: remaining,
            capture_limit: OUTPUT_CAP,
            filter: Some(session.filter.clone()),
            echo: session.echo(step),
            sandbox: sandbox.clone(),
        };
        let o = run_process(spec, session.cancel.clone()).await?;
        if !single {
            append_file(stdout_path, &out)?;
            append_file(stderr_path, &err)?;
        }
        if captured.len() < OUTPUT_CAP {
            captured.push_str(&o.stdout);
        }
        let ok = o.success();
        last = Some(o);
        if !ok {
            break;
        }
    }
    let mut o = last.ok_or_else(|| std::io::Error::other("the step has no commands"))?;
    captured.truncate(floor_char_boundary(&captured, OUTPUT_CAP));
    o.stdout = captured;
    Ok(o)
}

/// Removes an attempt's temp dir when the attempt is over.
struct TempDirGuard(std::path::PathBuf);

impl Drop for TempDirGuard {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The last `max` bytes of `s` at most, starting on a character boundary.
fn tail_at_char_boundary(s: &str, max: usize) -> &str {
    let mut start = s.len().saturating_sub(max);
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    if i >= s.len() {
        return s.len();
    }
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Appends `from` to `into` and removes it; an absent `from` (the line printed nothing)
/// adds nothing and creates nothing.
fn append_file(into: &std::path::Path, from: &std::path::Path) -> std::io::Result<()> {
    let mut src = match std::fs::File::open(from) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let mut dst = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(into)?;
    std::io::copy(&mut src, &mut dst)?;
    std::fs::remove_file(from)
}

/// The feedback of a failed `until` check: what failed, how, and what it printed.
fn check_failure(command: &str, exit: &ExitKind, output: &str) -> String {
    let output = output.trim_end();
    if output.is_empty() {
        format!(
            "The check `{command}` failed ({}) and printed nothing.",
            exit_word(exit)
        )
    } else {
        format!(
            "The check `{command}` failed ({}):\n{output}",
            exit_word(exit)
        )
    }
}

fn exit_word(exit: &ExitKind) -> String {
    match exit {
        ExitKind::Exited(c) => format!("exit {c}"),
        ExitKind::Signaled(s) => format!("killed by signal {s}"),
        ExitKind::TimedOut => "timed out".into(),
        ExitKind::Cancelled => "interrupted".into(),
    }
}

fn judge(o: &ProcessOutcome, timeout: Option<std::time::Duration>) -> AttemptResult {
    let output = o.stdout.trim_end().to_string();
    match &o.exit {
        ExitKind::Exited(0) => AttemptResult {
            ok: true,
            reason: None,
            exit_code: Some(0),
            output,
            interrupted: false,
            ..Default::default()
        },
        ExitKind::Cancelled => AttemptResult {
            ok: false,
            reason: Some("interrupted".into()),
            exit_code: None,
            output,
            interrupted: true,
            ..Default::default()
        },
        ExitKind::TimedOut => AttemptResult {
            ok: false,
            reason: Some(format!(
                "timed out after {}",
                timeout.map(|t| format!("{t:?}")).unwrap_or_default()
            )),
            exit_code: None,
            output,
            interrupted: false,
            ..Default::default()
        },
        other => {
            let tail = o.stderr_tail.trim_end();
            let reason = if tail.is_empty() {
                exit_word(other)
            } else {
                format!("{}:\n{tail}", exit_word(other))
            };
            let code = match other {
                ExitKind::Exited(c) => Some(*c),
                _ => None,
            };
            AttemptResult {
                ok: false,
                reason: Some(reason),
                exit_code: code,
                output,
                interrupted: false,
                ..Default::default()
            }
        }
    }
}

fn produced(workdir: &std::path::Path, path: &str) -> bool {
    if !path.contains(['*', '?', '[', '{']) {
        return workdir.join(path).exists();
    }
    // A glob: something under the workdir must match it.
    let Ok(p) = crate::ir::pattern::Pattern::new(
        path,
        crate::ir::pattern::PatternKind::Path,
        crate::syntax::source::Location {
            file: crate::syntax::source::FileId(0),
            span: Default::default(),
        },
    ) else {
        return false;
    };
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        p: &crate::ir::pattern::Pattern,
        depth: usize,
    ) -> bool {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return false;
        };
        for e in entries.flatten() {
            let path = e.path();
            if e.file_name() == ".git" || e.file_name() == ".runbook" {
                continue;
            }
            let rel = path
                .strip_prefix(root)
                .unwrap_or(&path)
                .to_string_lossy()
                .to_string();
            if p.matches(&rel) {
                return true;
            }
            if depth < 32
                && e.file_type().is_ok_and(|t| t.is_dir())
                && walk(root, &path, p, depth + 1)
            {
                return true;
            }
        }
        false
    }
    walk(workdir, workdir, &p, 0)
}

/// Builds a CLI agent's invocation: its MCP servers' variables join `env`, its config
/// files are written into the attempt's own home (and copied under `agent/` in the
/// records), and its environment replaces HOME.
#[allow(clippy::too_many_arguments)]
fn prepare_tool(
    session: &Session,
    agent: &crate::ir::Agent,
    tool: crate::ir::Tool,
    run: &str,
    workdir: &std::path::Path,
    tmp: &std::path::Path,
    dir: &std::path::Path,
    prompt_path: &std::path::Path,
    env: &mut Vec<(String, String)>,
) -> Result<crate::agents::tools::Invocation, String> {
    let runbook = session.checked.runbook();
    let servers: Vec<&crate::ir::McpServer> = runbook
        .mcp_servers
        .iter()
        .filter(|s| {
            agent
                .permissions
                .mcp
                .value
                .iter()
                .any(|p| p.matches(&s.name))
        })
        .collect();
    for name in servers.iter().flat_map(|s| &s.env) {
        if env.iter().any(|(k, _)| k == name) {
            continue;
        }
        if let Some(value) = session.secrets.get(name) {
            env.push((name.clone(), value.clone()));
        } else if let Ok(value) = std::env::var(name) {
            env.push((name.clone(), value));
        }
    }
    let budget_usd = attempt_budget(session, agent)?;
    let home = tmp.join("home");
    std::fs::create_dir_all(&home)
        .map_err(|e| format!("cannot create the agent's home {}: {e}", home.display()))?;
    let user_home = session
        .base_env
        .iter()
        .find(|(k, _)| k == "HOME")
        .map(|(_, v)| std::path::PathBuf::from(v));
    let req = crate::agents::tools::Request {
        tool,
        agent,
        run,
        workdir,
        home: &home,
        user_home: user_home.as_deref(),
        prompt_file: prompt_path,
        env,
        mcp: servers,
        budget_usd: if tool == crate::ir::Tool::Claude {
            budget_usd
        } else {
            None
        },
        os_sandbox: session.options.sandbox.is_some(),
    };
    let inv = crate::agents::tools::invocation(&req).map_err(|e| e.to_string())?;
    for (rel, text) in &inv.files {
        let text = session.redactor.redact_str(text);
        for root in [home.clone(), dir.join("agent")] {
            let path = root.join(rel);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
            }
            crate::record::run_dir::write_record(&path, text.as_bytes())
                .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        }
    }
    for (source, rel) in &inv.copies {
        let path = home.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        match std::fs::copy(source, &path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(format!(
                    "cannot copy {} to {}: {e}",
                    source.display(),
                    path.display()
                ));
            }
            _ => {}
        }
    }
    env.retain(|(k, _)| !inv.env.iter().any(|(n, _)| n == k));
    env.extend(inv.env.iter().cloned());
    Ok(inv)
}

/// The scratch paths of a tool that are not there yet: those it makes are its own.
fn new_scratch(inv: &crate::agents::tools::Invocation) -> Vec<std::path::PathBuf> {
    inv.scratch
        .iter()
        .filter(|p| std::fs::symlink_metadata(p).is_err())
        .cloned()
        .collect()
}

/// Removes what the tool made of its scratch paths. A path that cannot be removed stays
/// and is seen, like any other file, by the check of what the step changed.
fn remove_scratch(paths: &[std::path::PathBuf]) {
    for path in paths {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => {
                let _ = std::fs::remove_dir_all(path);
            }
            Ok(_) => {
                let _ = std::fs::remove_file(path);
            }
            Err(_) => {}
        }
    }
}

/// The most an attempt of `agent` may cost: its own budget, capped by what is left of
/// the run's; an error when the run's budget is already spent.
fn attempt_budget(session: &Session, agent: &crate::ir::Agent) -> Result<Option<f64>, String> {
    let spent = *session
        .spent_usd
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let left = match session.checked.runbook().budget.as_ref().map(|b| b.value) {
        Some(b) if spent >= b => {
            return Err(format!(
                "not started: the run's budget of ${b:.2} is spent (${spent:.4} reported so far)"
            ))
        }
        Some(b) => Some(b - spent),
        None => None,
    };
    Ok(match (agent.budget.as_ref().map(|b| b.value), left) {
        (Some(a), Some(l)) => Some(a.min(l)),
        (a, l) => a.or(l),
    })
}

/// Reads what a CLI agent reported and makes it the attempt's result: success or
/// failure by the tool's own account, its final message as the output (in
/// `message.md`), and the budgets checked against the cost it reports.
fn apply_report(
    session: &Session,
    agent: &crate::ir::Agent,
    tool: crate::ir::Tool,
    dir: &std::path::Path,
    stdout_path: &std::path::Path,
    transcript: Option<&std::path::Path>,
    result: &mut AttemptResult,
) {
    // The report comes last and can follow megabytes of events: read the whole log,
    // up to a bound no real report comes near.
    let text = read_prefix_lossy(stdout_path, 256 << 20);
    let errors = read_prefix_lossy(&dir.join("stderr.log"), 16 << 20);
    let timed_out = result.exit_code.is_none() && !result.ok;
    // The tool's own transcript goes with the records (it lives in the attempt's home,
    // which goes away), redacted like everything there.
    let conversation = transcript
        .filter(|p| p.is_file())
        .map(|p| read_prefix_lossy(p, 64 << 20));
    if let Some(conversation) = &conversation {
        let path = dir.join("transcript.md");
        let redacted = session.redactor.redact_str(conversation);
        if let Err(e) = crate::record::run_dir::write_record(&path, redacted.as_bytes()) {
            session
                .progress
                .warn(&format!("cannot write {}: {e}", path.display()));
        }
    }
    let report = match (tool, &conversation) {
        (crate::ir::Tool::Aider, Some(history)) => Some(crate::agents::report::aider(
            Some(history),
            &text,
            result.exit_code,
        )),
        _ => crate::agents::report::parse(tool, &text, &errors, result.exit_code),
    };
    let Some(report) = report else {
        if result.ok {
            result.ok = false;
            // Whatever the tool said instead is usually why (not logged in, a bad flag).
            let tail = tail_at_char_boundary(errors.trim_end(), STDERR_TAIL_BYTES);
            result.reason = Some(if tail.is_empty() {
                format!(
                    "{tool} printed no result: expected its machine-readable output on stdout, \
                     and it printed nothing on stderr"
                )
            } else {
                format!(
                    "{tool} printed no result: expected its machine-readable output on stdout; \
                     its stderr ends with:\n{tail}"
                )
            });
        }
        return;
    };
    if !timed_out && !report.ok {
        result.ok = false;
        result.reason = report.reason.clone().or(result.reason.take());
    }
    let mut message = report.message.clone();
    message.truncate(floor_char_boundary(&message, OUTPUT_CAP));
    let redacted = session.redactor.redact_str(&message);
    if let Err(e) =
        crate::record::run_dir::write_record(&dir.join("message.md"), redacted.as_bytes())
    {
        session.progress.warn(&format!(
            "cannot write {}: {e}",
            dir.join("message.md").display()
        ));
    }
    result.output = message;
    if let Some(cost) = report.cost_usd {
        let total = {
            let mut spent = session
                .spent_usd
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *spent += cost;
            *spent
        };
        if let Some(b) = &agent.budget {
            if cost > b.value && result.ok {
                result.ok = false;
                result.reason = Some(format!(
                    "over budget: the attempt cost ${cost:.4}, the budget of agent `{}` is ${:.2}",
                    agent.name, b.value
                ));
            }
        }
        if let Some(b) = &session.checked.runbook().budget {
            if total > b.value {
                // The run stops, whatever the step's `on_failure`.
                session
                    .stopping
                    .store(true, std::sync::atomic::Ordering::SeqCst);
                if result.ok {
                    result.ok = false;
                }
                result.reason = Some(format!(
                    "the run's budget of ${:.2} is exceeded: ${total:.4} reported so far",
                    b.value
                ));
            }
        }
    }
    result.agent = Some(report);
}

/// The first `limit` bytes of a file as text (empty when it cannot be read).
fn read_prefix_lossy(path: &std::path::Path, limit: u64) -> String {
    use std::io::Read;
    let mut buf = Vec::new();
    if let Ok(f) = std::fs::File::open(path) {
        let _ = f.take(limit).read_to_end(&mut buf);
    }
    String::from_utf8_lossy(&buf).into_owned()
}

/// The attempt's `result.json`: where it goes and what it holds.
#[allow(clippy::too_many_arguments)]
fn result_record(
    dir: &std::path::Path,
    n: &crate::ir::Node,
    agent: &crate::ir::Agent,
    attempt: u32,
    r: &AttemptResult,
    ms: u64,
    prompt_sha256: &str,
    session: &Session,
) -> (std::path::PathBuf, Vec<u8>) {
    let doc = serde_json::json!({
        "step": n.name,
        "attempt": attempt,
        "agent": agent.name,
        "ok": r.ok,
        "reason": r.reason.as_deref().map(|s| session.redactor.redact_str(s)),
        "exit_code": r.exit_code,
        "duration_ms": ms,
        "prompt_sha256": prompt_sha256,
        "commit": r.commit.map(|c| c.to_string()),
        "files": r.changes,
        "run_branch": r.tip.map(|t| t.to_string()),
        "argv": r.argv,
        "agent_report": r.agent,
    });
    let text = serde_json::to_vec_pretty(&doc).unwrap_or_default();
    (dir.join("result.json"), text)
}

/// Writes a record file now, warning on the terminal when it cannot.
fn write_record_or_warn(session: &Session, path: &std::path::Path, bytes: &[u8]) {
    if let Err(e) = crate::record::run_dir::write_record(path, bytes) {
        session
            .progress
            .warn(&format!("cannot write {}: {e}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_never_splits_a_character() {
        assert_eq!(tail_at_char_boundary("abc", 10), "abc");
        assert_eq!(tail_at_char_boundary("abc", 2), "bc");
        // "é" is two bytes: a cut inside it moves past it.
        assert_eq!(tail_at_char_boundary("aé", 1), "");
        assert_eq!(tail_at_char_boundary("aé", 2), "é");
    }

    #[test]
    fn check_failure_quotes_the_output_or_says_there_was_none() {
        assert_eq!(
            check_failure("cargo test", &ExitKind::Exited(101), "1 failed\n\n"),
            "The check `cargo test` failed (exit 101):\n1 failed"
        );
        assert_eq!(
            check_failure("false", &ExitKind::Exited(1), " \n"),
            "The check `false` failed (exit 1) and printed nothing."
        );
    }
}
