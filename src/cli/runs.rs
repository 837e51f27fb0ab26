//! `runbook runs` and `runbook show RUN [STEP]`: the audit trail.

use super::run::{find_run, records_root};
use super::{EXIT_OK, EXIT_USAGE};
use crate::record::journal::read_events;
use crate::record::run_dir::{list_runs, RunDir};
use crate::run::event::Event;

/// Arguments of `runbook show`.
#[derive(clap::Args, Debug)]
pub struct ShowArgs {
    /// The run id (or a unique prefix).
    run: String,
    /// Show only this step or checkpoint.
    step: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    format: ShowFormat,
    /// List which agent changed which file in which step, and why (the prompt's first
    /// line and its sha256).
    #[arg(long)]
    changes: bool,
}

/// Output format of `show`.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ShowFormat {
    /// A timeline for people.
    Text,
    /// The events and per-attempt results as JSON.
    Json,
}

/// Summary of one run, from its journal.
struct Summary {
    runbook: String,
    status: String,
    started: String,
    ended: Option<String>,
}

fn summarize(events: &[Event]) -> Summary {
    let mut s = Summary {
        runbook: String::new(),
        status: "running".into(),
        started: String::new(),
        ended: None,
    };
    for e in events {
        match e {
            Event::RunStarted { runbook, time, .. } => {
                s.runbook = runbook.clone();
                s.started = time.clone();
            }
            Event::RunSuspended { .. } => s.status = "suspended".into(),
            Event::RunInterrupted { .. } => s.status = "interrupted".into(),
            Event::RunResumed { .. } | Event::StepStarted { .. } => s.status = "running".into(),
            Event::RunFinished { status, time } => {
                s.status = status.clone();
                s.ended = Some(time.clone());
            }
            _ => {}
        }
    }
    s
}

/// The status to show: a run whose journal says `running` but that no process holds
/// (its driver was killed, or the machine went down) is `crashed`, or `never started`
/// when it died before its start was recorded (nothing ran; it cannot be resumed).
fn shown_status(dir: &RunDir, s: &Summary) -> String {
    if s.status == "running" && crate::record::lock::RunLock::acquire(dir.lock_file()).is_ok() {
        return if s.started.is_empty() {
            "never started".into()
        } else {
            "crashed".into()
        };
    }
    s.status.clone()
}

fn seconds_between(a: &str, b: &str) -> Option<f64> {
    let parse = |t: &str| -> Option<f64> {
        // YYYY-MM-DDTHH:MM:SS.mmmZ: same-day differences are enough for a listing, and
        // runs over midnight go through the day count.
        let (date, time) = t.split_once('T')?;
        let d: Vec<i64> = date.split('-').filter_map(|x| x.parse().ok()).collect();
        let time = time.trim_end_matches('Z');
        let parts: Vec<f64> = time.split(':').filter_map(|x| x.parse().ok()).collect();
        if d.len() != 3 || parts.len() != 3 {
            return None;
        }
        let days = d[0] * 372 + d[1] * 31 + d[2];
        Some(days as f64 * 86_400.0 + parts[0] * 3600.0 + parts[1] * 60.0 + parts[2])
    };
    Some(parse(b)? - parse(a)?)
}

/// `runbook runs`.
pub fn list() -> i32 {
    let root = match records_root() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let runs = list_runs(&root);
    if runs.is_empty() {
        eprintln!(
            "no runs under {}",
            crate::record::run_dir::runs_dir(&root).display()
        );
        return EXIT_OK;
    }
    println!(
        "{:<18} {:<24} {:<12} {:<25} {:>9}",
        "RUN", "RUNBOOK", "STATUS", "STARTED", "DURATION"
    );
    for id in runs {
        let Ok(dir) = RunDir::open(&root, id.clone()) else {
            continue;
        };
        let events = read_events::<Event>(dir.events())
            .map(|c| c.events)
            .unwrap_or_default();
        let s = summarize(&events);
        let duration = s
            .ended
            .as_deref()
            .and_then(|e| seconds_between(&s.started, e))
            .map(|d| format!("{d:.1}s"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<18} {:<24} {:<12} {:<25} {:>9}",
            id.as_str(),
            s.runbook,
            shown_status(&dir, &s),
            s.started,
            duration
        );
    }
    EXIT_OK
}

/// `runbook show RUN [STEP]`.
pub fn show(args: ShowArgs) -> i32 {
    let root = match records_root() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let dir = match find_run(&root, &args.run) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let events = match super::run::run_events(&dir) {
        Ok(events) => events,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if args.changes {
        return changes(&dir, &events, args.step.as_deref(), args.format);
    }
    let concerns = |e: &Event| -> bool {
        let Some(step) = &args.step else { return true };
        match e {
            Event::StepStarted { step: s, .. }
            | Event::StepFinished { step: s, .. }
            | Event::StepSkipped { step: s, .. }
            | Event::Violation { step: s, .. }
            | Event::MergeConflict { step: s, .. }
            | Event::ConflictResolved { step: s, .. } => s == step,
            Event::CheckpointAsked { checkpoint, .. }
            | Event::CheckpointDecided { checkpoint, .. } => checkpoint == step,
            Event::RollbackAction { scope, .. } => scope == &format!("step {step}"),
            Event::NodesReset { nodes, .. } => nodes.contains(step),
            _ => false,
        }
    };
    let selected: Vec<&Event> = events.iter().filter(|e| concerns(e)).collect();
    if args.format == ShowFormat::Json {
        let s = summarize(&events);
        let results: Vec<serde_json::Value> = selected
            .iter()
            .filter_map(|e| match e {
                Event::StepFinished { step, attempt, .. } => {
                    let path = dir.step_attempt_dir(step, *attempt).result_json();
                    std::fs::read_to_string(path)
                        .ok()
                        .and_then(|t| serde_json::from_str(&t).ok())
                }
                _ => None,
            })
            .collect();
        let usage = usage_of(&selected);
        let doc = serde_json::json!({
            "run_id": dir.id().as_str(),
            "runbook": s.runbook,
            "status": shown_status(&dir, &s),
            "started": s.started,
            "ended": s.ended,
            "events": selected,
            "results": results,
            "usage": usage.as_ref().map(Usage::json),
        });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return EXIT_OK;
    }
    let s = summarize(&events);
    println!(
        "run {}  runbook {}  status {}  started {}",
        dir.id(),
        s.runbook,
        shown_status(&dir, &s),
        s.started
    );
    println!("records: {}", dir.path().display());
    for e in &selected {
        let line = match e {
            Event::RunStarted {
                time,
                file,
                head,
                branch,
                sandbox,
                ..
            } => format!(
                "{time}  started {file}{}{}{}",
                head.as_deref()
                    .map(|h| format!(" at {}", &h[..h.len().min(12)]))
                    .unwrap_or_default(),
                branch
                    .as_deref()
                    .map(|b| format!(" on branch {b}"))
                    .unwrap_or_default(),
                sandbox
                    .as_ref()
                    .map(|s| format!("; {}", s.describe()))
                    .unwrap_or_default()
            ),
            Event::RunResumed { time, pid, sandbox } => format!(
                "{time}  resumed (pid {pid}){}",
                sandbox
                    .as_ref()
                    .map(|s| format!("; {}", s.describe()))
                    .unwrap_or_default()
            ),
            Event::StepStarted {
                time,
                step,
                attempt,
                agent,
                prompt_sha256,
                ..
            } => format!(
                "{time}  ▶ {step} attempt {attempt} by {agent} (prompt sha256 {})",
                &prompt_sha256[..12.min(prompt_sha256.len())]
            ),
            Event::StepFinished {
                time,
                step,
                attempt,
                ok,
                reason,
                duration_ms,
                retry,
                commit,
                changes,
                agent,
                ..
            } => {
                let what = if *ok {
                    "✓ succeeded".to_string()
                } else if *retry {
                    "↻ check failed, retrying".to_string()
                } else {
                    "✗ failed".to_string()
                };
                let why = reason
                    .as_deref()
                    .and_then(|r| r.lines().next())
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default();
                let committed = match (ok, commit) {
                    (true, Some(c)) => format!(
                        "; commit {} ({} files)",
                        &c[..c.len().min(12)],
                        changes.len()
                    ),
                    _ => String::new(),
                };
                let mut text = format!(
                    "{time}  {what} {step} attempt {attempt} in {:.1}s{why}{committed}",
                    *duration_ms as f64 / 1000.0
                );
                if let Some(a) = agent {
                    text.push_str(&format!("\n      {}", describe_report(a)));
                }
                text
            }
            Event::Violation {
                time,
                step,
                attempt,
                agent,
                paths,
            } => {
                let mut text = format!(
                    "{time}  ✗ VIOLATION: {agent} in {step} attempt {attempt} changed paths it may not write (nothing of it was kept):"
                );
                for p in paths {
                    text.push_str(&format!("\n      {}: {}", p.path, p.reason));
                }
                text
            }
            Event::MergeConflict {
                time,
                step,
                commit,
                paths,
                ..
            } => format!(
                "{time}  ✗ {step}'s commit {} conflicts with the run branch in {}",
                &commit[..commit.len().min(12)],
                paths.join(", ")
            ),
            Event::ConflictResolved {
                time,
                step,
                side,
                by,
                tip,
            } => format!(
                "{time}  ✓ {step}'s conflict resolved by {by}: {side:?} side; run branch at {}",
                &tip[..tip.len().min(12)]
            ),
            Event::BranchReset { time, to, reason } => format!(
                "{time}  ↺ run branch reset to {} ({reason})",
                &to[..to.len().min(12)]
            ),
            Event::StepSkipped { time, step, reason } => {
                format!("{time}  - {step} skipped: {reason}")
            }
            Event::CheckpointAsked {
                time,
                checkpoint,
                escalation,
                ..
            } => format!(
                "{time}  ? {} {checkpoint} waits for a decision",
                if *escalation {
                    "escalated step"
                } else {
                    "checkpoint"
                }
            ),
            Event::CheckpointDecided {
                time,
                checkpoint,
                decision,
                by,
                comment,
                preapproved,
                ..
            } => format!(
                "{time}  ! {checkpoint}: {decision:?} by {by}{}{}",
                if *preapproved { " (pre-approved)" } else { "" },
                comment
                    .as_deref()
                    .map(|c| format!(": \"{c}\""))
                    .unwrap_or_default()
            ),
            Event::NodesReset {
                time, cause, nodes, ..
            } => format!("{time}  ↻ {cause} sends back {}", nodes.join(", ")),
            Event::RunSuspended { time, waiting } => {
                format!("{time}  ⏸ suspended, waiting for {}", waiting.join(", "))
            }
            Event::RollbackStarted { time, reason } => format!("{time}  ↩ rollback: {reason}"),
            Event::RollbackAction {
                time,
                scope,
                command,
                ok,
                ..
            } => format!(
                "{time}  ↩ {scope}: {command} {}",
                if *ok { "ok" } else { "FAILED" }
            ),
            Event::RollbackFinished { time, ok } => format!(
                "{time}  ↩ rollback {}",
                if *ok { "complete" } else { "INCOMPLETE" }
            ),
            Event::RunInterrupted { time } => format!("{time}  interrupted"),
            Event::RunFinished { time, status } => format!("{time}  finished: {status}"),
        };
        println!("{line}");
    }
    if let Some(usage) = usage_of(&selected) {
        print!("{}", usage.table());
    }
    EXIT_OK
}

/// One line of what a CLI agent reported about an attempt.
fn describe_report(a: &crate::agents::report::AgentReport) -> String {
    let mut parts = Vec::new();
    if let Some(t) = a.turns {
        parts.push(format!("{t} turns"));
    }
    if a.input_tokens.is_some() || a.output_tokens.is_some() {
        parts.push(format!(
            "{} in / {} out tokens",
            a.input_tokens.unwrap_or(0),
            a.output_tokens.unwrap_or(0)
        ));
    }
    if let Some(c) = a.cost_usd {
        parts.push(format!("${c:.4}"));
    }
    if let Some(n) = a.tool_calls {
        parts.push(format!("{n} tool calls"));
    }
    let mut text = if parts.is_empty() {
        "agent reported no usage".to_string()
    } else {
        parts.join(", ")
    };
    if !a.denials.is_empty() {
        text.push_str(&format!("; denied: {}", a.denials.join(" | ")));
    }
    text
}

/// Turns, tokens and cost summed per step and over the run.
#[derive(Default)]
struct Usage {
    /// Per step, in the order steps first reported.
    steps: Vec<(String, UsageRow)>,
}

/// One row of [`Usage`].
#[derive(Default, Clone, Copy)]
struct UsageRow {
    attempts: u64,
    turns: u64,
    input: u64,
    output: u64,
    cost: Option<f64>,
}

impl UsageRow {
    fn add(&mut self, a: &crate::agents::report::AgentReport) {
        self.attempts += 1;
        self.turns += a.turns.unwrap_or(0);
        self.input += a.input_tokens.unwrap_or(0);
        self.output += a.output_tokens.unwrap_or(0);
        if let Some(c) = a.cost_usd {
            self.cost = Some(self.cost.unwrap_or(0.0) + c);
        }
    }

    fn merge(&mut self, o: &UsageRow) {
        self.attempts += o.attempts;
        self.turns += o.turns;
        self.input += o.input;
        self.output += o.output;
        if let Some(c) = o.cost {
            self.cost = Some(self.cost.unwrap_or(0.0) + c);
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "attempts": self.attempts,
            "turns": self.turns,
            "input_tokens": self.input,
            "output_tokens": self.output,
            "cost_usd": self.cost,
        })
    }
}

impl Usage {
    fn total(&self) -> UsageRow {
        let mut t = UsageRow::default();
        for (_, r) in &self.steps {
            t.merge(r);
        }
        t
    }

    fn json(&self) -> serde_json::Value {
        let steps: serde_json::Map<String, serde_json::Value> = self
            .steps
            .iter()
            .map(|(name, r)| (name.clone(), r.json()))
            .collect();
        serde_json::json!({"steps": steps, "total": self.total().json()})
    }

    fn table(&self) -> String {
        let cost = |c: Option<f64>| c.map_or_else(|| "-".to_string(), |c| format!("${c:.4}"));
        let width = self
            .steps
            .iter()
            .map(|(n, _)| n.len())
            .max()
            .unwrap_or(0)
            .max("total".len());
        let mut out = format!(
            "\nagent usage:\n  {:width$}  {:>8}  {:>5}  {:>10}  {:>10}  {:>10}\n",
            "step", "attempts", "turns", "in tokens", "out tokens", "cost"
        );
        let total = self.total();
        for (name, r) in self
            .steps
            .iter()
            .map(|(n, r)| (n.as_str(), r))
            .chain([("total", &total)])
        {
            out.push_str(&format!(
                "  {name:width$}  {:>8}  {:>5}  {:>10}  {:>10}  {:>10}\n",
                r.attempts,
                r.turns,
                r.input,
                r.output,
                cost(r.cost)
            ));
        }
        out
    }
}

/// The usage the selected events report, if any CLI agent reported any.
fn usage_of(events: &[&Event]) -> Option<Usage> {
    let mut usage = Usage::default();
    for e in events {
        if let Event::StepFinished {
            step,
            agent: Some(a),
            ..
        } = e
        {
            match usage.steps.iter_mut().find(|(n, _)| n == step) {
                Some((_, row)) => row.add(a),
                None => {
                    let mut row = UsageRow::default();
                    row.add(a);
                    usage.steps.push((step.clone(), row));
                }
            }
        }
    }
    (!usage.steps.is_empty()).then_some(usage)
}

/// One file one step changed, for `show --changes`.
#[derive(serde::Serialize)]
struct ChangeRow {
    step: String,
    attempt: u32,
    agent: String,
    commit: String,
    path: String,
    kind: String,
    from: Option<String>,
    prompt_sha256: String,
    why: String,
}

/// `runbook show RUN --changes`: which agent changed which file, in which step, and why.
fn changes(dir: &RunDir, events: &[Event], only: Option<&str>, format: ShowFormat) -> i32 {
    let mut started: std::collections::HashMap<(&str, u32), (&str, &str)> = Default::default();
    let mut rows = Vec::new();
    let mut landed =
        |step: &str,
         attempt: u32,
         commit: &str,
         changes: &[crate::run::event::FileChange],
         started: &std::collections::HashMap<(&str, u32), (&str, &str)>| {
            let (agent, sha) = started.get(&(step, attempt)).copied().unwrap_or(("?", ""));
            let prompt = dir.step_attempt_dir(step, attempt).path().join("prompt.md");
            let why = std::fs::read_to_string(&prompt)
                .ok()
                .and_then(|t| {
                    t.lines()
                        .map(|l| l.trim().trim_start_matches('#').trim().to_string())
                        .find(|l| !l.is_empty())
                })
                .unwrap_or_default();
            for c in changes {
                rows.push(ChangeRow {
                    step: step.to_string(),
                    attempt,
                    agent: agent.to_string(),
                    commit: commit.to_string(),
                    path: c.path.clone(),
                    kind: c.kind.clone(),
                    from: c.from.clone(),
                    prompt_sha256: sha.to_string(),
                    why: why.clone(),
                });
            }
        };
    let mut conflicted: std::collections::HashMap<
        &str,
        (u32, &str, &[crate::run::event::FileChange]),
    > = Default::default();
    for e in events {
        match e {
            Event::StepStarted {
                step,
                attempt,
                agent,
                prompt_sha256,
                ..
            } => {
                started.insert((step, *attempt), (agent, prompt_sha256));
            }
            Event::StepFinished {
                step,
                attempt,
                ok: true,
                commit: Some(commit),
                changes,
                ..
            } => landed(step, *attempt, commit, changes, &started),
            Event::MergeConflict {
                step,
                attempt,
                commit,
                changes,
                ..
            } => {
                conflicted.insert(step, (*attempt, commit, changes));
            }
            Event::ConflictResolved { step, .. } => {
                if let Some((attempt, commit, changes)) = conflicted.remove(step.as_str()) {
                    landed(step, attempt, commit, changes, &started);
                }
            }
            Event::NodesReset { nodes, .. } => {
                // A re-run replaces nothing that landed: its own commit comes on top.
                let _ = nodes;
            }
            _ => {}
        }
    }
    rows.retain(|r| only.map_or(true, |s| r.step == s));
    if format == ShowFormat::Json {
        let doc = serde_json::json!({ "run_id": dir.id().as_str(), "changes": rows });
        println!("{}", serde_json::to_string_pretty(&doc).unwrap_or_default());
        return EXIT_OK;
    }
    if rows.is_empty() {
        println!("run {}: no step changed a file", dir.id());
        return EXIT_OK;
    }
    println!("run {}: {} changes", dir.id(), rows.len());
    let mut last = None;
    for r in &rows {
        let key = (r.step.as_str(), r.attempt);
        if last != Some(key) {
            println!(
                "\n{} (attempt {}) by {}, commit {}\n  why: {} (prompt sha256 {})",
                r.step,
                r.attempt,
                r.agent,
                &r.commit[..r.commit.len().min(12)],
                if r.why.is_empty() { "-" } else { &r.why },
                &r.prompt_sha256[..r.prompt_sha256.len().min(12)]
            );
            last = Some(key);
        }
        match &r.from {
            Some(from) => println!("  {:<9} {from} → {}", r.kind, r.path),
            None => println!("  {:<9} {}", r.kind, r.path),
        }
    }
    EXIT_OK
}
