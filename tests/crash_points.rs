//! The crash-point harness: a 20-step run is killed at every place where the interpreter
//! durably writes something a resume depends on, then resumed, and the promises of
//! recovery are checked.
//!
//! `RUNBOOK_CRASH_SITES=PATH` makes the binary list every write site it passes (journal
//! lines per event kind, run records, git operations); a clean run's list gives the sites
//! and how often each is reached. `RUNBOOK_CRASH_AT=SITE:N` then aborts the interpreter
//! right after the N-th write of SITE, once per case. After `runbook resume`:
//!
//! - every journal line parses, and the run finished exactly once, last, and succeeded;
//! - each step reached its end (success, or the failure `on_failure continue` goes on
//!   from) exactly once, and never started again after it;
//! - no record was lost: every attempt that finished has its `result.json`, every
//!   attempt that started its `prompt.md`; no attempt number was used twice;
//! - no step that had finished before the crash ran again, and every step ran at most
//!   once more than in a clean run (the attempt in flight);
//! - no step started before the steps it depends on finished, nor below the checkpoint
//!   before its approval;
//! - in git mode, the run branch holds the clean run's files and one commit per step.
//!
//! A negative control resumes with `RUNBOOK_TEST_BREAK_RECOVERY=1`, a deliberately
//! broken recovery that forgets a finished step, and requires the same checks to fail.
//! Random SIGKILLs complete the matrix.

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};
use support::{git, init_repo, RunRecord, Test, RUNBOOK};

const CRASH_AT: &str = "RUNBOOK_CRASH_AT";
const CRASH_SITES: &str = "RUNBOOK_CRASH_SITES";
const BREAK_RECOVERY: &str = "RUNBOOK_TEST_BREAK_RECOVERY";

/// Twenty steps in four phases: parallel roots, `after` chains inside and across phases,
/// two phases that run side by side (`docs` and `verify`), an `until` retry (`f` passes
/// its check from attempt 2 on), a checkpoint the run is pre-approved past, and a step
/// that fails with `on_failure continue`. Every attempt appends the step's name to
/// `marks` in the run directory (outside the repository in git mode), and every step but
/// `t` writes a file of its own built from its dependencies' files.
const RUNBOOK_TEXT: &str = r#"
runbook crashy {
  phase build {
    step a { sh "echo a >> {{ run.dir }}/artifacts/marks; echo a > a.txt" }
    step b { sh "echo b >> {{ run.dir }}/artifacts/marks; echo b > b.txt" }
    step c { sh "echo c >> {{ run.dir }}/artifacts/marks; echo c > c.txt" }
    step d after a { sh "echo d >> {{ run.dir }}/artifacts/marks; cat a.txt > d.txt" }
    step e after b, c { sh "echo e >> {{ run.dir }}/artifacts/marks; cat b.txt c.txt > e.txt" }
    step f after d {
      sh    "echo f >> {{ run.dir }}/artifacts/marks; cat d.txt > f.txt"
      until "test $RUNBOOK_ATTEMPT -ge 2" attempts 3
    }
    step g after e, f { sh "echo g >> {{ run.dir }}/artifacts/marks; cat e.txt f.txt > g.txt" }
  }
  phase verify {
    step h { sh "echo h >> {{ run.dir }}/artifacts/marks; echo h > h.txt" }
    step i after h { sh "echo i >> {{ run.dir }}/artifacts/marks; cat h.txt > i.txt" }
    step j after i { sh "echo j >> {{ run.dir }}/artifacts/marks; cat i.txt > j.txt" }
    step k after g { sh "echo k >> {{ run.dir }}/artifacts/marks; cat g.txt > k.txt" }
    step l after j, k { sh "echo l >> {{ run.dir }}/artifacts/marks; cat j.txt k.txt > l.txt" }
  }
  phase docs after build {
    step m { sh "echo m >> {{ run.dir }}/artifacts/marks; echo m > m.txt" }
    step n after m { sh "echo n >> {{ run.dir }}/artifacts/marks; cat m.txt > n.txt" }
    step o after d { sh "echo o >> {{ run.dir }}/artifacts/marks; cat d.txt > o.txt" }
  }
  phase release after verify, docs {
    checkpoint ship "Ship it?" {
      show steps.l.output
      ask  "Ship?"
    }
    step p { sh "echo p >> {{ run.dir }}/artifacts/marks; cat l.txt n.txt > p.txt" }
    step q after p { sh "echo q >> {{ run.dir }}/artifacts/marks; cat p.txt > q.txt" }
    step r { sh "echo r >> {{ run.dir }}/artifacts/marks; cat o.txt > r.txt" }
    step s after q, r { sh "echo s >> {{ run.dir }}/artifacts/marks; cat q.txt r.txt > s.txt" }
    step t {
      sh "echo t >> {{ run.dir }}/artifacts/marks; exit 3"
      on_failure continue
    }
  }
}
"#;

/// Each step with what it waits for: its `after` list and every step of the phases its
/// phase comes after.
fn dependencies() -> BTreeMap<&'static str, Vec<&'static str>> {
    let build = ["a", "b", "c", "d", "e", "f", "g"];
    let verify = ["h", "i", "j", "k", "l"];
    let docs = ["m", "n", "o"];
    let release = ["p", "q", "r", "s", "t"];
    let after: BTreeMap<&str, Vec<&str>> = [
        ("d", vec!["a"]),
        ("e", vec!["b", "c"]),
        ("f", vec!["d"]),
        ("g", vec!["e", "f"]),
        ("i", vec!["h"]),
        ("j", vec!["i"]),
        ("k", vec!["g"]),
        ("l", vec!["j", "k"]),
        ("n", vec!["m"]),
        ("o", vec!["d"]),
        ("q", vec!["p"]),
        ("s", vec!["q", "r"]),
    ]
    .into_iter()
    .collect();
    let mut deps = BTreeMap::new();
    let phases: [(&[&str], Vec<&str>); 4] = [
        (&build, vec![]),
        (&verify, build.to_vec()),
        (&docs, build.to_vec()),
        (&release, [&verify[..], &docs[..]].concat()),
    ];
    for (steps, before) in phases {
        for &step in steps {
            let mut all = before.clone();
            all.extend(after.get(step).into_iter().flatten());
            deps.insert(step, all);
        }
    }
    deps
}

/// The steps written below the checkpoint `ship`.
const BELOW_CHECKPOINT: [&str; 5] = ["p", "q", "r", "s", "t"];

/// Where steps run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `--in-place`, in a directory outside git.
    InPlace,
    /// In a git repository: a run branch, a worktree per step, a commit per step.
    Git,
}

impl Mode {
    /// A fresh project with the runbook.
    fn project(self) -> Test {
        let t = Test::new().runbook(RUNBOOK_TEXT);
        match self {
            Mode::InPlace => t,
            Mode::Git => init_repo(t),
        }
    }

    /// `runbook run`, with the checkpoint approved in advance or not.
    fn run_args(self, approval: Approval) -> Vec<&'static str> {
        let mut args = vec!["run", RUNBOOK, "--jobs", "4", "--no-input"];
        if approval == Approval::InAdvance {
            args.push("--approve-all");
        }
        if self == Mode::InPlace {
            args.push("--in-place");
        }
        args
    }
}

/// How the checkpoint `ship` gets its approval.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Approval {
    /// `--approve-all` on `run` and `resume`: one process runs everything.
    InAdvance,
    /// The run suspends at `ship` (exit 3), `runbook approve` records the decision, and
    /// `runbook resume` (without `--approve-all`: a lost decision would suspend it
    /// again) runs the rest.
    Command,
}

/// The command a crash point cuts short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Stage {
    /// `runbook run`.
    Run,
    /// `runbook approve RUN ship`.
    Approve,
    /// The `runbook resume` after the approval.
    Resume,
}

/// What a clean run did, the yardstick of every crashed one.
struct Clean {
    mode: Mode,
    approval: Approval,
    /// How many times each write site was reached, by the command that reached it.
    sites: BTreeMap<(Stage, String), u64>,
    /// How many times each step ran.
    marks: BTreeMap<String, usize>,
    /// How many attempts each step started.
    attempts: BTreeMap<String, usize>,
    /// Whether each step's final outcome was a success.
    outcome: BTreeMap<String, bool>,
    /// Git mode: the run branch's files (`git ls-tree -r`), the steps of its commits, and
    /// the user's `main` (the same commit in every project: same files, same dates).
    branch: Option<(String, Vec<String>, String)>,
    /// How long the run took (only to aim random kills, never asserted on).
    took: Duration,
}

/// What a crash left behind.
#[derive(Default)]
struct Crashed {
    /// The journal's intact lines.
    events: Vec<Value>,
    /// How many times each step had run.
    marks: BTreeMap<String, usize>,
    /// Every record written once and never again (attempt files, checkpoint contents,
    /// spec copies), by path under the run directory.
    records: BTreeMap<String, Vec<u8>>,
}

/// The write-once records of a run: everything under `steps/`, `checkpoints/` and `spec/`.
fn write_once_records(run: &RunRecord) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if let Ok(bytes) = std::fs::read(&path) {
                let name = path.strip_prefix(root).unwrap_or(&path);
                out.insert(name.display().to_string(), bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    for dir in ["steps", "checkpoints", "spec"] {
        walk(&run.path, &run.path.join(dir), &mut out);
    }
    out
}

/// One case's result: its violations of the promises, and how many resumes it took.
#[derive(Debug, Default)]
struct Verdict {
    violations: Vec<String>,
    resumes: usize,
    /// The crash came before the run's start was journaled: nothing to resume.
    not_started: bool,
    /// The crash left at least one step finished (so a forgetful recovery shows).
    finished_before: bool,
}

/// Runs the flow once without a crash, listing the sites each command writes at.
fn clean_run(mode: Mode, approval: Approval) -> Clean {
    let sites_dir = tempfile::tempdir().expect("a temporary directory");
    let list = |stage: Stage| sites_dir.path().join(format!("{stage:?}"));
    let listing = |stage: Stage| (CRASH_SITES, list(stage).display().to_string());
    let t = mode.project();
    let started = Instant::now();
    let stages = match approval {
        Approval::InAdvance => {
            t.command_with(&mode.run_args(approval), &[listing(Stage::Run)])
                .code(0);
            vec![Stage::Run]
        }
        Approval::Command => {
            t.command(&mode.run_args(approval)).code(3);
            let id = t.only_run().id;
            t.command_with(&["approve", &id, "ship"], &[listing(Stage::Approve)])
                .code(0);
            t.command_with(&resume_args(&id, approval), &[listing(Stage::Resume)])
                .code(0);
            vec![Stage::Approve, Stage::Resume]
        }
    };
    let took = started.elapsed();
    let mut sites = BTreeMap::new();
    for stage in stages {
        for line in std::fs::read_to_string(list(stage))
            .expect("the binary lists its sites")
            .lines()
        {
            *sites.entry((stage, line.to_string())).or_default() += 1;
        }
    }
    let run = t.only_run();
    let events = journal(&run).expect("a clean journal");
    let mut attempts = BTreeMap::new();
    let mut outcome = BTreeMap::new();
    for e in &events {
        let step = e["step"].as_str().unwrap_or_default().to_string();
        match e["event"].as_str() {
            Some("step_started") => *attempts.entry(step).or_default() += 1,
            Some("step_finished") if terminal(e) => {
                outcome.insert(step, e["ok"] == true);
            }
            _ => {}
        }
    }
    let marks = marks(&run);
    assert_eq!(marks.len(), 20, "every step ran: {marks:?}");
    assert_eq!(marks["f"], 2, "f succeeds on its second attempt");
    assert_eq!(
        outcome.get("t"),
        Some(&false),
        "t fails and the run goes on"
    );
    Clean {
        mode,
        approval,
        sites,
        marks,
        attempts,
        outcome,
        branch: (mode == Mode::Git).then(|| branch_state(&t)),
        took,
    }
}

/// A step's `step_finished` that ends it: a success, or a failure with no retry after it.
fn terminal(e: &Value) -> bool {
    e["event"] == "step_finished" && (e["ok"] == true || e["retry"] == false)
}

/// The journal's events; an error names the first line that does not parse. A torn last
/// line (a write cut short) is dropped only when `torn_ok`.
fn read_journal(run: &RunRecord, torn_ok: bool) -> Result<Vec<Value>, String> {
    let path = run.path.join("events.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("cannot read journal: {e}"))?;
    let mut lines: Vec<&str> = text.split_inclusive('\n').collect();
    if lines.last().is_some_and(|l| !l.ends_with('\n')) {
        if !torn_ok {
            return Err("the journal ends in a torn line".into());
        }
        lines.pop();
    }
    lines
        .iter()
        .enumerate()
        .map(|(i, line)| {
            serde_json::from_str(line)
                .map_err(|e| format!("journal line {} does not parse: {e}", i + 1))
        })
        .collect()
}

/// A finished run's journal: every line must parse.
fn journal(run: &RunRecord) -> Result<Vec<Value>, String> {
    read_journal(run, false)
}

/// How many times each step ran, from the run's `marks` file.
fn marks(run: &RunRecord) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(run.path.join("artifacts/marks")).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        *counts.entry(line.to_string()).or_default() += 1;
    }
    counts
}

/// The run branch's files, the `Runbook-Step` trailers of its commits (sorted), and `main`.
fn branch_state(t: &Test) -> (String, Vec<String>, String) {
    let branch = git(
        t,
        &[
            "for-each-ref",
            "--format=%(refname:short)",
            "refs/heads/runbook/",
        ],
    );
    let branch = branch.trim();
    let files = git(t, &["ls-tree", "-r", branch]);
    let log = git(
        t,
        &[
            "log",
            "--format=%(trailers:key=Runbook-Step,valueonly)",
            branch,
        ],
    );
    let mut steps: Vec<String> = log
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    steps.sort();
    (files, steps, git(t, &["rev-parse", "main"]))
}

/// `runbook resume RUN`, pre-approving the checkpoint when the flow does.
fn resume_args(id: &str, approval: Approval) -> Vec<String> {
    let mut args: Vec<String> = ["resume", id, "--jobs", "4", "--no-input"]
        .map(String::from)
        .to_vec();
    if approval == Approval::InAdvance {
        args.push("--approve-all".into());
    }
    args
}

/// Resumes until the run ends (at most three times); a resume that fails is a violation.
fn resume_to_end(t: &Test, run: &RunRecord, approval: Approval, verdict: &mut Verdict) -> bool {
    for _ in 0..3 {
        let out = t.command(&resume_args(&run.id, approval));
        verdict.resumes += 1;
        match out.code {
            Some(0) => return true,
            // Only a run that was cut short again may need another go.
            Some(130) | None => continue,
            code => {
                verdict
                    .violations
                    .push(format!("resume exited {code:?}: {}", out.stderr.trim()));
                return false;
            }
        }
    }
    verdict
        .violations
        .push("the run did not finish after 3 resumes".into());
    false
}

/// Every promise of recovery, checked on a resumed run against what the crash left and
/// what a clean run did. Returns the violations: empty when recovery kept its promises.
fn check_recovery(t: &Test, clean: &Clean, crashed: &Crashed) -> Vec<String> {
    let mut v = Vec::new();
    let run = t.only_run();
    let events = match journal(&run) {
        Ok(events) => events,
        Err(e) => return vec![e],
    };
    let kind = |e: &Value| e["event"].as_str().unwrap_or_default().to_string();
    let of = |e: &Value, step: &str| e["step"] == step;

    // Records are append-only: the journal goes on from what the crash left, and no
    // file written before the crash was changed or removed.
    if !events.starts_with(&crashed.events) {
        v.push("the journal does not go on from the lines the crash left".into());
    }
    let records = write_once_records(&run);
    for (path, bytes) in &crashed.records {
        match records.get(path) {
            None => v.push(format!("lost record: {path}")),
            Some(after) if after != bytes => v.push(format!("overwritten record: {path}")),
            Some(_) => {}
        }
    }

    // The run finished once, last, and succeeded.
    let ends: Vec<&Value> = events
        .iter()
        .filter(|e| kind(e) == "run_finished")
        .collect();
    match ends.as_slice() {
        [end] if end["status"] == "succeeded" => {}
        [end] => v.push(format!("the run ended {}", end["status"])),
        _ => v.push(format!("run_finished appears {} times", ends.len())),
    }
    if events.last().is_some_and(|e| kind(e) != "run_finished") {
        v.push(format!(
            "{} after run_finished",
            kind(events.last().unwrap())
        ));
    }

    let crashed_terminal: BTreeSet<String> = crashed
        .events
        .iter()
        .filter(|e| terminal(e))
        .filter_map(|e| e["step"].as_str().map(str::to_string))
        .collect();
    let ran = marks(&run);
    for (step, &clean_ran) in &clean.marks {
        let ends: Vec<usize> = (0..events.len())
            .filter(|&i| terminal(&events[i]) && of(&events[i], step))
            .collect();
        if ends.len() != 1 {
            v.push(format!("{step} reached its end {} times", ends.len()));
        }
        if let Some(&end) = ends.first() {
            if (events[end]["ok"] == true) != clean.outcome[step] {
                v.push(format!(
                    "{step} ended ok={} unlike a clean run",
                    events[end]["ok"]
                ));
            }
            if events[end..]
                .iter()
                .any(|e| kind(e) == "step_started" && of(e, step))
            {
                v.push(format!("{step} started again after it finished"));
            }
        }
        let mut numbers: Vec<u64> = events
            .iter()
            .filter(|e| kind(e) == "step_started" && of(e, step))
            .filter_map(|e| e["attempt"].as_u64())
            .collect();
        let started = numbers.len();
        numbers.sort_unstable();
        numbers.dedup();
        if numbers.len() != started {
            v.push(format!("{step} reused an attempt number"));
        }
        if started > clean.attempts[step] + 1 {
            v.push(format!(
                "{step} started {started} attempts (clean run: {})",
                clean.attempts[step]
            ));
        }
        let now = ran.get(step).copied().unwrap_or(0);
        let before = crashed.marks.get(step).copied().unwrap_or(0);
        if crashed_terminal.contains(step) && now != before {
            v.push(format!(
                "{step} had finished before the crash but ran again ({before} → {now} times)"
            ));
        }
        if now == 0 || now > clean_ran + 1 {
            v.push(format!("{step} ran {now} times (clean run: {clean_ran})"));
        }
    }

    // No record lost: each finished attempt has its result, each started one its prompt.
    for e in &events {
        let (Some(step), Some(attempt)) = (e["step"].as_str(), e["attempt"].as_u64()) else {
            continue;
        };
        let dir = run.attempt_dir(step, u32::try_from(attempt).unwrap_or(u32::MAX));
        match kind(e).as_str() {
            "step_finished" => {
                let result = std::fs::read_to_string(dir.join("result.json"))
                    .ok()
                    .and_then(|text| serde_json::from_str::<Value>(&text).ok());
                match result {
                    None => v.push(format!("lost record: {step}/{attempt}/result.json")),
                    Some(r) if r["ok"] != e["ok"] => v.push(format!(
                        "{step}/{attempt}/result.json says ok={}, the journal {}",
                        r["ok"], e["ok"]
                    )),
                    Some(_) => {}
                }
            }
            "step_started" if !dir.join("prompt.md").is_file() => {
                v.push(format!("lost record: {step}/{attempt}/prompt.md"));
            }
            _ => {}
        }
    }

    // Nothing started before what it waits for had finished.
    let deps = dependencies();
    for (i, e) in events.iter().enumerate() {
        if kind(e) != "step_started" {
            continue;
        }
        let step = e["step"].as_str().unwrap_or_default();
        for dep in deps.get(step).into_iter().flatten() {
            if !events[..i].iter().any(|d| terminal(d) && of(d, dep)) {
                v.push(format!("{step} started before {dep} finished"));
            }
        }
        let approved = events[..i].iter().any(|d| {
            kind(d) == "checkpoint_decided"
                && d["checkpoint"] == "ship"
                && d["decision"] == "approve"
        });
        if BELOW_CHECKPOINT.contains(&step) && !approved {
            v.push(format!(
                "{step} started before checkpoint ship was approved"
            ));
        }
    }

    if let Some((files, commits, main)) = &clean.branch {
        let (now_files, now_commits, _) = branch_state(t);
        if &now_files != files {
            v.push(format!(
                "the run branch's files differ from a clean run's:\n{now_files}"
            ));
        }
        if &now_commits != commits {
            v.push(format!("the run branch's commits are for {now_commits:?}"));
        }
        // The user's tree and branch are untouched (`Test::spawn` leaves its output files).
        let status: Vec<String> = git(t, &["status", "--porcelain"])
            .lines()
            .filter(|l| !l.starts_with("?? killed."))
            .map(str::to_string)
            .collect();
        if !status.is_empty() {
            v.push(format!("the user's working tree changed: {status:?}"));
        }
        if git(t, &["rev-parse", "main"]) != *main {
            v.push("the user's branch moved".into());
        }
    }
    v.sort();
    v.dedup();
    v
}

/// One crash point: the command of `stage` aborted right after the `nth` write of `site`.
#[derive(Debug, Clone)]
struct Case {
    stage: Stage,
    site: String,
    nth: u64,
}

impl std::fmt::Display for Case {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} {}:{}", self.stage, self.site, self.nth)
    }
}

/// Runs one crash point: the command aborted at `SITE:N`, the run resumed to its end
/// (with the broken recovery, for the negative control) and checked.
fn crash_case(clean: &Clean, case: &Case, break_recovery: bool) -> Verdict {
    let mut verdict = Verdict::default();
    let crash_at = [(CRASH_AT, format!("{}:{}", case.site, case.nth))];
    let t = clean.mode.project();
    let run_args = clean.mode.run_args(clean.approval);
    let out = match case.stage {
        Stage::Run => t.command_with(&run_args, &crash_at),
        Stage::Approve | Stage::Resume => {
            t.command(&run_args).code(3);
            let id = t.only_run().id;
            let approve = ["approve", id.as_str(), "ship"];
            if case.stage == Stage::Approve {
                t.command_with(&approve, &crash_at)
            } else {
                t.command(&approve).code(0);
                t.command_with(&resume_args(&id, clean.approval), &crash_at)
            }
        }
    };
    if out.code.is_some() {
        verdict.violations.push(format!(
            "the crash point was not reached: {:?} exited {:?}\n{}",
            case.stage, out.code, out.stderr
        ));
        return verdict;
    }
    let t = if break_recovery {
        t.env(BREAK_RECOVERY, "1")
    } else {
        t
    };
    recover(&t, clean, &mut verdict);
    verdict
}

/// Snapshots what a crash left, resumes and checks; shared by crash points and kills.
fn recover(t: &Test, clean: &Clean, verdict: &mut Verdict) {
    let runs = t.runs();
    let Some(run) = runs.first() else {
        verdict.not_started = true;
        return;
    };
    // A crash before the journal was created leaves a run directory without one.
    let events = if run.path.join("events.jsonl").exists() {
        match read_journal(run, true) {
            Ok(events) => events,
            Err(e) => {
                verdict.violations.push(format!("after the crash: {e}"));
                return;
            }
        }
    } else {
        Vec::new()
    };
    let crashed = Crashed {
        events,
        marks: marks(run),
        records: write_once_records(run),
    };
    if !crashed.events.iter().any(|e| e["event"] == "run_started") {
        // The run never started as far as its records go: resume must say so, cleanly.
        verdict.not_started = true;
        let out = t.command(&["resume", &run.id, "--no-input"]);
        verdict.resumes += 1;
        if out.code != Some(2) {
            verdict.violations.push(format!(
                "resuming a run whose start was not journaled exited {:?}: {}",
                out.code, out.stderr
            ));
        }
        return;
    }
    verdict.finished_before = crashed
        .events
        .iter()
        .any(|e| terminal(e) && e["ok"] == true);
    if resume_to_end(t, run, clean.approval, verdict) {
        verdict
            .violations
            .extend(check_recovery(t, clean, &crashed));
    }
}

/// Runs `work` over `cases` on `workers` threads, each case in its own project directory.
fn in_parallel<C: Sync, R: Send>(
    cases: &[C],
    workers: usize,
    work: impl Fn(&C) -> R + Sync,
) -> Vec<R> {
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<(usize, R)>> = Mutex::new(Vec::with_capacity(cases.len()));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(case) = cases.get(i) else { break };
                let r = work(case);
                results.lock().unwrap().push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap();
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, r)| r).collect()
}

/// Worker threads per test: the cases wait on processes and fsync more than they compute.
const WORKERS: usize = 3;

/// Every site × every occurrence, or with `stride` every site's first and last
/// occurrence and every `stride`-th one between.
fn cases(clean: &Clean, stride: Option<u64>) -> Vec<Case> {
    let mut cases = Vec::new();
    for ((stage, site), &count) in &clean.sites {
        for nth in 1..=count {
            if stride.map_or(true, |k| nth == 1 || nth == count || nth % k == 0) {
                cases.push(Case {
                    stage: *stage,
                    site: site.clone(),
                    nth,
                });
            }
        }
    }
    cases
}

/// Runs the crash-point matrix and fails with every violation found.
fn crash_matrix(mode: Mode, approval: Approval, stride: Option<u64>) {
    let started = Instant::now();
    let clean = clean_run(mode, approval);
    let has = |site: &str| clean.sites.keys().any(|(_, s)| s == site);
    if mode == Mode::Git {
        for site in ["git:step-worktree", "git:step-commit", "git:merge"] {
            assert!(has(site), "{site} missing: {:?}", clean.sites);
        }
    }
    // Sampling must not lose a full run's worth of cases: `RUNBOOK_CRASH_POINTS_FULL=1`
    // runs every occurrence.
    let full = std::env::var("RUNBOOK_CRASH_POINTS_FULL").is_ok_and(|v| v == "1");
    let cases = cases(&clean, stride.filter(|_| !full));
    let verdicts = in_parallel(&cases, WORKERS, |case| crash_case(&clean, case, false));
    let mut failures = Vec::new();
    for (case, verdict) in cases.iter().zip(&verdicts) {
        for violation in &verdict.violations {
            failures.push(format!("{case}: {violation}"));
        }
    }
    let resumes: usize = verdicts.iter().map(|v| v.resumes).sum();
    let not_started = verdicts.iter().filter(|v| v.not_started).count();
    eprintln!(
        "{mode:?}, approval {approval:?}: {} sites, {} writes in a clean run, {} crash cases ({} before the run's start was journaled), {resumes} resumes, {:.1?}",
        clean.sites.len(),
        clean.sites.values().sum::<u64>(),
        cases.len(),
        not_started,
        started.elapsed()
    );
    for ((stage, site), count) in &clean.sites {
        eprintln!("  {stage:?} {site} ×{count}");
    }
    assert!(
        failures.is_empty(),
        "{} violations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn every_crash_point_in_place_resumes_with_every_promise_kept() {
    crash_matrix(Mode::InPlace, Approval::InAdvance, None);
}

#[test]
fn every_crash_point_of_approve_and_resume_in_place_keeps_every_promise() {
    crash_matrix(Mode::InPlace, Approval::Command, None);
}

#[test]
fn crash_points_in_git_mode_resume_with_every_promise_kept() {
    // Every occurrence of every site takes minutes on 2 cores; CI runs a sample that
    // reaches every site, first and last occurrence included, and every step.
    crash_matrix(Mode::Git, Approval::InAdvance, Some(3));
}

#[test]
fn crash_points_of_approve_and_resume_in_git_mode_keep_every_promise() {
    crash_matrix(Mode::Git, Approval::Command, Some(4));
}

/// A random number from the standard library's per-process hash keys.
fn random_below(bound: u64, salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(salt);
    h.finish() % bound.max(1)
}

/// One SIGKILL at a random moment of a run, then resume and check.
fn kill_case(clean: &Clean, round: u64) -> (Verdict, bool) {
    let mut verdict = Verdict::default();
    let t = clean.mode.project();
    let mut child = t.spawn("killed", &clean.mode.run_args(clean.approval));
    // Aim after the run has started: once its journal has a line.
    let give_up = Instant::now() + Duration::from_secs(30);
    while t.runs().first().map_or(true, |run| {
        std::fs::metadata(run.path.join("events.jsonl")).map_or(true, |m| m.len() == 0)
    }) {
        assert!(Instant::now() < give_up, "the run never started");
        std::thread::sleep(Duration::from_millis(1));
    }
    let bound = u64::try_from(clean.took.as_millis()).unwrap_or(u64::MAX);
    std::thread::sleep(Duration::from_millis(random_below(bound, round)));
    child.signal(libc::SIGKILL);
    let status = child.wait();
    if status.signal() != Some(libc::SIGKILL) {
        // It finished before the signal: nothing to recover, but the record must hold.
        if status.code() != Some(0) {
            verdict
                .violations
                .push(format!("the run exited {status:?}"));
        }
        verdict
            .violations
            .extend(check_recovery(&t, clean, &Crashed::default()));
        return (verdict, false);
    }
    recover(&t, clean, &mut verdict);
    (verdict, true)
}

#[test]
fn random_sigkills_resume_with_every_promise_kept() {
    let started = Instant::now();
    let mut failures = Vec::new();
    for (mode, rounds) in [(Mode::InPlace, 12u64), (Mode::Git, 6)] {
        let clean = clean_run(mode, Approval::InAdvance);
        let rounds: Vec<u64> = (0..rounds).collect();
        let verdicts = in_parallel(&rounds, WORKERS, |&round| kill_case(&clean, round));
        let killed = verdicts.iter().filter(|(_, k)| *k).count();
        let resumes: usize = verdicts.iter().map(|(v, _)| v.resumes).sum();
        for (round, (verdict, _)) in rounds.iter().zip(&verdicts) {
            for violation in &verdict.violations {
                failures.push(format!("{mode:?} kill round {round}: {violation}"));
            }
        }
        eprintln!(
            "{mode:?}: {} random SIGKILLs, {killed} mid-run, {resumes} resumes",
            rounds.len()
        );
    }
    eprintln!("random SIGKILLs: {:.1?}", started.elapsed());
    assert!(
        failures.is_empty(),
        "{} violations:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The negative control: with a recovery that forgets a finished step, the same checks
/// must report a violation in every case where a step had finished before the crash.
#[test]
fn a_broken_recovery_fails_the_harness() {
    let started = Instant::now();
    let clean = clean_run(Mode::InPlace, Approval::InAdvance);
    // Every step's end, and the first line of the run: a crash with nothing finished
    // leaves nothing to forget, and must pass.
    let site = |site: &str, nth| Case {
        stage: Stage::Run,
        site: site.into(),
        nth,
    };
    let ends = clean.sites[&(Stage::Run, "journal:step_finished".to_string())];
    let mut cases: Vec<Case> = (1..=ends)
        .map(|n| site("journal:step_finished", n))
        .collect();
    cases.push(site("journal:run_started", 1));
    let verdicts = in_parallel(&cases, WORKERS, |case| crash_case(&clean, case, true));
    let mut caught = 0;
    for (case, verdict) in cases.iter().zip(&verdicts) {
        if verdict.finished_before {
            assert!(
                !verdict.violations.is_empty(),
                "{case}: a recovery that forgets a finished step went unnoticed"
            );
            caught += 1;
        } else {
            assert!(
                verdict.violations.is_empty(),
                "{case}: nothing had finished, yet: {:?}",
                verdict.violations
            );
        }
    }
    assert!(caught > 0, "no case had a finished step to forget");
    let example = verdicts
        .iter()
        .find(|v| !v.violations.is_empty())
        .map(|v| v.violations.join("; "))
        .unwrap_or_default();
    eprintln!(
        "negative control: {caught} of {} broken recoveries caught, e.g. {example}; {:.1?}",
        cases.len(),
        started.elapsed()
    );
}

#[test]
fn the_hook_lists_every_kind_of_write_site() {
    // A site missing here would silently shrink the matrix.
    let clean = clean_run(Mode::InPlace, Approval::InAdvance);
    let has = |site: &str| clean.sites.contains_key(&(Stage::Run, site.to_string()));
    for site in [
        "journal:run_started",
        "journal:step_started",
        "journal:step_finished",
        "journal:checkpoint_asked",
        "journal:checkpoint_decided",
        "journal:run_finished",
        "file:run.json",
        "file:spec",
        "file:prompt.md",
        "file:result.json",
        "file:checkpoint",
    ] {
        assert!(has(site), "{site} missing: {:?}", clean.sites);
    }
    assert_eq!(
        clean.sites[&(Stage::Run, "file:result.json".to_string())],
        21,
        "20 steps, f twice"
    );
}
