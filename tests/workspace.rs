//! Git workspaces, driven through the real binary on real repositories: the run branch,
//! per-step commits with trailers, write permissions enforced before a commit, merge
//! conflicts, rollback of the branch, `--merge`, `gc`, and the user's working tree and
//! HEAD left byte-for-byte alone.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use support::{git, init_repo, Test, RUNBOOK};

/// Makes the test directory a repository with one commit of everything in it.
fn repo(t: Test) -> Test {
    init_repo(t)
}

/// Everything a run must not change: HEAD, the index, the refs the user has, the
/// hooks, and every file of the working tree (outside `.git` and `.runbook`).
fn snapshot(t: &Test) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if rel == ".git" || rel == ".runbook" {
                continue;
            }
            let meta = std::fs::symlink_metadata(&path).unwrap();
            if meta.is_dir() {
                walk(root, &path, out);
            } else {
                use std::os::unix::fs::PermissionsExt;
                let mut bytes = std::fs::read(&path).unwrap_or_default();
                bytes.extend(format!("\nmode {:o}", meta.permissions().mode()).bytes());
                out.insert(rel, bytes);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(t.path(), t.path(), &mut out);
    for f in [".git/HEAD", ".git/index", ".git/config"] {
        out.insert(
            f.into(),
            std::fs::read(t.path().join(f)).unwrap_or_default(),
        );
    }
    out.insert(
        "refs/heads".into(),
        git(t, &["for-each-ref", "refs/heads/main"]).into_bytes(),
    );
    let hooks = std::fs::read_dir(t.path().join(".git/hooks"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    out.insert("hooks".into(), format!("{hooks:?}").into_bytes());
    out
}

/// The run branch of the test's only run.
fn run_branch(t: &Test) -> String {
    let run = t.only_run();
    let started = &run.events_named("run_started")[0];
    started["branch"]
        .as_str()
        .expect("the run has a branch")
        .to_string()
}

const PARALLEL: &str = r#"
runbook parallel {
  agent left uses shell { write ["left/**"] }
  agent right uses shell { write ["right/**"] }
  phase build {
    step l "Write the left half" by left { sh "mkdir -p left && echo L > left/x.txt" }
    step r "Write the right half" by right { sh "mkdir -p right && echo R > right/x.txt" }
    step both after l, r { sh "cat left/x.txt right/x.txt > both.txt" }
  }
}
"#;

#[test]
fn parallel_steps_are_committed_attributed_and_merged_without_touching_the_user_tree() {
    let t = repo(Test::new().runbook(PARALLEL).write("README.md", "hello\n"));
    let before = snapshot(&t);
    let out = t.command(&["run", RUNBOOK, "--jobs", "2"]);
    out.code(0).stderr_has("git merge runbook/parallel/");
    assert_eq!(
        snapshot(&t),
        before,
        "the user's tree, HEAD, index or hooks changed"
    );
    assert_eq!(
        git(&t, &["status", "--porcelain"]),
        "",
        "git status of the user's tree"
    );

    let branch = run_branch(&t);
    let run = t.only_run();
    assert_eq!(branch, format!("runbook/parallel/{}", run.id));
    // The dependent step started from both parents' work.
    assert_eq!(git(&t, &["show", &format!("{branch}:both.txt")]), "L\nR\n");
    // Each step commit carries the trailers.
    let log = git(&t, &["log", "--format=%s%n%(trailers)", &branch]);
    for (step, agent) in [("l", "left"), ("r", "right"), ("both", "shell")] {
        assert!(log.contains(&format!("Runbook-Step: {step}\n")), "{log}");
        assert!(log.contains(&format!("Runbook-Agent: {agent}\n")), "{log}");
    }
    assert!(log.contains(&format!("Runbook-Run: {}\n", run.id)), "{log}");
    assert!(log.contains("Runbook-Attempt: 1\n"), "{log}");
    assert!(log.contains("Runbook-Spec-Sha256: "), "{log}");
    assert!(log.contains("Runbook-Prompt-Sha256: "), "{log}");
    assert!(log.contains("l: Write the left half"), "{log}");
    // The journal and the records carry the commit and its files.
    let finished = run.events_named("step_finished");
    let l = finished.iter().find(|e| e["step"] == "l").unwrap();
    assert_eq!(l["changes"][0]["path"], "left/x.txt");
    let commit = l["commit"].as_str().unwrap();
    assert_eq!(
        git(&t, &["show", "-s", "--format=%P", commit]).trim(),
        git(&t, &["rev-parse", "main"]).trim()
    );
    let result: serde_json::Value =
        serde_json::from_str(&run.attempt_file("l", 1, "result.json")).unwrap();
    assert_eq!(result["commit"], commit);
    assert_eq!(result["files"][0]["path"], "left/x.txt");

    let changes = t.command(&["show", &run.id, "--changes"]);
    changes
        .code(0)
        .stdout_has("l (attempt 1) by left")
        .stdout_has("added     left/x.txt")
        .stdout_has("r (attempt 1) by right")
        .stdout_has("both (attempt 1) by shell")
        .stdout_has("why: cat left/x.txt right/x.txt > both.txt");
}

/// Runs `sh` as a step of an agent that may write only `allowed/**`; the step must fail,
/// its work must not reach the run branch, and the user's tree must be untouched.
fn assert_violation(attack: &str, expected_path: &str) {
    let text = format!(
        r#"
runbook escape {{
  agent narrow uses shell {{ write ["allowed/**"] }}
  phase one {{
    step attack by narrow {{ sh "{attack}" }}
  }}
}}
"#
    );
    let project = || {
        repo(
            Test::new()
                .runbook(&text)
                .write("README.md", "hello\n")
                .write("allowed/keep.txt", "keep\n")
                .write("other/tool.sh", "echo tool\n"),
        )
    };
    let t = project();
    let before = snapshot(&t);
    let base = git(&t, &["rev-parse", "HEAD"]);
    // The check before commit, on its own: the OS sandbox would stop most attacks first.
    let out = t.command(&["run", RUNBOOK, "--no-input", "--sandbox", "off"]);
    out.code(1);
    assert_eq!(snapshot(&t), before, "{attack}: the user's tree changed");
    let run = t.only_run();
    let violations = run.events_named("violation");
    assert_eq!(violations.len(), 1, "{attack}: {:?}", run.kinds());
    let paths: Vec<&str> = violations[0]["paths"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["path"].as_str().unwrap())
        .collect();
    assert!(
        paths.iter().any(|p| p.contains(expected_path)),
        "{attack}: violation paths {paths:?} lack {expected_path}"
    );
    let branch = run_branch(&t);
    assert_eq!(
        git(&t, &["rev-parse", &branch]),
        base,
        "{attack}: something landed on the run branch"
    );
    t.command(&["show", &run.id])
        .code(0)
        .stdout_has("VIOLATION");

    // With the sandbox on, the same attack fails in the process itself or is caught
    // before commit; either way nothing lands and the user's tree is unchanged.
    let t = project();
    let before = snapshot(&t);
    let base = git(&t, &["rev-parse", "HEAD"]);
    t.command(&["run", RUNBOOK, "--no-input"]).code(1);
    assert_eq!(
        snapshot(&t),
        before,
        "{attack} (sandboxed): the user's tree changed"
    );
    assert_eq!(
        git(&t, &["rev-parse", &run_branch(&t)]),
        base,
        "{attack} (sandboxed): something landed on the run branch"
    );
}

#[test]
fn a_plain_write_outside_the_globs_fails_and_nothing_lands() {
    assert_violation(
        "echo x > outside.txt && echo y > allowed/fine.txt",
        "outside.txt",
    );
}

#[test]
fn a_symlink_out_of_the_worktree_fails() {
    assert_violation("ln -s ../../../../.. allowed/escape", "allowed/escape");
}

#[test]
fn a_rename_out_of_the_globs_fails() {
    assert_violation(
        "mkdir -p elsewhere && git mv allowed/keep.txt elsewhere/keep.txt",
        "elsewhere/keep.txt",
    );
}

#[test]
fn a_deletion_outside_the_globs_fails() {
    assert_violation("rm README.md", "README.md");
}

#[test]
fn a_mode_change_outside_the_globs_fails() {
    assert_violation("chmod +x other/tool.sh", "other/tool.sh");
}

#[test]
fn a_git_hook_written_through_the_common_dir_fails_and_is_removed() {
    assert_violation(
        "printf '#!/bin/sh\\\\necho pwned\\\\n' > \\\"$(git rev-parse --git-common-dir)/hooks/pre-commit\\\"",
        "hooks/pre-commit",
    );
}

#[test]
fn an_agent_without_write_may_change_nothing() {
    let t = repo(
        Test::new()
            .runbook(
                r#"
runbook readonly {
  agent reader uses shell { write [] }
  phase one {
    step look by reader { sh "echo note > notes.txt" }
  }
}
"#,
            )
            .write("README.md", "hello\n"),
    );
    t.command(&["run", RUNBOOK, "--no-input", "--sandbox", "off"])
        .code(1);
    let run = t.only_run();
    assert_eq!(run.events_named("violation").len(), 1);
    assert_eq!(
        run.events_named("violation")[0]["paths"][0]["path"],
        "notes.txt"
    );
}

#[test]
fn a_violation_is_feedback_for_the_next_attempt_which_starts_clean() {
    let t = repo(
        Test::new()
            .runbook(
                r#"
runbook learn {
  agent narrow uses shell { write ["allowed/**"] }
  phase one {
    step fix by narrow {
      sh "if [ {{ attempt }} = 1 ]; then echo bad > outside.txt; fi; mkdir -p allowed && echo ok > allowed/out.txt"
      until "test -f allowed/out.txt" attempts 2
    }
  }
}
"#,
            )
            .write("README.md", "hello\n"),
    );
    t.command(&["run", RUNBOOK, "--no-input", "--sandbox", "off"])
        .code(0);
    let branch = run_branch(&t);
    let files = git(&t, &["ls-tree", "-r", "--name-only", &branch]);
    assert!(files.contains("allowed/out.txt"), "{files}");
    assert!(!files.contains("outside.txt"), "{files}");
    let run = t.only_run();
    let finished = run.events_named("step_finished");
    assert_eq!(finished[0]["ok"], false);
    assert!(finished[0]["reason"]
        .as_str()
        .unwrap()
        .contains("outside.txt"));
}

const CONFLICT: &str = r#"
runbook clash {
  agent a uses shell { write ["shared.txt"] }
  agent b uses shell { write ["shared.txt"] }
  phase edit {
    step first by a { sh "echo from-a > shared.txt" }
    step second by b { sh "sleep 0.3; echo from-b > shared.txt" }
  }
}
"#;

fn conflicted() -> (Test, String) {
    let t = repo(
        Test::new()
            .runbook(CONFLICT)
            .write("shared.txt", "original\n"),
    );
    let out = t.command(&["run", RUNBOOK, "--no-input", "--jobs", "2"]);
    out.code(3).stderr_has("second");
    let run = t.only_run();
    let conflicts = run.events_named("merge_conflict");
    assert_eq!(conflicts.len(), 1, "{:?}", run.kinds());
    assert_eq!(conflicts[0]["step"], "second");
    assert_eq!(conflicts[0]["paths"][0], "shared.txt");
    let id = run.id.clone();
    (t, id)
}

#[test]
fn a_conflict_suspends_and_taking_the_steps_side_lands_it() {
    let (t, id) = conflicted();
    t.command(&["approve", &id, "second", "--take", "theirs"])
        .code(0);
    t.command(&["resume", &id, "--no-input"]).code(0);
    let branch = run_branch(&t);
    assert_eq!(
        git(&t, &["show", &format!("{branch}:shared.txt")]),
        "from-b\n"
    );
    let resolved = t.only_run().events_named("conflict_resolved");
    assert_eq!(resolved[0]["side"], "theirs");
    assert_eq!(resolved[0]["by"], "tester");
}

#[test]
fn a_conflict_keeping_the_run_branch_side_drops_the_steps_lines() {
    let (t, id) = conflicted();
    t.command(&["approve", &id, "second", "--take", "ours"])
        .code(0);
    t.command(&["resume", &id, "--no-input"]).code(0);
    let branch = run_branch(&t);
    assert_eq!(
        git(&t, &["show", &format!("{branch}:shared.txt")]),
        "from-a\n"
    );
}

#[test]
fn a_conflict_re_run_starts_from_the_run_branch_with_the_conflict_as_feedback() {
    let (t, id) = conflicted();
    t.command(&["approve", &id, "second"]).code(0);
    t.command(&["resume", &id, "--no-input"]).code(0);
    let run = t.only_run();
    let reset = run.events_named("nodes_reset");
    let feedback = reset[0]["feedback"][1].as_str().unwrap();
    assert!(feedback.contains("shared.txt"), "{feedback}");
    // It ran again on top of `first`'s work, so its change now merges cleanly.
    let branch = run_branch(&t);
    assert_eq!(
        git(&t, &["show", &format!("{branch}:shared.txt")]),
        "from-b\n"
    );
    let started = run.events_named("step_started");
    let rerun = started.iter().rfind(|e| e["step"] == "second").unwrap();
    let first = run
        .events_named("step_finished")
        .into_iter()
        .find(|e| e["step"] == "first")
        .unwrap();
    assert_eq!(rerun["base"], first["tip"]);
}

#[test]
fn rejecting_a_conflict_rolls_back_and_resets_the_branch() {
    let (t, id) = conflicted();
    let base = git(&t, &["rev-parse", "main"]);
    t.command(&["approve", &id, "second", "--reject"]).code(0);
    t.command(&["resume", &id, "--no-input"]).code(1);
    let branch = run_branch(&t);
    assert_eq!(git(&t, &["rev-parse", &branch]), base);
    assert_eq!(t.only_run().events_named("branch_reset").len(), 1);
}

#[test]
fn a_failed_run_resets_the_branch_to_the_last_approved_checkpoint() {
    let t = repo(
        Test::new()
            .runbook(
                r#"
runbook staged {
  phase one {
    step a { sh "echo a > a.txt" }
    checkpoint ok { show [diff] ask "Keep a?" }
    step b { sh "echo b > b.txt" }
    step c after b { sh "false" }
  }
}
"#,
            )
            .write("README.md", "hello\n"),
    );
    t.command(&["run", RUNBOOK, "--no-input", "--approve", "ok"])
        .code(1);
    let run = t.only_run();
    let asked = &run.events_named("checkpoint_asked")[0];
    let approved = asked["tip"].as_str().unwrap().to_string();
    let branch = run_branch(&t);
    assert_eq!(git(&t, &["rev-parse", &branch]).trim(), approved);
    assert_eq!(git(&t, &["show", &format!("{branch}:a.txt")]), "a\n");
    // b's commit landed, then the failure of c took the branch back past it.
    let b = run
        .events_named("step_finished")
        .into_iter()
        .find(|e| e["step"] == "b")
        .unwrap();
    assert_ne!(b["tip"], approved.as_str());
    let reset = run.events_named("branch_reset");
    assert_eq!(reset[0]["to"], approved.as_str());
}

#[test]
fn merge_fast_forwards_the_users_branch_when_it_is_safe() {
    let t = repo(
        Test::new()
            .runbook("runbook ff {\n  phase one {\n    step a { sh \"echo a > a.txt\" }\n  }\n}\n")
            .write("README.md", "hello\n"),
    );
    t.command(&["run", RUNBOOK, "--merge"])
        .code(0)
        .stderr_has("fast-forwarded main");
    assert_eq!(t.read("a.txt"), "a\n");
    assert_eq!(
        git(&t, &["rev-parse", "main"]),
        git(&t, &["rev-parse", &run_branch(&t)])
    );
    assert_eq!(git(&t, &["status", "--porcelain"]), "");
}

#[test]
fn merge_refuses_when_the_user_has_local_changes() {
    let t = repo(
        Test::new()
            .runbook("runbook ff {\n  phase one {\n    step a { sh \"echo a > a.txt\" }\n  }\n}\n")
            .write("README.md", "hello\n"),
    );
    std::fs::write(t.path().join("README.md"), "edited\n").unwrap();
    let before = snapshot(&t);
    t.command(&["run", RUNBOOK, "--merge"])
        .code(1)
        .stderr_has("not fast-forwarding");
    assert_eq!(snapshot(&t), before);
}

#[test]
fn checkpoint_diff_attributes_each_file_to_its_step_and_agent() {
    let t = repo(
        Test::new()
            .runbook(
                r#"
runbook review {
  agent docs uses shell { write ["docs/**"] }
  phase one {
    step write_docs by docs { sh "mkdir -p docs && echo guide > docs/guide.md" }
    checkpoint look { show [diff] ask "Ship it?" }
  }
}
"#,
            )
            .write("README.md", "hello\n"),
    );
    let out = t.command(&["run", RUNBOOK, "--no-input"]);
    out.code(3);
    let run = t.only_run();
    let asked = &run.events_named("checkpoint_asked")[0];
    let sha = asked["content_sha256"].as_str().unwrap();
    let shown = std::fs::read_to_string(run.path.join(format!("checkpoints/look/{sha}.txt")))
        .expect("what the checkpoint showed is recorded under its sha256");
    assert!(
        shown.contains("docs/guide.md  ← write_docs (docs)"),
        "{shown}"
    );
    assert!(shown.contains("+guide"), "{shown}");
}

#[test]
fn gc_removes_the_worktrees_of_finished_runs_and_keeps_the_branch() {
    let t = repo(Test::new().runbook(PARALLEL).write("README.md", "hello\n"));
    t.command(&["run", RUNBOOK]).code(0);
    let branch = run_branch(&t);
    assert!(git(&t, &["worktree", "list"]).contains(".runbook/runs"));
    t.command(&["gc"]).code(0).stdout_has("removed");
    assert!(!git(&t, &["worktree", "list"]).contains(".runbook/runs"));
    git(&t, &["rev-parse", &branch]);
    t.command(&["gc"]).code(0).stdout_has("nothing to remove");
}

#[test]
fn in_place_runs_in_the_working_tree_without_a_branch() {
    let t = repo(
        Test::new()
            .runbook("runbook ip {\n  phase one {\n    step a { sh \"echo a > a.txt\" }\n  }\n}\n")
            .write("README.md", "hello\n"),
    );
    t.command(&["run", RUNBOOK, "--in-place"]).code(0);
    assert_eq!(t.read("a.txt"), "a\n");
    assert!(t.only_run().events_named("run_started")[0]["branch"].is_null());
}

#[test]
fn a_repository_without_commits_is_a_clear_error_that_leaves_no_run() {
    let t = Test::new().runbook("runbook x {\n  phase one {\n    step a { sh \"true\" }\n  }\n}\n");
    git(&t, &["init", "-q", "-b", "main"]);
    t.command(&["run", RUNBOOK])
        .code(2)
        .stderr_has("--in-place");
    assert!(t.runs().is_empty());
}

/// Eight steps in a DAG, each writing its own file; every attempt also leaves a mark
/// outside the repository so re-runs can be counted.
const CRASHY: &str = r#"
runbook crashy {
  phase build {
    step a { sh "echo a >> {{ run.dir }}/marks; echo a > a.txt" }
    step b { sh "echo b >> {{ run.dir }}/marks; echo b > b.txt" }
    step c after a { sh "echo c >> {{ run.dir }}/marks; cat a.txt > c.txt" }
    step d after a, b { sh "echo d >> {{ run.dir }}/marks; cat a.txt b.txt > d.txt" }
  }
  phase finish {
    step e { sh "echo e >> {{ run.dir }}/marks; echo e > e.txt" }
    step f after e { sh "echo f >> {{ run.dir }}/marks; cat c.txt d.txt e.txt > f.txt" }
  }
}
"#;

#[test]
fn a_crash_after_any_journal_line_resumes_to_one_commit_per_step_on_the_branch() {
    let clean = repo(Test::new().runbook(CRASHY).write("README.md", "hello\n"));
    // Steps count their runs in the run directory, which the sandbox keeps read-only.
    clean
        .command(&["run", RUNBOOK, "--jobs", "2", "--sandbox", "off"])
        .code(0);
    let total = clean.only_run().events().len();
    let expected_f = git(&clean, &["show", &format!("{}:f.txt", run_branch(&clean))]);
    assert_eq!(expected_f, "a\na\nb\ne\n");
    for n in 1..=total {
        let context = format!("crash after event {n} of {total}");
        let t = repo(
            Test::new()
                .runbook(CRASHY)
                .write("README.md", "hello\n")
                .env("RUNBOOK_CRASH_AFTER_EVENTS", &n.to_string()),
        );
        let before = snapshot(&t);
        let out = t.command(&["run", RUNBOOK, "--jobs", "2", "--sandbox", "off"]);
        assert_eq!(
            out.code, None,
            "{context}: expected an abort\n{}",
            out.stderr
        );
        let t = t.without_env("RUNBOOK_CRASH_AFTER_EVENTS");
        let id = t.only_run().id;
        let mut done = false;
        for _ in 0..3 {
            let out = t.command(&["resume", &id, "--jobs", "2"]);
            if out.code == Some(0) {
                done = true;
                break;
            }
            assert!(
                matches!(out.code, Some(130) | None),
                "{context}: resume exited {:?}\n{}",
                out.code,
                out.stderr
            );
        }
        assert!(done, "{context}: the run did not finish");
        let branch = run_branch(&t);
        assert_eq!(
            git(&t, &["show", &format!("{branch}:f.txt")]),
            expected_f,
            "{context}"
        );
        // Exactly one commit per step on the branch: a merge the crash kept from being
        // recorded was undone before its step ran again.
        let log = git(
            &t,
            &[
                "log",
                "--format=%(trailers:key=Runbook-Step,valueonly)",
                &branch,
            ],
        );
        let mut steps: Vec<&str> = log.lines().filter(|l| !l.is_empty()).collect();
        steps.sort_unstable();
        assert_eq!(steps, ["a", "b", "c", "d", "e", "f"], "{context}");
        // No finished step ran again; the one in flight at most once more.
        let marks = std::fs::read_to_string(t.only_run().path.join("marks")).unwrap_or_default();
        for step in ["a", "b", "c", "d", "e", "f"] {
            let ran = marks.lines().filter(|l| *l == step).count();
            assert!((1..=2).contains(&ran), "{context}: {step} ran {ran} times");
        }
        assert_eq!(snapshot(&t), before, "{context}: the user's tree changed");
    }
}

#[test]
fn rollback_on_demand_resets_a_suspended_runs_branch() {
    let t = repo(
        Test::new()
            .runbook(
                r#"
runbook later {
  phase one {
    step a { sh "echo a > a.txt" }
    checkpoint wait { ask "Go on?" }
  }
}
"#,
            )
            .write("README.md", "hello\n"),
    );
    t.command(&["run", RUNBOOK, "--no-input"]).code(3);
    let branch = run_branch(&t);
    let base = git(&t, &["rev-parse", "main"]);
    assert_ne!(git(&t, &["rev-parse", &branch]), base, "a's commit landed");
    let id = t.only_run().id;
    t.command(&["rollback", &id]).code(0);
    assert_eq!(git(&t, &["rev-parse", &branch]), base);
    assert_eq!(
        git(&t, &["rev-parse", "main"]),
        base,
        "the user's branch never moves"
    );
}

#[test]
fn show_changes_as_json_lists_each_path_with_its_step_agent_and_commit() {
    let t = repo(Test::new().runbook(PARALLEL).write("README.md", "hello\n"));
    t.command(&["run", RUNBOOK]).code(0);
    let run = t.only_run();
    let out = t.command(&["show", &run.id, "--changes", "--format", "json"]);
    out.code(0);
    let doc: serde_json::Value = serde_json::from_str(&out.stdout).unwrap();
    let rows = doc["changes"].as_array().unwrap();
    let row = rows.iter().find(|r| r["path"] == "right/x.txt").unwrap();
    assert_eq!(row["step"], "r");
    assert_eq!(row["agent"], "right");
    assert_eq!(row["kind"], "added");
    assert_eq!(row["why"], "mkdir -p right && echo R > right/x.txt");
    let commit = row["commit"].as_str().unwrap();
    let trailers = git(
        &t,
        &[
            "show",
            "-s",
            "--format=%(trailers:key=Runbook-Step,valueonly)",
            commit,
        ],
    );
    assert_eq!(trailers.trim(), "r");
    assert_eq!(rows.len(), 3, "{rows:?}");
}

#[test]
fn a_revised_step_builds_on_its_own_commit() {
    let t = repo(
        Test::new()
            .runbook(
                r#"
runbook revised {
  phase one {
    step a { sh "if [ {{ feedback | length }} -gt 0 ]; then echo v2 > a.txt; else echo v1 > a.txt; fi" }
    checkpoint look { show [diff] ask "Good?" revise a }
  }
}
"#,
            )
            .write("README.md", "hello\n"),
    );
    t.command(&["run", RUNBOOK, "--no-input"]).code(3);
    let id = t.only_run().id;
    t.command(&["approve", &id, "look", "--revise", "make it v2"])
        .code(0);
    t.command(&["resume", &id, "--no-input"]).code(3);
    t.command(&["approve", &id, "look"]).code(0);
    t.command(&["resume", &id, "--no-input"]).code(0);
    let branch = run_branch(&t);
    assert_eq!(git(&t, &["show", &format!("{branch}:a.txt")]), "v2\n");
    let commits: Vec<(String, String)> = t
        .only_run()
        .events_named("step_finished")
        .iter()
        .filter(|e| e["step"] == "a" && e["ok"] == true)
        .map(|e| {
            let c = e["commit"].as_str().unwrap().to_string();
            let parent = git(&t, &["show", "-s", "--format=%P", &c])
                .trim()
                .to_string();
            (c, parent)
        })
        .collect();
    assert_eq!(commits.len(), 2);
    assert_eq!(
        commits[1].1, commits[0].0,
        "the revision's parent is the first version"
    );
}

#[test]
fn eol_attributes_do_not_make_untouched_files_look_changed() {
    // With filters, a checkout would turn the stored LF into CRLF, and the step would seem
    // to have rewritten a file it may not write. Worktrees hold files as stored.
    let t = repo(
        Test::new()
            .runbook(
                r#"
runbook eol {
  agent narrow uses shell { write ["b/**"] }
  phase one {
    step add by narrow { sh "mkdir -p b && echo new > b/new.txt" }
  }
}
"#,
            )
            .write(".gitattributes", "*.txt text eol=crlf\n")
            .write("a.txt", "stored with lf\n"),
    );
    t.command(&["run", RUNBOOK, "--no-input"]).code(0);
    let run = t.only_run();
    assert!(run.events_named("violation").is_empty());
    let finished = &run.events_named("step_finished")[0];
    assert_eq!(
        finished["changes"].as_array().unwrap().len(),
        1,
        "{finished}"
    );
}

/// An agent that points `core.hooksPath` at some directory gets the config restored;
/// that directory is neither scanned nor cleaned (restoring it once deleted every file
/// created there during the step), also by a step that started while the poisoned
/// config was in place (which once took it as its starting point and put it back).
#[test]
fn a_hooks_path_pointed_elsewhere_is_undone_without_touching_that_directory() {
    let elsewhere = tempfile::tempdir().unwrap();
    let e = elsewhere.path().display();
    let text = format!(
        r#"
runbook hookpath {{
  agent narrow uses shell {{ write ["allowed/**"] }}
  phase one {{
    step attack by narrow {{ sh "git config core.hooksPath {e} && echo mine > {e}/made-during-the-step && sleep 1" }}
    step bystander by narrow {{ sh "sleep 0.4 && mkdir -p allowed && echo ok > allowed/ok.txt" }}
  }}
}}
"#
    );
    let t = repo(Test::new().runbook(&text).write("README.md", "hello\n"));
    t.command(&[
        "run",
        RUNBOOK,
        "--no-input",
        "--sandbox",
        "off",
        "--jobs",
        "2",
    ])
    .code(1);
    assert!(elsewhere.path().join("made-during-the-step").exists());
    let out = Command::new("git")
        .args(["config", "--get", "core.hooksPath"])
        .current_dir(t.path())
        .output()
        .unwrap();
    assert!(!out.status.success(), "core.hooksPath is still set");
    let run = t.only_run();
    let violations = run.events_named("violation");
    // Which of two parallel steps is blamed depends on which finishes first: the common
    // dir is shared, and only the OS sandbox stops the write itself (docs/security.md).
    assert!(
        violations[0]["paths"][0]["path"]
            .as_str()
            .unwrap()
            .contains(".git/config"),
        "{violations:?}"
    );
}
