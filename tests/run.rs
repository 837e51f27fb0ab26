//! `runbook run`, `resume`, `approve`, `runs`, `show` and `--dry-run`, driven through the
//! real binary. Ordering is asserted from the journal, never from wall-clock time.

mod support;

use serde_json::Value;
use support::{group_members, in_process_table, last_position, position, Test, RUNBOOK};

// ── parallelism and ordering ────────────────────────────────────────────────────────

const TWO_SLEEPS: &str = r#"
runbook par {
  phase one {
    step a { sh "sleep 1" }
    step b { sh "sleep 1" }
  }
}
"#;

#[test]
fn two_jobs_run_independent_steps_at_the_same_time() {
    let t = Test::new()
        .runbook(TWO_SLEEPS)
        .args(["run", RUNBOOK, "--jobs", "2"]);
    t.run().code(0);
    let events = t.only_run().events();
    // Each started before the other finished.
    assert!(position(&events, "step_started", "b") < position(&events, "step_finished", "a"));
    assert!(position(&events, "step_started", "a") < position(&events, "step_finished", "b"));
}

#[test]
fn one_job_runs_one_step_at_a_time() {
    let t = Test::new()
        .runbook(TWO_SLEEPS)
        .args(["run", RUNBOOK, "--jobs", "1"]);
    t.run().code(0);
    let events = t.only_run().events();
    let kinds: Vec<&str> = events
        .iter()
        .filter_map(|e| e["event"].as_str())
        .filter(|k| k.starts_with("step_"))
        .collect();
    assert_eq!(
        kinds,
        [
            "step_started",
            "step_finished",
            "step_started",
            "step_finished"
        ]
    );
    let steps: Vec<&Value> = events
        .iter()
        .filter(|e| e["event"] == "step_started" || e["event"] == "step_finished")
        .map(|e| &e["step"])
        .collect();
    assert_eq!(steps[0], steps[1]);
    assert_eq!(steps[2], steps[3]);
}

#[test]
fn after_orders_steps() {
    let t = Test::new().runbook(
        r#"
runbook order {
  phase one {
    step c after b { sh "echo c >> order" }
    step b after a { sh "echo b >> order" }
    step a { sh "echo a >> order" }
  }
}
"#,
    );
    t.run().code(0);
    assert_eq!(t.read("order"), "a\nb\nc\n");
    let events = t.only_run().events();
    assert!(position(&events, "step_finished", "a") < position(&events, "step_started", "b"));
    assert!(position(&events, "step_finished", "b") < position(&events, "step_started", "c"));
}

#[test]
fn phases_run_in_file_order() {
    let t = Test::new().runbook(
        r#"
runbook phases {
  phase first {
    step a1 { sh "true" }
    step a2 { sh "true" }
  }
  phase second {
    step b1 { sh "true" }
    step b2 { sh "true" }
  }
}
"#,
    );
    t.command(&["run", RUNBOOK, "--jobs", "4"]).code(0);
    let events = t.only_run().events();
    for first in ["a1", "a2"] {
        for second in ["b1", "b2"] {
            assert!(
                position(&events, "step_finished", first)
                    < position(&events, "step_started", second),
                "{second} started before {first} finished"
            );
        }
    }
}

#[test]
fn shell_quote_passes_an_output_to_sh_as_one_word() {
    // An agent's output is not to be trusted: quotes, `;` and `$( )` must stay text.
    let hostile = "it's done'; touch pwned; echo '$(touch pwned2) `touch pwned3`";
    let t = Test::new()
        .write("hostile.txt", format!("{hostile}\n"))
        .runbook(
            r#"
runbook quoting {
  phase one {
    step a { sh "cat hostile.txt" }
    step b after a { sh "printf '%s' {{ steps.a.output | shell_quote }} > quoted.txt" }
  }
}
"#,
        );
    t.run().code(0);
    assert_eq!(t.read("quoted.txt"), hostile);
    for file in ["pwned", "pwned2", "pwned3"] {
        assert!(!t.path().join(file).exists(), "{file} was created");
    }
}

#[test]
fn a_checkpoint_is_a_barrier() {
    let t = Test::new().runbook(
        r#"
runbook barrier {
  phase one {
    step above1 { sh "true" }
    step above2 { sh "true" }
    checkpoint gate { ask "go on?" }
    step below1 { sh "true" }
    step below2 { sh "true" }
  }
}
"#,
    );
    t.command(&["run", RUNBOOK, "--jobs", "4", "--approve-all"])
        .code(0);
    let events = t.only_run().events();
    let asked = position(&events, "checkpoint_asked", "gate");
    let decided = position(&events, "checkpoint_decided", "gate");
    for above in ["above1", "above2"] {
        assert!(position(&events, "step_finished", above) < asked);
    }
    for below in ["below1", "below2"] {
        assert!(decided < position(&events, "step_started", below));
    }
}

// ── retries ─────────────────────────────────────────────────────────────────────────

/// An agent that keeps each prompt it receives on stdin, and a check that fails once.
const RETRY: &str = r#"
runbook retry {
  agent x {
    run   "sh -c 'cat > stdin-$RUNBOOK_ATTEMPT.txt; echo agent attempt $RUNBOOK_ATTEMPT; echo agent stderr >&2'"
    write ["**"]
    exec  ["test"]
  }
  phase one {
    step fix by x {
      prompt """
        Make the tests pass.
        {% if feedback %}Feedback from the last attempt:
        {{ feedback }}{% endif %}
      """
      until "echo CHECK-SAYS-tests-are-red; test $RUNBOOK_ATTEMPT -ge 2" attempts 3
    }
  }
}
"#;

#[test]
fn a_failing_until_check_retries_with_its_output_as_feedback() {
    let t = Test::new().runbook(RETRY);
    t.run().code(0);
    let run = t.only_run();
    assert_eq!(run.attempts("fix"), [1, 2]);
    for attempt in [1, 2] {
        // Both streams printed something, so both logs exist (a silent stream leaves none).
        for file in ["prompt.md", "stdout.log", "stderr.log", "result.json"] {
            assert!(
                run.attempt_dir("fix", attempt).join(file).is_file(),
                "attempt {attempt} has no {file}"
            );
        }
        assert_eq!(
            run.attempt_file("fix", attempt, "stdout.log"),
            format!("agent attempt {attempt}\n")
        );
        assert_eq!(
            run.attempt_file("fix", attempt, "stderr.log"),
            "agent stderr\n"
        );
        // The agent got exactly the recorded prompt on stdin.
        assert_eq!(
            t.read(&format!("stdin-{attempt}.txt")),
            run.attempt_file("fix", attempt, "prompt.md")
        );
    }
    let first = run.attempt_file("fix", 1, "prompt.md");
    assert!(!first.contains("Feedback"), "{first}");
    let second = run.attempt_file("fix", 2, "prompt.md");
    assert!(
        second.contains("Feedback from the last attempt"),
        "{second}"
    );
    assert!(second.contains("CHECK-SAYS-tests-are-red"), "{second}");

    let r1: Value = serde_json::from_str(&run.attempt_file("fix", 1, "result.json")).unwrap();
    let r2: Value = serde_json::from_str(&run.attempt_file("fix", 2, "result.json")).unwrap();
    assert_eq!(
        (&r1["ok"], &r1["attempt"]),
        (&Value::Bool(false), &Value::from(1))
    );
    assert_eq!(
        (&r2["ok"], &r2["attempt"]),
        (&Value::Bool(true), &Value::from(2))
    );

    let finished = run.events_named("step_finished");
    assert_eq!(finished.len(), 2);
    assert_eq!(finished[0]["retry"], true);
    assert_eq!(finished[1]["ok"], true);
}

#[test]
fn a_silent_stream_leaves_no_log_and_a_multi_line_step_keeps_its_order() {
    let t = Test::new().runbook(
        r#"
runbook quiet {
  phase only {
    step silent { sh "true" }
    step lines { sh ["echo one", "true", "echo two >&2", "echo three"] }
  }
}
"#,
    );
    t.run().code(0);
    let run = t.only_run();
    let silent = run.attempt_dir("silent", 1);
    assert!(silent.join("prompt.md").is_file() && silent.join("result.json").is_file());
    assert!(!silent.join("stdout.log").exists() && !silent.join("stderr.log").exists());
    assert_eq!(run.attempt_file("lines", 1, "stdout.log"), "one\nthree\n");
    assert_eq!(run.attempt_file("lines", 1, "stderr.log"), "two\n");
    // The per-line pieces are folded into the two logs and removed.
    let mut names: Vec<String> = std::fs::read_dir(run.attempt_dir("lines", 1))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["prompt.md", "result.json", "stderr.log", "stdout.log"]
    );
}

#[test]
fn an_until_check_that_never_passes_fails_the_run_after_its_attempts() {
    let t = Test::new().runbook(
        r#"
runbook never {
  phase one {
    step setup { sh "true" rollback { sh "echo undone > undone.txt" } }
    step flaky after setup {
      sh    "echo try >> tries"
      until "false" attempts 3
    }
  }
}
"#,
    );
    t.run().code(1).stderr_has("flaky");
    let run = t.only_run();
    assert_eq!(t.read("tries"), "try\ntry\ntry\n");
    assert_eq!(run.attempts("flaky"), [1, 2, 3]);
    let finished: Vec<Value> = run
        .events_named("step_finished")
        .into_iter()
        .filter(|e| e["step"] == "flaky")
        .collect();
    let retries: Vec<&Value> = finished.iter().map(|e| &e["retry"]).collect();
    assert_eq!(retries, [true, true, false]);
    assert!(finished.iter().all(|e| e["ok"] == false));
    assert_eq!(t.read("undone.txt"), "undone\n");
    assert_eq!(run.events_named("rollback_action").len(), 1);
    assert_eq!(run.events_named("run_finished")[0]["status"], "failed");
}

// ── processes ───────────────────────────────────────────────────────────────────────

#[test]
fn a_timeout_kills_the_whole_process_group() {
    let t = Test::new().runbook(
        r#"
runbook slow {
  phase one {
    step hang {
      sh "sleep 300 & echo $! >> pids; sleep 300 & echo $! >> pids; echo $$ > pidfile; wait"
      timeout 1s
    }
  }
}
"#,
    );
    t.run().code(1).stderr_has("timed out");
    let leader: i32 = t.read("pidfile").trim().parse().unwrap();
    let mut pids: Vec<i32> = t
        .read("pids")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    pids.push(leader);
    assert_eq!(pids.len(), 3);
    // Gone entirely: not running, and not left behind as zombies either.
    assert_eq!(group_members(leader), Vec::<i32>::new());
    for pid in pids {
        assert!(!in_process_table(pid), "pid {pid} is still there");
    }
    // SAFETY: signal 0 only probes for the group.
    let rc = unsafe { libc::kill(-leader, 0) };
    assert_eq!(rc, -1, "the process group still exists");
    let finished = &t.only_run().events_named("step_finished")[0];
    assert_eq!(finished["ok"], false);
    assert!(finished["reason"].as_str().unwrap().contains("timed out"));
}

#[test]
fn an_agent_that_never_reads_a_huge_prompt_does_not_hang() {
    let t = Test::new().write("big.md", "x".repeat(5 << 20)).runbook(
        r#"
runbook deaf {
  agent deaf {
    run "sh -c 'echo ignoring stdin; sleep 0.2; echo done'"
  }
  phase one {
    step talk by deaf { prompt file("big.md") }
  }
}
"#,
    );
    t.run().code(0);
    let run = t.only_run();
    assert_eq!(
        run.attempt_file("talk", 1, "stdout.log"),
        "ignoring stdin\ndone\n"
    );
    assert_eq!(run.attempt_file("talk", 1, "prompt.md").len(), 5 << 20);
    assert_eq!(run.events_named("step_finished")[0]["ok"], true);
}

#[test]
fn agents_that_exit_at_once_get_their_status_recorded() {
    let t = Test::new().write("big.md", "y".repeat(5 << 20)).runbook(
        r#"
runbook quick {
  agent quits { run "true" }
  agent fails { run "sh -c 'exit 4'" }
  phase one {
    step ok by quits { prompt file("big.md") }
    step bad by fails after ok { prompt file("big.md") }
  }
}
"#,
    );
    t.run().code(1);
    let finished = t.only_run().events_named("step_finished");
    assert_eq!(finished.len(), 2);
    assert_eq!(
        (&finished[0]["step"], &finished[0]["ok"]),
        (&"ok".into(), &true.into())
    );
    assert_eq!(finished[1]["step"], "bad");
    assert_eq!(finished[1]["ok"], false);
    assert_eq!(finished[1]["exit_code"], 4);
}

#[test]
fn a_step_gets_only_the_environment_it_is_granted() {
    let t = Test::new()
        .env("GRANTED", "granted-value")
        .env("NOT_GRANTED", "leaked-value")
        .runbook(
            r#"
runbook envs {
  agent printer uses shell { env [GRANTED] }
  phase one {
    step show by printer { sh "env" }
  }
}
"#,
        );
    t.run().code(0);
    let run = t.only_run();
    let out = run.attempt_file("show", 1, "stdout.log");
    let mut names: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once('=').map(|(k, _)| k))
        .collect();
    names.sort_unstable();
    // PWD is set by sh itself.
    let mut expected = vec![
        "GRANTED",
        "PATH",
        "PWD",
        "RUNBOOK_ATTEMPT",
        "RUNBOOK_PROMPT_FILE",
        "RUNBOOK_RUN_DIR",
        "RUNBOOK_RUN_ID",
        "RUNBOOK_STEP",
        // The step's own temp dir, the one writable place outside its worktree.
        "TMPDIR",
    ];
    for optional in ["HOME", "LANG"] {
        if std::env::var_os(optional).is_some() {
            expected.push(optional);
        }
    }
    expected.sort_unstable();
    assert_eq!(names, expected, "{out}");
    assert!(out.contains("GRANTED=granted-value\n"));
    assert!(!out.contains("leaked-value"));
    assert!(!out.contains("RUNBOOK_USER"));
    assert!(out.contains(&format!("RUNBOOK_RUN_ID={}\n", run.id)));
    assert!(out.contains("RUNBOOK_STEP=show\n"));
    assert!(out.contains("RUNBOOK_ATTEMPT=1\n"));
    let prompt_file = run.attempt_dir("show", 1).join("prompt.md");
    assert!(out.contains(&format!("RUNBOOK_PROMPT_FILE={}\n", prompt_file.display())));
}

// ── params ──────────────────────────────────────────────────────────────────────────

const PARAMS: &str = r#"
runbook params {
  param name: string         "Who to greet"
  param count: int = 3
  param loud: bool = false
  param wait: duration = 30m
  phase one {
    step greet { sh "echo {{ params.name }} {{ params.count }} {{ params.wait }}" }
  }
}
"#;

fn greeting(t: &Test) -> String {
    t.last_run().attempt_file("greet", 1, "stdout.log")
}

#[test]
fn params_take_their_defaults() {
    let t = Test::new()
        .runbook(PARAMS)
        .args(["run", RUNBOOK, "--param", "name=ann"]);
    t.run().code(0);
    assert_eq!(greeting(&t), "ann 3 30m\n");
    assert_eq!(
        t.only_run().events_named("run_started")[0]["params"],
        serde_json::json!({"name": "ann", "count": 3, "loud": false, "wait": "30m"})
    );
}

#[test]
fn params_on_the_command_line_are_typed() {
    let t = Test::new().runbook(PARAMS).args([
        "run", RUNBOOK, "--param", "name=bo", "--param", "count=7", "--param", "wait=2h",
    ]);
    t.run().code(0);
    assert_eq!(
        t.only_run().events_named("run_started")[0]["params"],
        serde_json::json!({"name": "bo", "count": 7, "loud": false, "wait": "2h"})
    );
}

#[test]
fn a_param_of_the_wrong_type_is_a_usage_error_naming_it() {
    let t = Test::new().runbook(PARAMS).args([
        "run",
        RUNBOOK,
        "--param",
        "name=bo",
        "--param",
        "count=many",
    ]);
    t.run().code(2).stderr_has("count");
    assert!(t.runs().is_empty());
}

#[test]
fn params_from_a_json_file() {
    let t = Test::new()
        .runbook(PARAMS)
        .write("p.json", r#"{"name": "cy", "count": 5, "loud": true}"#)
        .args(["run", RUNBOOK, "--params", "p.json"]);
    t.run().code(0);
    assert_eq!(
        t.only_run().events_named("run_started")[0]["params"],
        serde_json::json!({"name": "cy", "count": 5, "loud": true, "wait": "30m"})
    );
}

#[test]
fn params_from_a_toml_file_and_the_command_line_wins() {
    let t = Test::new()
        .runbook(PARAMS)
        .write("p.toml", "name = \"di\"\ncount = 9\nwait = \"1h\"\n")
        .args(["run", RUNBOOK, "--params", "p.toml", "--param", "count=10"]);
    t.run().code(0);
    assert_eq!(
        t.only_run().events_named("run_started")[0]["params"],
        serde_json::json!({"name": "di", "count": 10, "loud": false, "wait": "1h"})
    );
}

#[test]
fn a_missing_required_param_is_a_usage_error() {
    let t = Test::new().runbook(PARAMS);
    t.run().code(2).stderr_has("name");
    assert!(!t.path().join(".runbook").exists());
}

#[test]
fn an_unknown_param_is_a_usage_error() {
    let t = Test::new().runbook(PARAMS).args([
        "run",
        RUNBOOK,
        "--param",
        "name=x",
        "--param",
        "colour=red",
    ]);
    t.run().code(2).stderr_has("colour");
    let t = Test::new()
        .runbook(PARAMS)
        .write("p.json", r#"{"name": "x", "colour": "red"}"#)
        .args(["run", RUNBOOK, "--params", "p.json"]);
    t.run().code(2).stderr_has("colour");
    assert!(!t.path().join(".runbook").exists());
}

#[test]
fn a_runbook_with_a_check_error_does_not_start() {
    let t = Test::new().runbook(
        r#"
runbook broken {
  phase one {
    step a after nowhere { sh "touch ran" }
  }
}
"#,
    );
    t.run().code(2).stderr_has("nowhere");
    assert!(!t.path().join(".runbook").exists());
    assert!(!t.path().join("ran").exists());
}

// ── checkpoints ─────────────────────────────────────────────────────────────────────

const CHECKPOINT: &str = r#"
runbook review {
  agent writer {
    run   "sh -c 'cat > last-prompt.md; echo draft $RUNBOOK_ATTEMPT'"
    write ["**"]
  }
  phase one {
    step draft by writer {
      prompt """
        Write the draft.
        {% if feedback %}Reviewer feedback: {{ feedback }}{% endif %}
      """
      rollback { sh "echo draft >> undone" }
    }
    step notes { sh "echo notes" rollback { sh "echo notes >> undone" } }
    rollback { sh "echo phase-one >> undone" }
  }
  phase two {
    step shape { sh "echo shape" rollback { sh "echo shape >> undone" } }
    checkpoint cp "Ship the draft?" {
      show   [steps.draft.output]
      revise draft
    }
    step publish { sh "echo published > published" }
    rollback { sh "echo phase-two >> undone" }
  }
  rollback { sh "echo runbook >> undone" }
}
"#;

/// Runs the test's runbook with `--no-input`, expects it to suspend, returns the run id.
fn suspended(t: &Test) -> String {
    t.command(&["run", RUNBOOK, "--no-input"]).code(3);
    t.last_run().id
}

/// A run of `CHECKPOINT` waiting at `cp`.
fn suspended_at_checkpoint() -> (Test, String) {
    let t = Test::new().runbook(CHECKPOINT);
    let id = suspended(&t);
    (t, id)
}

#[test]
fn no_input_suspends_at_a_checkpoint_and_approve_then_resume_finishes() {
    let (t, id) = suspended_at_checkpoint();
    assert!(!t.path().join("published").exists());
    let run = t.only_run();
    assert_eq!(run.kinds().last().unwrap(), "run_suspended");

    t.command(&["approve", &id, "cp", "--as", "alice"]).code(0);
    t.command(&["resume", &id]).code(0);
    assert_eq!(t.read("published"), "published\n");

    let decided = run.events_named("checkpoint_decided");
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["decision"], "approve");
    assert_eq!(decided[0]["by"], "alice");
    assert_eq!(decided[0]["preapproved"], false);
    assert!(decided[0]["time"].as_str().unwrap().ends_with('Z'));
    let asked = &run.events_named("checkpoint_asked")[0];
    assert_eq!(decided[0]["content_sha256"], asked["content_sha256"]);
    assert_eq!(run.events_named("run_finished")[0]["status"], "succeeded");
    // Nothing that finished before the suspension ran again.
    for step in ["draft", "notes", "shape"] {
        assert_eq!(run.attempts(step), [1], "{step}");
    }
}

#[test]
fn a_rejected_checkpoint_rolls_back_in_reverse_completion_order() {
    let (t, id) = suspended_at_checkpoint();
    t.command(&["approve", &id, "cp", "--reject", "--as", "alice"])
        .code(0);
    t.command(&["resume", &id]).code(1).stderr_has("rejected");
    assert!(!t.path().join("published").exists());

    let run = t.only_run();
    let events = run.events();
    let completed: Vec<&str> = events
        .iter()
        .filter(|e| e["event"] == "step_finished" && e["ok"] == true)
        .map(|e| e["step"].as_str().unwrap())
        .collect();
    // Expected: each completed step in reverse, a phase's block once its earliest
    // completed step is undone, then the runbook's own.
    let mut expected: Vec<String> = Vec::new();
    let phase_of = |s: &str| if s == "shape" { "two" } else { "one" };
    let mut open: Vec<&str> = Vec::new();
    for (i, step) in completed.iter().enumerate().rev() {
        expected.push(format!("step {step}"));
        let phase = phase_of(step);
        if !completed[..i].iter().any(|s| phase_of(s) == phase) && !open.contains(&phase) {
            open.push(phase);
            expected.push(format!("phase {phase}"));
        }
    }
    expected.push("runbook".into());
    let scopes: Vec<String> = run
        .events_named("rollback_action")
        .iter()
        .map(|e| e["scope"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(scopes, expected);
    // Phase two's steps all completed after phase one's.
    assert_eq!(&scopes[..2], ["step shape", "phase two"]);
    assert!(run
        .events_named("rollback_action")
        .iter()
        .all(|e| e["ok"] == true));
    assert_eq!(run.events_named("run_finished")[0]["status"], "rejected");
    let undone: Vec<String> = t.read("undone").lines().map(str::to_string).collect();
    assert_eq!(undone.len(), 6);
    assert_eq!(undone.last().unwrap(), "runbook");
}

#[test]
fn revise_reruns_the_step_with_the_comment_and_asks_again() {
    let (t, id) = suspended_at_checkpoint();
    t.command(&[
        "approve",
        &id,
        "cp",
        "--revise",
        "shorter please",
        "--as",
        "alice",
    ])
    .code(0);
    t.command(&["resume", &id]).code(3);
    let run = t.only_run();
    assert_eq!(run.attempts("draft"), [1, 2]);
    let prompt = run.attempt_file("draft", 2, "prompt.md");
    assert!(prompt.contains("Reviewer feedback: "), "{prompt}");
    assert!(prompt.contains("shorter please"), "{prompt}");
    assert!(!run
        .attempt_file("draft", 1, "prompt.md")
        .contains("shorter"));
    // A step the revised one does not lead to does not run again; one between it and
    // the checkpoint (phase two runs after phase one) does, as it may build on the draft.
    assert_eq!(run.attempts("notes"), [1]);
    assert_eq!(run.attempts("shape"), [1, 2]);
    let reset = &run.events_named("nodes_reset")[0];
    assert_eq!(reset["nodes"], serde_json::json!(["draft", "shape", "cp"]));
    assert_eq!(run.events_named("checkpoint_asked").len(), 2);
    assert_eq!(run.kinds().last().unwrap(), "run_suspended");

    // The first decision is spent: the checkpoint asks about the new draft.
    t.command(&["approve", &id, "cp", "--as", "bob"]).code(0);
    t.command(&["resume", &id]).code(0);
    assert_eq!(t.read("published"), "published\n");
    let decided = run.events_named("checkpoint_decided");
    let by: Vec<(&str, &str)> = decided
        .iter()
        .map(|d| (d["decision"].as_str().unwrap(), d["by"].as_str().unwrap()))
        .collect();
    assert_eq!(by, [("revise", "alice"), ("approve", "bob")]);
    assert_eq!(decided[0]["comment"], "shorter please");
}

#[test]
fn only_listed_approvers_may_decide() {
    let t = Test::new().runbook(
        r#"
runbook gated {
  phase one {
    step a { sh "true" }
    checkpoint cp { approvers ["bob"] }
    step b { sh "touch b-ran" }
  }
}
"#,
    );
    let id = suspended(&t);
    t.command(&["approve", &id, "cp", "--as", "alice"])
        .code(2)
        .stderr_has("bob");
    assert!(t.only_run().events_named("checkpoint_decided").is_empty());
    t.command(&["approve", &id, "cp", "--as", "bob"]).code(0);
    t.command(&["resume", &id]).code(0);
    assert!(t.path().join("b-ran").exists());
}

#[test]
fn pre_approval_is_refused_for_someone_not_among_the_approvers() {
    let t = Test::new().runbook(
        r#"
runbook gated {
  phase one {
    step a { sh "true" }
    checkpoint cp { approvers ["bob"] }
    step b { sh "touch b-ran" }
  }
}
"#,
    );
    t.command(&["run", RUNBOOK, "--approve", "cp", "--as", "alice"])
        .code(2)
        .stderr_has("bob");
    t.command(&["run", RUNBOOK, "--approve-all", "--as", "alice"])
        .code(3);
    assert!(!t.path().join("b-ran").exists());
    assert!(t.last_run().events_named("checkpoint_decided").is_empty());
    t.command(&["run", RUNBOOK, "--approve", "cp", "--as", "bob"])
        .code(0);
    assert!(t.path().join("b-ran").exists());
}

#[test]
fn approve_all_pre_approves_every_checkpoint() {
    let t = Test::new()
        .runbook(CHECKPOINT)
        .args(["run", RUNBOOK, "--approve-all"]);
    t.run().code(0);
    let decided = t.only_run().events_named("checkpoint_decided");
    assert_eq!(decided.len(), 1);
    assert_eq!(decided[0]["preapproved"], true);
    assert_eq!(decided[0]["decision"], "approve");
    assert_eq!(t.read("published"), "published\n");
}

#[test]
fn approve_names_one_checkpoint_in_advance() {
    let t = Test::new()
        .runbook(CHECKPOINT)
        .args(["run", RUNBOOK, "--approve", "cp"]);
    t.run().code(0);
    let decided = t.only_run().events_named("checkpoint_decided");
    assert_eq!(decided[0]["preapproved"], true);
    assert_eq!(decided[0]["checkpoint"], "cp");
    // A name that is no checkpoint is a usage error.
    t.command(&["run", RUNBOOK, "--approve", "publish"]).code(2);
}

#[test]
fn approving_a_checkpoint_that_is_not_waiting_is_a_usage_error() {
    let (t, id) = suspended_at_checkpoint();
    // A step, not a waiting checkpoint.
    t.command(&["approve", &id, "draft"])
        .code(2)
        .stderr_has("not waiting");
    // No such name at all.
    t.command(&["approve", &id, "nope"]).code(2);
    // Decided already: the first decision stands until the run is resumed.
    t.command(&["approve", &id, "cp", "--reject"]).code(0);
    t.command(&["approve", &id, "cp"])
        .code(2)
        .stderr_has("already");
    t.command(&["resume", &id]).code(1);
    // A finished run waits for nothing.
    t.command(&["approve", &id, "cp"]).code(2);
}

#[test]
fn resume_refuses_a_runbook_edited_since_the_run_started() {
    let (t, id) = suspended_at_checkpoint();
    t.command(&["approve", &id, "cp"]).code(0);
    let edited = CHECKPOINT.replace("echo notes", "echo other notes");
    std::fs::write(t.path().join(RUNBOOK), edited).unwrap();
    t.command(&["resume", &id]).code(2).stderr_has(RUNBOOK);
    assert!(!t.path().join("published").exists());
    // Restoring the file lets it go on.
    std::fs::write(t.path().join(RUNBOOK), CHECKPOINT).unwrap();
    t.command(&["resume", &id]).code(0);
}

// ── on_failure ──────────────────────────────────────────────────────────────────────

#[test]
fn no_step_starts_after_a_failure_that_rolls_back() {
    // Steps waiting for a process slot when `first` fails must give up: nothing of them
    // is started or recorded.
    let t = Test::new()
        .runbook(
            r#"
runbook halt {
  phase one {
    step first { sh "echo first >> ran; sleep 0.2; exit 1" }
    step second { sh "echo second >> ran; sleep 0.2; exit 1" }
    step third { sh "echo third >> ran; sleep 0.2; exit 1" }
  }
}
"#,
        )
        .args(["run", RUNBOOK, "--jobs", "1"]);
    t.run().code(1);
    let run = t.only_run();
    let started: Vec<String> = run
        .events_named("step_started")
        .iter()
        .map(|e| e["step"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(started.len(), 1, "{started:?}");
    assert_eq!(t.read("ran"), format!("{}\n", started[0]));
    for step in ["first", "second", "third"] {
        if step != started[0] {
            assert!(run.attempts(step).is_empty(), "{step} left a record");
        }
    }
}

#[test]
fn on_failure_continue_lets_dependents_run() {
    let t = Test::new().runbook(
        r#"
runbook lenient {
  phase one {
    step optional { sh "exit 3" on_failure continue }
    step next after optional { sh "touch next-ran" }
  }
}
"#,
    );
    t.run().code(0);
    assert!(t.path().join("next-ran").exists());
    let run = t.only_run();
    assert!(run.events_named("rollback_started").is_empty());
    assert_eq!(run.events_named("run_finished")[0]["status"], "succeeded");
}

const ESCALATE: &str = r#"
runbook escalating {
  phase one {
    step setup { sh "true" rollback { sh "touch setup-undone" } }
    step fragile after setup {
      sh "echo try >> tries; test -f fixed"
      on_failure escalate
    }
    step after_fragile after fragile { sh "touch after-ran" }
  }
}
"#;

#[test]
fn an_escalated_failure_suspends_and_approve_retries_it() {
    let t = Test::new().runbook(ESCALATE);
    let id = suspended(&t);
    let run = t.only_run();
    let asked = &run.events_named("checkpoint_asked")[0];
    assert_eq!(
        (&asked["checkpoint"], &asked["escalation"]),
        (&"fragile".into(), &true.into())
    );
    std::fs::write(t.path().join("fixed"), "").unwrap();
    t.command(&["approve", &id, "fragile"]).code(0);
    t.command(&["resume", &id]).code(0);
    assert_eq!(t.read("tries"), "try\ntry\n");
    assert!(t.path().join("after-ran").exists());
    assert_eq!(run.attempts("fragile"), [1, 2]);
}

#[test]
fn an_escalated_failure_can_be_skipped() {
    let t = Test::new().runbook(ESCALATE);
    let id = suspended(&t);
    t.command(&["approve", &id, "fragile", "--skip"]).code(0);
    t.command(&["resume", &id]).code(0);
    assert_eq!(t.read("tries"), "try\n");
    assert!(t.path().join("after-ran").exists());
    let skipped = t.only_run().events_named("step_skipped");
    assert_eq!(skipped[0]["step"], "fragile");
}

#[test]
fn an_escalated_failure_can_be_rejected() {
    let t = Test::new().runbook(ESCALATE);
    let id = suspended(&t);
    t.command(&["approve", &id, "fragile", "--reject"]).code(0);
    t.command(&["resume", &id]).code(1);
    assert!(!t.path().join("after-ran").exists());
    assert!(t.path().join("setup-undone").exists());
    assert_eq!(
        t.only_run().events_named("run_finished")[0]["status"],
        "failed"
    );
}

// ── secrets ─────────────────────────────────────────────────────────────────────────

const SECRET_VALUE: &str = "tok-3f9a-very-secret";

#[test]
fn secrets_reach_the_agent_and_no_record_or_output() {
    let t = Test::new().env("TOKEN", SECRET_VALUE).runbook(
        r#"
runbook secretive {
  secret TOKEN
  agent leaky {
    run   "sh -c 'cat > /dev/null; echo out=$TOKEN; echo err=$TOKEN >&2'"
    env   [TOKEN]
    exec  ["test"]
  }
  phase one {
    step leak by leaky {
      prompt "{% if feedback %}{{ feedback }}{% endif %}"
      until  "echo check=$TOKEN; test $RUNBOOK_ATTEMPT -ge 2" attempts 2
      rollback { sh "echo rollback" }
    }
    step fail after leak { sh "echo fail=$TOKEN >&2; exit 1" }
  }
}
"#,
    );
    let run_output = t.command(&["run", RUNBOOK, "--verbose"]);
    run_output.code(1);
    let run = t.only_run();
    // The agent did get the value: its output holds the redaction marker instead.
    let stdout = run.attempt_file("leak", 1, "stdout.log");
    assert!(stdout.contains("out=[redacted:TOKEN]"), "{stdout}");
    assert!(run
        .attempt_file("leak", 1, "stderr.log")
        .contains("err=[redacted:TOKEN]"));
    assert!(run
        .attempt_file("leak", 2, "prompt.md")
        .contains("check=[redacted:TOKEN]"));

    let show = t.command(&["show", &run.id]);
    show.code(0);
    let show_json = t.command(&["show", &run.id, "--format", "json"]);
    show_json.code(0);
    let show_step = t.command(&["show", &run.id, "leak"]);
    for (what, text) in [
        ("run stderr", &run_output.stderr),
        ("run stdout", &run_output.stdout),
        ("show", &show.stdout),
        ("show --format json", &show_json.stdout),
        ("show leak", &show_step.stdout),
        ("show stderr", &show.stderr),
    ] {
        assert!(
            !text.contains(SECRET_VALUE),
            "{what} shows the secret:\n{text}"
        );
    }
    let files = t.record_files();
    assert!(files.len() > 10);
    for (path, bytes) in files {
        assert!(
            !bytes
                .windows(SECRET_VALUE.len())
                .any(|w| w == SECRET_VALUE.as_bytes()),
            "{} holds the secret",
            path.display()
        );
    }
}

/// A value with a space, `/` and `+`, long enough for every base64 alignment.
const ENCODED_SECRET: &str = "tok-3f9a very/secret+x";

#[test]
fn encoded_secrets_are_redacted_from_every_record() {
    let t = Test::new();
    let script = t.path().join("leak.sh");
    let t = t
        .env("TOKEN", ENCODED_SECRET)
        .write(
            "leak.sh",
            r#"v=$(printf %s "$TOKEN")
printf 'b64=%s\n' "$(printf %s "$v" | base64)"
printf 'b64-misaligned=%s\n' "$(printf 'ab%s\n' "$v" | base64 | tr '+/' '-_' | tr -d '=')"
printf 'hex=%s\n' "$(printf %s "$v" | od -An -tx1 | tr -d ' \n')"
printf 'HEX=%s\n' "$(printf %s "$v" | od -An -tx1 | tr -d ' \n' | tr a-f A-F)"
printf 'url=%s\n' "$(printf %s "$v" | sed -e 's|+|%2B|g' -e 's| |+|g' -e 's|/|%2F|g')"
printf 'pct=%s\n' "$(printf %s "$v" | od -An -tx1 | tr -d '\n' | tr ' ' '%')"
printf 'ansi=\033[1m%s\033[31m%s\033[0m\n' "$(printf %s "$v" | cut -c1-5)" "$(printf %s "$v" | cut -c6-)"
printf 'wrapped=%s\n' "$(printf %s "$v" | fold -w 7)"
printf 'json={"token":"%s"}\n' "$(printf %s "$v" | sed 's|/|\\/|g')" >&2
"#,
        )
        .runbook(&format!(
            r#"
runbook encodings {{
  secret TOKEN
  agent user uses shell {{ env [TOKEN] }}
  phase one {{ step leak by user {{ sh "sh {}" }} }}
}}
"#,
            script.display()
        ));
    t.run().code(0);
    let run = t.only_run();
    let stdout = run.attempt_file("leak", 1, "stdout.log");
    for label in ["b64", "hex", "HEX", "url", "pct", "wrapped"] {
        assert!(
            stdout.contains(&format!("{label}=[redacted:TOKEN]")),
            "{label} in:\n{stdout}"
        );
    }
    // Colour codes around the value stay; the ones inside go with it.
    assert!(
        stdout.contains("ansi=\x1b[1m[redacted:TOKEN]\x1b[0m\n"),
        "{stdout}"
    );
    // Of base64 that mixes the value with other bytes, only the characters that
    // mix in the neighbours' bits stay.
    assert!(
        stdout.contains("b64-misaligned=YWJ[redacted:TOKEN]Cg\n"),
        "{stdout}"
    );
    assert!(run
        .attempt_file("leak", 1, "stderr.log")
        .contains("json={\"token\":\"[redacted:TOKEN]\"}"));

    let value = ENCODED_SECRET.as_bytes();
    let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
    let ansi_split = format!("{}\x1b[31m{}", &ENCODED_SECRET[..5], &ENCODED_SECRET[5..]);
    let forbidden = [
        ENCODED_SECRET.to_owned(),
        hex.clone(),
        hex.to_uppercase(),
        "tok-3f9a+very%2Fsecret%2Bx".to_owned(),
        "%74%6f%6b".to_owned(),
        // base64 of the value, and the stable middle of `ab` + value (URL-safe).
        "dG9rLTNmOWEgdmVyeS9zZWNyZXQreA".to_owned(),
        "0b2stM2Y5YSB2ZXJ5L3NlY3JldCt4".to_owned(),
        ansi_split,
        ENCODED_SECRET[..7].to_owned() + "\n" + &ENCODED_SECRET[7..14],
        "very\\/secret".to_owned(),
    ];
    let files = t.record_files();
    assert!(!files.is_empty());
    for (path, bytes) in files {
        for leak in &forbidden {
            assert!(
                !bytes.windows(leak.len()).any(|w| w == leak.as_bytes()),
                "{} holds {leak:?}:\n{}",
                path.display(),
                String::from_utf8_lossy(&bytes)
            );
        }
    }
}

#[test]
fn a_secret_shorter_than_4_characters_is_refused() {
    let t = Test::new().env("TOKEN", "abc").runbook(
        r#"
runbook secretive {
  secret TOKEN
  agent user uses shell { env [TOKEN] }
  phase one { step a by user { sh "true" } }
}
"#,
    );
    t.run()
        .code(2)
        .stderr_has("TOKEN")
        .stderr_has("shorter than 4 characters");
    assert!(!t.path().join(".runbook").exists());
}

#[test]
fn a_missing_secret_is_a_usage_error() {
    let t = Test::new().runbook(
        r#"
runbook secretive {
  secret TOKEN
  agent user uses shell { env [TOKEN] }
  phase one { step a by user { sh "true" } }
}
"#,
    );
    t.run().code(2).stderr_has("TOKEN");
    assert!(!t.path().join(".runbook").exists());
}

// ── runs and show ───────────────────────────────────────────────────────────────────

#[test]
fn runs_lists_runs_with_their_status_and_show_prints_the_trail() {
    let t = Test::new().runbook(
        r#"
runbook listed {
  phase one {
    step first { sh "echo one" }
    step second after first { sh "echo two" }
  }
}
"#,
    );
    t.run().code(0);
    let id = t.only_run().id;
    let runs = t.command(&["runs"]);
    runs.code(0);
    let line = runs
        .stdout
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("{id} not listed:\n{}", runs.stdout));
    assert!(
        line.contains("listed") && line.contains("succeeded"),
        "{line}"
    );

    let show = t.command(&["show", &id]);
    show.code(0)
        .stdout_has(&id)
        .stdout_has("first")
        .stdout_has("second");

    let step = t.command(&["show", &id, "second"]);
    step.code(0).stdout_has("second");
    assert!(!step.stdout.contains("▶ first"), "{}", step.stdout);

    let json = t.command(&["show", &id, "--format", "json"]);
    json.code(0);
    let doc: Value = serde_json::from_str(&json.stdout).expect("show --format json is JSON");
    assert_eq!(doc["run_id"], id.as_str());
    assert_eq!(doc["status"], "succeeded");
    let events = doc["events"].as_array().unwrap();
    assert_eq!(events.len(), t.only_run().events().len());
    assert_eq!(events[0]["event"], "run_started");
    assert_eq!(doc["results"].as_array().unwrap().len(), 2);

    let json = t.command(&["show", &id, "first", "--format", "json"]);
    let doc: Value = serde_json::from_str(&json.stdout).unwrap();
    assert!(doc["events"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["step"] == "first"));

    t.command(&["show", "NOSUCHRUN"]).code(2);
}

#[test]
fn runs_shows_suspended_and_failed_runs() {
    let t = Test::new().runbook(CHECKPOINT);
    let id = suspended(&t);
    let runs = t.command(&["runs"]);
    let line = runs.stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(line.contains("suspended"), "{line}");
    t.command(&["approve", &id, "cp", "--reject"]).code(0);
    t.command(&["resume", &id]).code(1);
    let runs = t.command(&["runs"]);
    let line = runs.stdout.lines().find(|l| l.starts_with(&id)).unwrap();
    assert!(line.contains("rejected"), "{line}");
}

#[test]
fn runs_tells_a_live_run_from_a_crashed_one() {
    let t = Test::new().runbook(
        r#"
runbook slow {
  phase one {
    step wait { sh "echo started > started; sleep 3" }
  }
}
"#,
    );
    let mut running = t.spawn("live", &["run", RUNBOOK]);
    t.wait_for_file("started");
    let id = t.only_run().id;
    let line = |t: &Test| {
        let runs = t.command(&["runs"]);
        runs.stdout
            .lines()
            .find(|l| l.starts_with(&id))
            .unwrap()
            .to_string()
    };
    assert!(line(&t).contains("running"), "{}", line(&t));
    // Killed like a power cut: the journal says running, nobody drives it.
    running.signal(libc::SIGKILL);
    running.wait();
    let crashed = line(&t);
    assert!(crashed.contains("crashed"), "{crashed}");
    t.command(&["show", &id])
        .code(0)
        .stdout_has("status crashed");
}

// ── the run lock ────────────────────────────────────────────────────────────────────

fn lock_is_free(path: &std::path::Path) -> bool {
    use std::os::unix::io::AsRawFd;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    // SAFETY: flock only reads the descriptor, which `file` keeps open.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    rc == 0
}

#[test]
fn a_suspended_run_holds_no_lock() {
    let (t, _id) = suspended_at_checkpoint();
    assert!(lock_is_free(&t.only_run().path.join("lock")));
}

const SLEEPER: &str = r#"
runbook sleeper {
  phase one {
    step quick { sh "echo quick >> marks" }
    step slow after quick {
      sh "echo slow >> marks; if [ -f slept ]; then exit 0; fi; touch slept; echo $$ > slow.pid; sleep 300"
    }
    step last after slow { sh "echo last >> marks" }
  }
}
"#;

#[test]
fn a_running_run_cannot_be_resumed_concurrently() {
    let t = Test::new().runbook(SLEEPER);
    let mut child = t.spawn("first", &["run", RUNBOOK]);
    t.wait_for_file("slow.pid");
    let id = t.only_run().id;
    assert!(!lock_is_free(&t.only_run().path.join("lock")));
    t.command(&["resume", &id])
        .code(2)
        .stderr_has(&format!("pid {}", child.id()));
    t.command(&["approve", &id, "slow"]).code(2);
    child.signal(libc::SIGINT);
    let status = child.wait();
    assert_eq!(status.code(), Some(130));
}

#[test]
fn ctrl_c_interrupts_kills_the_step_and_resume_finishes() {
    let t = Test::new().runbook(SLEEPER);
    let mut child = t.spawn("first", &["run", RUNBOOK]);
    let step_pid: i32 = t.wait_for_file("slow.pid").trim().parse().unwrap();
    child.signal(libc::SIGINT);
    let status = child.wait();
    assert_eq!(status.code(), Some(130), "{}", t.read("first.stderr"));
    assert_eq!(group_members(step_pid), Vec::<i32>::new());
    assert!(!in_process_table(step_pid));

    let run = t.only_run();
    assert_eq!(run.kinds().last().unwrap(), "run_interrupted");
    assert!(lock_is_free(&run.path.join("lock")));
    t.command(&["resume", &run.id]).code(0);
    // Only the interrupted step ran again.
    assert_eq!(t.read("marks"), "quick\nslow\nslow\nlast\n");
    assert_eq!(run.attempts("quick"), [1]);
    assert_eq!(run.attempts("slow"), [1, 2]);
    let events = run.events();
    let resumed = events
        .iter()
        .position(|e| e["event"] == "run_resumed")
        .expect("a run_resumed event");
    assert!(events[resumed..]
        .iter()
        .all(|e| e["event"] != "step_started" || e["step"] != "quick"));
    assert_eq!(
        events[last_position(&events, "step_finished", "slow")]["ok"],
        true
    );
    assert_eq!(run.events_named("run_finished")[0]["status"], "succeeded");
}

#[test]
fn sigterm_interrupts_like_ctrl_c() {
    let t = Test::new().runbook(SLEEPER);
    let mut child = t.spawn("first", &["run", RUNBOOK]);
    let step_pid: i32 = t.wait_for_file("slow.pid").trim().parse().unwrap();
    child.signal(libc::SIGTERM);
    let status = child.wait();
    assert_eq!(status.code(), Some(130), "{}", t.read("first.stderr"));
    assert_eq!(group_members(step_pid), Vec::<i32>::new());
    let run = t.only_run();
    assert_eq!(run.kinds().last().unwrap(), "run_interrupted");
    t.command(&["resume", &run.id]).code(0);
    assert_eq!(t.read("marks"), "quick\nslow\nslow\nlast\n");
}

/// Starts SLEEPER and kills its interpreter with SIGKILL while `slow` runs; returns the
/// pid of the step process left running.
fn kill_driver_mid_step(t: &Test) -> i32 {
    let mut child = t.spawn("first", &["run", RUNBOOK]);
    let step_pid: i32 = t.wait_for_file("slow.pid").trim().parse().unwrap();
    child.signal(libc::SIGKILL);
    child.wait();
    // Nothing ended the step: its group runs on without its interpreter.
    assert!(!group_members(step_pid).is_empty());
    step_pid
}

#[test]
fn resume_after_sigkill_ends_the_step_the_dead_driver_left_running() {
    let t = Test::new().runbook(SLEEPER);
    let step_pid = kill_driver_mid_step(&t);
    let run = t.only_run();
    t.command(&["resume", &run.id])
        .code(0)
        .stderr_has("left running");
    assert!(group_members(step_pid)
        .iter()
        .all(|&pid| proc_state(pid) == Some('Z')));
    assert_eq!(t.read("marks"), "quick\nslow\nslow\nlast\n");
    assert_eq!(run.attempts("slow"), [1, 2]);
}

#[test]
fn rollback_after_sigkill_ends_the_step_the_dead_driver_left_running() {
    let t = Test::new().runbook(SLEEPER);
    let step_pid = kill_driver_mid_step(&t);
    let run = t.only_run();
    t.command(&["rollback", &run.id])
        .code(0)
        .stderr_has("left running");
    assert!(group_members(step_pid)
        .iter()
        .all(|&pid| proc_state(pid) == Some('Z')));
}

/// A process's state letter from /proc, or None once it is gone.
fn proc_state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

// ── dry run ─────────────────────────────────────────────────────────────────────────

#[test]
fn dry_run_prints_the_plan_with_rendered_prompts_and_records_nothing() {
    let t = Test::new()
        .runbook(
            r#"
runbook planned {
  param who: string = "world"
  agent writer { run "cat" }
  phase one {
    step alpha { sh "echo hello {{ params.who }}" }
    step beta { sh "echo beta" }
    step gamma by writer after alpha { prompt "Greet {{ params.who }} after {{ steps.alpha.output }}" }
  }
  phase two {
    checkpoint look { ask "ok?" }
    step delta { sh "echo delta" }
  }
}
"#,
        )
        .args(["run", RUNBOOK, "--dry-run", "--param", "who=moon"]);
    let out = t.run();
    out.code(0)
        .stdout_has("echo hello moon")
        .stdout_has("Greet moon after");
    // File order, as far as the DAG allows.
    let positions: Vec<usize> = ["alpha", "beta", "gamma", "look", "delta"]
        .iter()
        .map(|name| {
            out.stdout
                .find(&format!(" {name} "))
                .unwrap_or_else(|| panic!("{name} missing:\n{}", out.stdout))
        })
        .collect();
    assert!(
        positions.windows(2).all(|w| w[0] < w[1]),
        "not in order:\n{}",
        out.stdout
    );
    assert!(!t.path().join(".runbook").exists());
}

#[test]
fn dry_run_needs_no_secrets() {
    let t = Test::new()
        .runbook(
            r#"
runbook secretive {
  secret TOKEN
  agent user uses shell { env [TOKEN] }
  phase one { step a by user { sh "echo hi" } }
}
"#,
        )
        .args(["run", RUNBOOK, "--dry-run"]);
    t.run().code(0).stdout_has("echo hi").stderr_has("TOKEN");
    assert!(!t.path().join(".runbook").exists());
}

const TIMED_CHECKPOINT: &str = r#"
runbook timed {
  phase p {
    step a {
      sh "echo a"
      rollback { sh "echo undone > undone" }
    }
    checkpoint gate { timeout 1s }
    step b { sh "echo b > b" }
  }
}
"#;

#[test]
fn a_checkpoint_timeout_without_a_decision_rejects_and_rolls_back() {
    let t = Test::new().runbook(TIMED_CHECKPOINT);
    let id = suspended(&t);
    std::thread::sleep(std::time::Duration::from_millis(1500));
    // Too late to approve: fail closed.
    t.command(&["approve", &id, "gate"])
        .code(2)
        .stderr_has("timed out");
    t.command(&["resume", &id]).code(1);
    assert_eq!(t.read("undone"), "undone\n");
    assert!(!t.path().join("b").exists());
    let run = t.only_run();
    let decided = run.events_named("checkpoint_decided");
    assert_eq!(decided[0]["decision"], "reject");
    assert_eq!(decided[0]["by"], "timeout");
    assert_eq!(run.events_named("run_finished")[0]["status"], "rejected");
}

#[test]
fn a_decision_within_the_checkpoint_timeout_stands() {
    let t = Test::new().runbook(
        TIMED_CHECKPOINT
            .replace("timeout 1s", "timeout 1h")
            .as_str(),
    );
    let id = suspended(&t);
    t.command(&["approve", &id, "gate"]).code(0);
    t.command(&["resume", &id]).code(0);
    assert_eq!(t.read("b"), "b\n");
}

#[test]
fn a_cli_agent_that_prints_no_result_fails_with_the_end_of_its_stderr() {
    // A stand-in for `claude` that exits 0 without its JSON result, as a logged-out
    // or misconfigured tool does.
    let t = Test::new()
        .runbook(
            r#"runbook t {
  agent fake {
    kind claude
    run  "./fake-claude"
  }
  phase p {
    step ask by fake { prompt "hello" }
  }
}
"#,
        )
        .write(
            "fake-claude",
            "#!/bin/sh\necho 'starting up' >&2\necho 'Invalid API key: please run /login' >&2\n",
        )
        .args(["run", RUNBOOK, "--sandbox", "off"]);
    let script = t.path().join("fake-claude");
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    t.run()
        .code(1)
        .stderr_has("claude printed no result")
        .stderr_has("Invalid API key: please run /login");
    let run = t.only_run();
    let result: Value = serde_json::from_str(&run.attempt_file("ask", 1, "result.json")).unwrap();
    let reason = result["reason"].as_str().unwrap();
    assert!(
        reason.ends_with("its stderr ends with:\nstarting up\nInvalid API key: please run /login"),
        "{reason}"
    );
}

#[test]
fn a_run_killed_before_its_start_was_recorded_says_it_never_started() {
    // The crash hook kills the interpreter once the spec copy is written, before the
    // journal exists.
    let t = Test::new()
        .runbook("runbook t {\n  phase p {\n    step a { sh \"echo ran > ran\" }\n  }\n}\n")
        .env("RUNBOOK_CRASH_AT", "file:spec:1");
    let crashed = t.run();
    assert_eq!(crashed.code, None, "killed by the hook: {}", crashed.stderr);
    let t = t.without_env("RUNBOOK_CRASH_AT");
    let id = t.only_run().id;
    t.command(&["runs"]).code(0).stdout_has("never started");
    for command in ["resume", "show", "rollback"] {
        t.command(&[command, id.as_str()])
            .code(2)
            .stderr_has(&format!("run {id} never started"))
            .stderr_has("no step ran");
    }
    assert!(!t.path().join("ran").exists());
}
