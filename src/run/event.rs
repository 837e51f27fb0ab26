//! The events of a run: each one line of `events.jsonl`, the source of truth from which
//! every run's state is rebuilt.

use serde::{Deserialize, Serialize};

/// A source file the run used, with its hash.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SpecFile {
    /// The path as loaded.
    pub path: String,
    /// Why it is part of the runbook.
    pub role: String,
    /// sha256 of the exact bytes.
    pub sha256: String,
}

/// One path a step changed, as committed.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileChange {
    /// The path, relative to the repository root.
    pub path: String,
    /// `added`, `modified`, `deleted`, `renamed`, `mode` or `type`.
    pub kind: String,
    /// The old path of a rename.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
}

/// A path an attempt changed without permission.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PathViolation {
    /// The path.
    pub path: String,
    /// Why it is not allowed.
    pub reason: String,
}

/// Which side wins the conflicting paths of a merge.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The run branch (what was merged before).
    Ours,
    /// The step's commit.
    Theirs,
}

/// How a checkpoint (or an escalation) was decided.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    /// Go on.
    Approve,
    /// Stop and roll back.
    Reject,
    /// Re-run the `revise` step (or the failed step) with the comment as feedback.
    Revise,
    /// Escalations only: skip the failed step and go on.
    Skip,
    /// Merge conflicts only: keep the run branch's side of the conflicting paths.
    Ours,
    /// Merge conflicts only: take the step's side of the conflicting paths.
    Theirs,
}

impl Decision {
    /// The side a conflict decision takes, if it is one.
    pub fn side(self) -> Option<Side> {
        match self {
            Decision::Ours => Some(Side::Ours),
            Decision::Theirs => Some(Side::Theirs),
            _ => None,
        }
    }
}

/// How a run's processes were confined.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct SandboxRecord {
    /// `on` or `off`.
    pub mode: crate::sandbox::Mode,
    /// The layers in force, when on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub layers: Option<String>,
}

impl SandboxRecord {
    /// One phrase for `runbook show`.
    pub fn describe(&self) -> String {
        match (&self.mode, &self.layers) {
            (crate::sandbox::Mode::On, Some(l)) => format!("sandbox on: {l}"),
            (crate::sandbox::Mode::On, None) => "sandbox on".into(),
            (crate::sandbox::Mode::Off, _) => {
                "sandbox OFF (--sandbox off): processes were not confined".into()
            }
        }
    }
}

/// One journal line.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The run began.
    RunStarted {
        /// When (RFC 3339, UTC).
        time: String,
        /// The runbook's name.
        runbook: String,
        /// The runbook file.
        file: String,
        /// Every source file and its hash.
        spec: Vec<SpecFile>,
        /// The parameter values.
        params: serde_json::Value,
        /// The working directory steps run in.
        workdir: String,
        /// The repository's HEAD commit, if in git.
        head: Option<String>,
        /// The run branch, when steps run in git worktrees.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        branch: Option<String>,
        /// The OS sandbox (absent in runs recorded before it existed).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox: Option<SandboxRecord>,
    },
    /// A process took over the run (a resume, or `runbook rollback`).
    RunResumed {
        /// When.
        time: String,
        /// Its pid.
        pid: u32,
        /// The OS sandbox from here on.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox: Option<SandboxRecord>,
    },
    /// An attempt of a step began.
    StepStarted {
        /// When.
        time: String,
        /// The step.
        step: String,
        /// 1-based attempt number.
        attempt: u32,
        /// The agent.
        agent: String,
        /// sha256 of the rendered prompt (or of the commands, for shell steps).
        prompt_sha256: String,
        /// The commit the step's worktree started from.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        base: Option<String>,
    },
    /// An attempt of a step ended.
    StepFinished {
        /// When.
        time: String,
        /// The step.
        step: String,
        /// The attempt.
        attempt: u32,
        /// Whether the step's work succeeded (command and `until` check and `produces`).
        ok: bool,
        /// Why it failed, if it did.
        reason: Option<String>,
        /// Exit code of the agent or last command.
        exit_code: Option<i32>,
        /// Wall time in milliseconds.
        duration_ms: u64,
        /// Whether another attempt follows.
        retry: bool,
        /// The step's commit, when it succeeded and changed something.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        commit: Option<String>,
        /// What the commit changed.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        changes: Vec<FileChange>,
        /// The run branch after the commit was merged into it.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tip: Option<String>,
        /// What a CLI agent reported (turns, tokens, cost, denials); its final message
        /// is in the attempt's `message.md`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        agent: Option<crate::agents::report::AgentReport>,
    },
    /// An attempt changed paths its agent may not write: nothing of it is kept.
    Violation {
        /// When.
        time: String,
        /// The step.
        step: String,
        /// The attempt.
        attempt: u32,
        /// The agent.
        agent: String,
        /// What it changed without permission.
        paths: Vec<PathViolation>,
    },
    /// A step's commit conflicts with the run branch: a human decides.
    MergeConflict {
        /// When.
        time: String,
        /// The step.
        step: String,
        /// The attempt whose commit conflicts.
        attempt: u32,
        /// The step's commit.
        commit: String,
        /// The run branch it conflicts with.
        ours: String,
        /// The conflicting paths.
        paths: Vec<String>,
        /// What the step changed.
        changes: Vec<FileChange>,
    },
    /// A conflict was resolved by taking one side.
    ConflictResolved {
        /// When.
        time: String,
        /// The step.
        step: String,
        /// The side taken for the conflicting paths.
        side: Side,
        /// Who decided.
        by: String,
        /// The run branch after the merge.
        tip: String,
    },
    /// The run branch was moved back (rollback, or resume to the journal's last tip).
    BranchReset {
        /// When.
        time: String,
        /// The commit it points at now.
        to: String,
        /// Why.
        reason: String,
    },
    /// A step whose `when` was false.
    StepSkipped {
        /// When.
        time: String,
        /// The step.
        step: String,
        /// Why.
        reason: String,
    },
    /// A checkpoint (or an escalated failure) waits for a human.
    CheckpointAsked {
        /// When.
        time: String,
        /// The checkpoint, or the escalated step.
        checkpoint: String,
        /// sha256 of what was shown.
        content_sha256: String,
        /// Whether this asks about a failed step (`on_failure escalate`).
        escalation: bool,
        /// The run branch when asked: what an approval approves.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tip: Option<String>,
    },
    /// Someone decided.
    CheckpointDecided {
        /// When.
        time: String,
        /// The checkpoint or escalated step.
        checkpoint: String,
        /// The decision.
        decision: Decision,
        /// Who.
        by: String,
        /// The comment (feedback for revise).
        comment: Option<String>,
        /// sha256 of the content the decision is bound to.
        content_sha256: String,
        /// Whether it was given in advance (`--approve`, `--approve-all`).
        preapproved: bool,
    },
    /// Nodes set back to pending to run again (a revise, or a retried escalation).
    NodesReset {
        /// When.
        time: String,
        /// The checkpoint or step whose decision caused it.
        cause: String,
        /// The nodes that run again.
        nodes: Vec<String>,
        /// The step that receives feedback, and the feedback.
        feedback: Option<(String, String)>,
    },
    /// The run stopped to wait for decisions.
    RunSuspended {
        /// When.
        time: String,
        /// What it waits for.
        waiting: Vec<String>,
    },
    /// Compensation began.
    RollbackStarted {
        /// When.
        time: String,
        /// Why.
        reason: String,
    },
    /// One compensation command ran.
    RollbackAction {
        /// When.
        time: String,
        /// `step NAME`, `phase NAME` or `runbook`.
        scope: String,
        /// The command.
        command: String,
        /// Whether it succeeded.
        ok: bool,
        /// Exit code.
        exit_code: Option<i32>,
        /// Where its output is.
        log: String,
    },
    /// Compensation ended.
    RollbackFinished {
        /// When.
        time: String,
        /// Whether every action succeeded.
        ok: bool,
    },
    /// The run was interrupted (Ctrl-C); it can be resumed.
    RunInterrupted {
        /// When.
        time: String,
    },
    /// The run ended.
    RunFinished {
        /// When.
        time: String,
        /// `succeeded`, `failed`, `rejected` or `rolled_back`.
        status: String,
    },
}

/// Now, as RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    let since = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    format_time(since.as_millis() as i64)
}

/// Formats milliseconds since the epoch as RFC 3339 UTC.
pub fn format_time(ms: i64) -> String {
    let secs = ms.div_euclid(1000);
    let millis = ms.rem_euclid(1000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, (rem % 3600) / 60, rem % 60);
    // Civil from days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let mo = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if mo <= 2 { y + 1 } else { y };
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{m:02}:{s:02}.{millis:03}Z")
}

/// Milliseconds since the epoch of a time written by [`format_time`].
pub fn parse_time(text: &str) -> Option<i64> {
    let (date, time) = text.trim_end_matches('Z').split_once('T')?;
    let mut d = date.split('-').map(|p| p.parse::<i64>().ok());
    let (y, m, day) = (d.next()??, d.next()??, d.next()??);
    let (hms, millis) = time.split_once('.').unwrap_or((time, "0"));
    let mut t = hms.split(':').map(|p| p.parse::<i64>().ok());
    let (h, min, sec) = (t.next()??, t.next()??, t.next()??);
    let millis: i64 = millis.parse().ok()?;
    // Days from civil (Howard Hinnant's algorithm), the inverse of `format_time`.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + min * 60 + sec) * 1000) + millis)
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format() {
        assert_eq!(format_time(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(format_time(1_795_000_000_123), "2026-11-18T11:06:40.123Z");
    }

    #[test]
    fn time_round_trip() {
        for ms in [0, 1_795_000_000_123, 951_782_400_000, 4_102_444_799_999] {
            assert_eq!(parse_time(&format_time(ms)), Some(ms));
        }
        assert_eq!(parse_time("not a time"), None);
    }

    #[test]
    fn events_round_trip() {
        let e = Event::StepSkipped {
            time: now(),
            step: "x".into(),
            reason: "when".into(),
        };
        let line = serde_json::to_string(&e).unwrap();
        assert!(line.contains("\"event\":\"step_skipped\""));
        assert_eq!(serde_json::from_str::<Event>(&line).unwrap(), e);
    }
}
