//! Crash safety: a run killed at any point resumes to the same end, never re-runs a
//! finished step, and re-runs only what was in flight.
//!
//! The journal's test hook `RUNBOOK_CRASH_AFTER_EVENTS=N` aborts the interpreter right
//! after the N-th journal line is durable, as if the machine died there. Every N from 1
//! to the length of a clean run's journal is tried, then a few SIGKILLs at random
//! moments; each time `runbook resume` is repeated until the run finishes.

mod support;

use serde_json::Value;
use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::time::{Duration, Instant};
use support::{Test, RUNBOOK};

/// Twelve steps: parallel roots, `after` chains across phases, and a step whose `until`
/// check fails on its first attempt. Every attempt appends the step's name to `marks`.
const DAG: &str = r#"
runbook crashy {
  phase build {
    step a { sh "echo a >> marks" }
    step b { sh "echo b >> marks" }
    step c { sh "echo c >> marks" }
    step d after a { sh "echo d >> marks" }
    step e after b, c { sh "echo e >> marks" }
    step f after d {
      sh    "echo f >> marks"
      until "test $RUNBOOK_ATTEMPT -ge 2" attempts 3
    }
  }
  phase verify {
    step g { sh "echo g >> marks" }
    step h { sh "echo h >> marks" }
    step i after g { sh "echo i >> marks" }
    step j after h, i { sh "echo j >> marks" }
    step k after e { sh "echo k >> marks" }
    step l after j, k { sh "echo l >> marks" }
  }
}
"#;

const STEPS: [&str; 12] = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l"];

/// How many times each step appears in `marks`.
fn marks(t: &Test) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for line in t.read("marks").lines() {
        *counts.entry(line.to_string()).or_default() += 1;
    }
    counts
}

/// Resumes until the run succeeds; returns how many resumes it took.
fn resume_to_completion(t: &Test, id: &str, context: &str) -> usize {
    for resumes in 1..=5 {
        let out = t.command(&["resume", id, "--jobs", "4"]);
        match out.code {
            Some(0) => return resumes,
            // Only a run that was cut short mid-way may need another go.
            Some(130) | None => continue,
            _ => panic!(
                "{context}: resume exited {:?}\n{}\n{}",
                out.code, out.stdout, out.stderr
            ),
        }
    }
    panic!("{context}: the run did not finish after 5 resumes");
}

/// The promises of a crashed-and-resumed run, checked against a clean run's marks.
fn assert_recovered(t: &Test, clean: &BTreeMap<String, usize>, context: &str) {
    let run = t.only_run();
    // Every line parses (the helper panics otherwise).
    let events = run.events();
    let finished: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "run_finished")
        .collect();
    assert_eq!(finished.len(), 1, "{context}: {finished:?}");
    assert_eq!(finished[0]["status"], "succeeded", "{context}");
    assert_eq!(
        events.last().unwrap()["event"],
        "run_finished",
        "{context}: events after the end"
    );

    for step in STEPS {
        let ok: Vec<usize> = events
            .iter()
            .enumerate()
            .filter(|(_, e)| e["event"] == "step_finished" && e["step"] == step && e["ok"] == true)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            ok.len(),
            1,
            "{context}: {step} succeeded {} times",
            ok.len()
        );
        let restarted = events[ok[0]..]
            .iter()
            .any(|e| e["event"] == "step_started" && e["step"] == step);
        assert!(
            !restarted,
            "{context}: {step} started again after it succeeded"
        );
    }

    let counts = marks(t);
    for step in STEPS {
        let ran = counts.get(step).copied().unwrap_or(0);
        let expected = clean[step];
        // At least once; at most one run more than a clean run: the attempt in flight.
        // (An attempt cut short still takes its number, so `f`'s check, which passes
        // from attempt 2 on, may pass on its first complete run.)
        assert!(
            (1..=expected + 1).contains(&ran),
            "{context}: {step} ran {ran} times (clean run: {expected}): {counts:?}"
        );
    }
}

/// A clean run: its journal's length, how often each step ran, and how long it took
/// (only to aim the random kills inside a run, never asserted on).
fn clean_run(dag: &str) -> (usize, BTreeMap<String, usize>, Duration) {
    let t = Test::new()
        .runbook(dag)
        .args(["run", RUNBOOK, "--jobs", "4"]);
    let started = Instant::now();
    t.run().code(0);
    let took = started.elapsed();
    let events = t.only_run().events().len();
    let counts = marks(&t);
    assert_eq!(counts.len(), 12);
    assert_eq!(counts["f"], 2, "f succeeds on its second attempt");
    (events, counts, took)
}

#[test]
fn a_crash_after_any_journal_line_resumes_to_the_same_end() {
    let (total, clean, _) = clean_run(DAG);
    let mut resumes = 0;
    for n in 1..=total {
        let context = format!("crash after event {n} of {total}");
        let t = Test::new()
            .runbook(DAG)
            .env("RUNBOOK_CRASH_AFTER_EVENTS", &n.to_string());
        let out = t.command(&["run", RUNBOOK, "--jobs", "4"]);
        assert_eq!(
            out.code, None,
            "{context}: expected an abort\n{}",
            out.stderr
        );
        let run = t.only_run();
        assert_eq!(
            run.events().len(),
            n,
            "{context}: the journal holds N lines"
        );

        // The resume runs without the hook: it is a different process environment.
        let t = t_without_hook(t);
        resumes += resume_to_completion(&t, &run.id, &context);
        assert_recovered(&t, &clean, &context);
    }
    eprintln!("crash points: {total}, resumes: {resumes}");
}

/// The same directory, with the crash hook no longer set.
fn t_without_hook(t: Test) -> Test {
    t.without_env("RUNBOOK_CRASH_AFTER_EVENTS")
}

/// A random number from the standard library's per-process hash keys.
fn random_below(bound: u64, salt: u64) -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(salt);
    h.finish() % bound.max(1)
}

#[test]
fn a_sigkill_at_a_random_moment_resumes_to_the_same_end() {
    // Each step lingers a little, so that most kills land while steps run.
    let dag = DAG.replace(">> marks\"", ">> marks; sleep 0.05\"");
    let (_, clean, took) = clean_run(&dag);
    let bound = u64::try_from(took.as_millis()).unwrap_or(u64::MAX).max(1);
    let (mut resumes, mut killed) = (0, 0);
    for round in 0..6u64 {
        let t = Test::new().runbook(&dag);
        let mut child = t.spawn("killed", &["run", RUNBOOK, "--jobs", "4"]);
        // Kill somewhere after the run has started: once its journal has a line.
        let give_up = Instant::now() + Duration::from_secs(30);
        while t.runs().is_empty()
            || std::fs::read_to_string(t.runs()[0].path.join("events.jsonl"))
                .map_or(true, |s| s.is_empty())
        {
            assert!(Instant::now() < give_up, "the run never started");
            std::thread::sleep(Duration::from_millis(1));
        }
        let delay = random_below(bound, round);
        std::thread::sleep(Duration::from_millis(delay));
        child.signal(libc::SIGKILL);
        let status = child.wait();
        let context = format!("SIGKILL after {delay} ms (round {round})");
        let run = t.only_run();
        if status.signal() != Some(libc::SIGKILL) {
            // It finished before the signal arrived; nothing to recover.
            assert_eq!(status.code(), Some(0), "{context}");
        } else {
            killed += 1;
            resumes += resume_to_completion(&t, &run.id, &context);
        }
        assert_recovered(&t, &clean, &context);
    }
    eprintln!("random kills: 6 rounds, {killed} killed mid-run, resumes: {resumes}");
}
