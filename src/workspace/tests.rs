//! Tests on real repositories in temporary directories.

use super::*;
use crate::ir::pattern::{Pattern, PatternKind};
use crate::syntax::source::{FileId, Location, Span};
use git2::{IndexAddOption, Repository, Signature};
use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use tempfile::TempDir;

/// A user repository with one commit of `files` (and `target/` ignored).
struct Fixture {
    _dir: TempDir,
    root: PathBuf,
    run_dir: PathBuf,
}

fn fixture(files: &[(&str, &str)]) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    fs::create_dir_all(&root).unwrap();
    let repo = Repository::init(&root).unwrap();
    write(&root, ".gitignore", "target/\n*.log\n.runbook/\n");
    for (path, text) in files {
        write(&root, path, text);
    }
    commit_all(&repo, "initial");
    let run_dir = root.join(".runbook/runs/RUN1");
    Fixture {
        _dir: dir,
        root,
        run_dir,
    }
}

fn write(root: &Path, path: &str, text: &str) {
    let full = root.join(path);
    fs::create_dir_all(full.parent().unwrap()).unwrap();
    fs::write(full, text).unwrap();
}

fn read(root: &Path, path: &str) -> String {
    fs::read_to_string(root.join(path)).unwrap()
}

fn commit_all(repo: &Repository, message: &str) -> Oid {
    let mut index = repo.index().unwrap();
    index
        .add_all(["*"].iter(), IndexAddOption::DEFAULT, None)
        .unwrap();
    index.write().unwrap();
    let tree = repo.find_tree(index.write_tree().unwrap()).unwrap();
    let sig = Signature::now("user", "user@example.com").unwrap();
    let parents: Vec<git2::Commit> = repo
        .head()
        .ok()
        .and_then(|h| h.peel_to_commit().ok())
        .into_iter()
        .collect();
    let parents: Vec<&git2::Commit> = parents.iter().collect();
    repo.commit(Some("HEAD"), &sig, &sig, message, &tree, &parents)
        .unwrap()
}

fn workspace(f: &Fixture) -> Workspace {
    Workspace::create(&f.root, &f.run_dir, "my book", "RUN1").unwrap()
}

fn trailers(step: &str) -> Trailers {
    Trailers {
        run: "RUN1".into(),
        step: step.into(),
        agent: "coder".into(),
        attempt: 1,
        spec_sha256: "a".repeat(64),
        prompt_sha256: "b".repeat(64),
    }
}

fn patterns(texts: &[&str]) -> Vec<Pattern> {
    let location = Location {
        file: FileId(0),
        span: Span::default(),
    };
    texts
        .iter()
        .map(|t| Pattern::new(t, PatternKind::Path, location).unwrap())
        .collect()
}

/// The step's changes committed, panicking when there are none.
fn step_commit(ws: &Workspace, tree: &StepTree) -> Oid {
    ws.commit_step(tree, "change", "", &trailers(&tree.step))
        .unwrap()
        .expect("a change")
        .commit
}

/// Everything a run must leave alone in the user's repository.
#[derive(Debug, PartialEq)]
struct UserState {
    head: String,
    head_target: Option<Oid>,
    index: Vec<u8>,
    files: BTreeMap<String, Vec<u8>>,
    branches: Vec<(String, Oid)>,
}

fn user_state(root: &Path) -> UserState {
    let repo = Repository::open(root).unwrap();
    let head = fs::read_to_string(root.join(".git/HEAD")).unwrap();
    let mut files = BTreeMap::new();
    collect(root, root, &mut files);
    let mut branches: Vec<(String, Oid)> = repo
        .branches(None)
        .unwrap()
        .map(|b| {
            let (b, _) = b.unwrap();
            let name = b.name().unwrap().unwrap().to_string();
            (name, b.get().target().unwrap())
        })
        .filter(|(name, _)| !name.starts_with("runbook/"))
        .collect();
    branches.sort();
    UserState {
        head,
        head_target: repo.head().ok().and_then(|h| h.target()),
        index: fs::read(root.join(".git/index")).unwrap_or_default(),
        files,
        branches,
    }
}

fn collect(root: &Path, dir: &Path, files: &mut BTreeMap<String, Vec<u8>>) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let path = entry.path();
        let name = entry.file_name();
        if name == ".git" || name == ".runbook" {
            continue;
        }
        if path.is_dir() {
            collect(root, &path, files);
        } else {
            let rel = path.strip_prefix(root).unwrap().display().to_string();
            files.insert(rel, fs::read(&path).unwrap());
        }
    }
}

fn kinds(changes: &[Change]) -> Vec<(String, ChangeKind)> {
    let mut out: Vec<_> = changes
        .iter()
        .map(|c| (c.path.clone(), c.kind.clone()))
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn git_cli() -> bool {
    std::process::Command::new("git")
        .arg("--version")
        .output()
        .is_ok()
}

// ---------------------------------------------------------------- create / open

#[test]
fn a_workspace_is_shared_between_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Workspace>();
}

#[test]
fn discover_finds_the_root_and_nothing_outside_git() {
    let f = fixture(&[("src/a.rs", "a\n")]);
    let found = Workspace::discover(&f.root.join("src")).unwrap().unwrap();
    assert_eq!(
        found.canonicalize().unwrap(),
        f.root.canonicalize().unwrap()
    );
    let outside = tempfile::tempdir().unwrap();
    assert_eq!(Workspace::discover(outside.path()).unwrap(), None);
}

#[test]
fn create_branches_from_head_without_touching_the_user() {
    let f = fixture(&[("src/a.rs", "a\n"), ("README", "hi\n")]);
    // Uncommitted work of the user must survive everything a run does.
    write(&f.root, "src/a.rs", "user edit\n");
    write(&f.root, "notes.txt", "untracked\n");
    let before = user_state(&f.root);

    let ws = workspace(&f);
    let repo = Repository::open(&f.root).unwrap();
    let head = repo.head().unwrap().target().unwrap();
    assert_eq!(ws.branch(), "runbook/my-book/RUN1");
    assert_eq!(ws.base(), head);
    assert_eq!(ws.tip().unwrap(), head);
    assert_eq!(read(ws.run_worktree(), "src/a.rs"), "a\n");

    let a = ws.step_tree("a", ws.base()).unwrap();
    write(&a.path, "src/b.rs", "b\n");
    let commit = step_commit(&ws, &a);
    ws.merge(commit, "merge a").unwrap();
    ws.reset_branch(ws.base()).unwrap();
    ws.remove_all().unwrap();

    assert_eq!(user_state(&f.root), before);
    assert_eq!(read(&f.root, "src/a.rs"), "user edit\n");
    // No temporary branch is left behind; the run branch stays.
    let names: Vec<String> = repo
        .branches(None)
        .unwrap()
        .map(|b| b.unwrap().0.name().unwrap().unwrap().to_string())
        .collect();
    assert!(
        names.iter().all(|n| !n.starts_with("runbook-wt")),
        "{names:?}"
    );
    assert!(names.contains(&"runbook/my-book/RUN1".to_string()));
}

#[test]
fn create_refuses_an_unborn_head_and_an_existing_branch() {
    let dir = tempfile::tempdir().unwrap();
    Repository::init(dir.path()).unwrap();
    let err = Workspace::create(dir.path(), &dir.path().join("run"), "b", "R1").unwrap_err();
    assert!(matches!(err, WorkspaceError::UnbornHead { .. }), "{err}");
    assert!(err.to_string().contains("commit something first"));

    let f = fixture(&[("a", "a\n")]);
    let _ws = workspace(&f);
    let err = Workspace::create(&f.root, &f.root.join("other"), "my book", "RUN1").unwrap_err();
    assert!(matches!(err, WorkspaceError::BranchExists { .. }), "{err}");
}

#[test]
fn open_recreates_a_removed_run_worktree_and_needs_the_branch() {
    let f = fixture(&[("a", "a\n")]);
    let ws = workspace(&f);
    let tree = ws.step_tree("s", ws.base()).unwrap();
    write(&tree.path, "a", "changed\n");
    let commit = step_commit(&ws, &tree);
    ws.merge(commit, "m").unwrap();
    let branch = ws.branch().to_string();
    let base = ws.base();
    ws.remove_all().unwrap();
    drop(ws);
    assert!(!f.run_dir.join("worktree").exists());

    let ws = Workspace::open(&f.root, &f.run_dir, &branch, base).unwrap();
    assert_eq!(ws.tip().unwrap(), commit);
    assert_eq!(read(ws.run_worktree(), "a"), "changed\n");

    let err = Workspace::open(&f.root, &f.run_dir, "runbook/x/NOPE", base).unwrap_err();
    assert!(matches!(err, WorkspaceError::BranchMissing { .. }), "{err}");
}

// ---------------------------------------------------------------- step trees

#[test]
fn step_tree_is_a_detached_git_worktree_and_is_reused() {
    let f = fixture(&[("a", "a\n")]);
    let ws = workspace(&f);
    let tree = ws.step_tree("build docs", ws.base()).unwrap();
    let repo = Repository::open(&tree.path).unwrap();
    assert!(repo.is_worktree());
    assert!(repo.head_detached().unwrap());
    assert_eq!(repo.head().unwrap().target(), Some(ws.base()));
    write(&tree.path, "new", "kept\n");
    let again = ws.step_tree("build docs", ws.base()).unwrap();
    assert_eq!(again, tree);
    assert_eq!(read(&tree.path, "new"), "kept\n");

    ws.remove_step_tree("build docs").unwrap();
    assert!(!tree.path.exists());
    let main = Repository::open(&f.root).unwrap();
    let names: Vec<String> = main
        .worktrees()
        .unwrap()
        .iter()
        .flatten()
        .map(str::to_string)
        .collect();
    assert_eq!(names, vec!["runbook-RUN1".to_string()]);
}

#[test]
fn reset_step_tree_drops_everything_an_attempt_did() {
    let f = fixture(&[("a", "a\n"), ("dir/b", "b\n")]);
    let ws = workspace(&f);
    let tree = ws.step_tree("s", ws.base()).unwrap();
    write(&tree.path, "a", "edited\n");
    write(&tree.path, "untracked/deep/x", "x\n");
    fs::remove_file(tree.path.join("dir/b")).unwrap();
    write(&tree.path, "staged", "s\n");
    let repo = Repository::open(&tree.path).unwrap();
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("staged")).unwrap();
    index.write().unwrap();

    ws.reset_step_tree(&tree).unwrap();
    assert_eq!(ws.changes(&tree).unwrap(), vec![]);
    assert_eq!(read(&tree.path, "a"), "a\n");
    assert_eq!(read(&tree.path, "dir/b"), "b\n");
    assert!(!tree.path.join("staged").exists());

    // An agent that removed the worktree's `.git` link gets a fresh worktree.
    write(&tree.path, "a", "edited again\n");
    fs::remove_file(tree.path.join(".git")).unwrap();
    assert!(kinds(&ws.changes(&tree).unwrap()).contains(&(".git".into(), ChangeKind::Added)));
    ws.reset_step_tree(&tree).unwrap();
    assert_eq!(ws.changes(&tree).unwrap(), vec![]);
    assert_eq!(read(&tree.path, "a"), "a\n");
}

// ---------------------------------------------------------------- changes

#[test]
fn changes_cover_every_kind() {
    let f = fixture(&[
        ("edit.txt", "one\n"),
        ("gone.txt", "bye\n"),
        (
            "moved/old.txt",
            "same content for a rename\nline two\nline three\n",
        ),
        ("script.sh", "echo hi\n"),
        ("becomes_link", "text\n"),
    ]);
    let ws = workspace(&f);
    let tree = ws.step_tree("s", ws.base()).unwrap();
    let p = &tree.path;
    write(p, "edit.txt", "two\n");
    fs::remove_file(p.join("gone.txt")).unwrap();
    fs::rename(p.join("moved/old.txt"), p.join("moved/new.txt")).unwrap();
    fs::set_permissions(p.join("script.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    symlink("edit.txt", p.join("link")).unwrap();
    fs::remove_file(p.join("becomes_link")).unwrap();
    symlink("edit.txt", p.join("becomes_link")).unwrap();
    write(p, "new/nested/deep/file.rs", "fn main() {}\n");
    write(p, "target/debug/out", "ignored\n");
    write(p, "build.log", "ignored\n");
    fs::create_dir_all(p.join("empty/dir")).unwrap();

    let changes = ws.changes(&tree).unwrap();
    assert_eq!(
        kinds(&changes),
        vec![
            ("becomes_link".into(), ChangeKind::TypeChanged),
            ("edit.txt".into(), ChangeKind::Modified),
            ("gone.txt".into(), ChangeKind::Deleted),
            ("link".into(), ChangeKind::Added),
            (
                "moved/new.txt".into(),
                ChangeKind::Renamed {
                    from: "moved/old.txt".into()
                }
            ),
            ("new/nested/deep/file.rs".into(), ChangeKind::Added),
            ("script.sh".into(), ChangeKind::ModeChanged),
        ]
    );
    let link = changes.iter().find(|c| c.path == "link").unwrap();
    assert_eq!(link.symlink_target.as_deref(), Some("edit.txt"));
    let typechange = changes.iter().find(|c| c.path == "becomes_link").unwrap();
    assert_eq!(typechange.symlink_target.as_deref(), Some("edit.txt"));
}

#[test]
fn changes_are_relative_to_the_base_even_after_the_agent_commits() {
    let f = fixture(&[("a", "a\n"), ("b", "b\n")]);
    let ws = workspace(&f);
    let tree = ws.step_tree("s", ws.base()).unwrap();
    write(&tree.path, "a", "edited\n");
    write(&tree.path, "c", "new\n");
    let repo = Repository::open(&tree.path).unwrap();
    commit_all(&repo, "agent's own commit");
    write(&tree.path, "b", "after commit\n");
    write(&tree.path, "d", "staged\n");
    let mut index = repo.index().unwrap();
    index.add_path(Path::new("d")).unwrap();
    index.write().unwrap();

    let changes = ws.changes(&tree).unwrap();
    assert_eq!(
        kinds(&changes),
        vec![
            ("a".into(), ChangeKind::Modified),
            ("b".into(), ChangeKind::Modified),
            ("c".into(), ChangeKind::Added),
            ("d".into(), ChangeKind::Added),
        ]
    );
    let commit = ws
        .commit_step(&tree, "s", "", &trailers("s"))
        .unwrap()
        .unwrap();
    let main = Repository::open(&f.root).unwrap();
    let parents: Vec<Oid> = main
        .find_commit(commit.commit)
        .unwrap()
        .parent_ids()
        .collect();
    assert_eq!(parents, vec![ws.base()]);
}

#[test]
fn a_nested_repository_is_reported_under_git() {
    let f = fixture(&[("a", "a\n")]);
    let ws = workspace(&f);
    let tree = ws.step_tree("s", ws.base()).unwrap();
    write(&tree.path, "sub/.git/config", "[core]\n");
    write(&tree.path, "sub/file", "x\n");
    let changes = ws.changes(&tree).unwrap();
    let violations = Workspace::violations(&changes, &patterns(&["**"]));
    assert_eq!(violations.len(), 1, "{violations:?}");
    assert_eq!(violations[0].path, "sub/.git");
    assert!(violations[0].reason.contains(".git"));
}

// ---------------------------------------------------------------- violations

fn change(path: &str, kind: ChangeKind) -> Change {
    Change {
        path: path.into(),
        kind,
        symlink_target: None,
    }
}

fn link(path: &str, target: &str) -> Change {
    Change {
        path: path.into(),
        kind: ChangeKind::Added,
        symlink_target: Some(target.into()),
    }
}

fn violated(changes: &[Change], write: &[&str]) -> Vec<String> {
    Workspace::violations(changes, &patterns(write))
        .into_iter()
        .map(|v| format!("{}: {}", v.path, v.reason))
        .collect()
}

#[test]
fn violations_of_write_globs() {
    let write = ["src/**"];
    assert!(violated(&[change("src/a.rs", ChangeKind::Added)], &write).is_empty());
    assert_eq!(
        violated(&[change("docs/a.md", ChangeKind::Modified)], &write),
        vec![r#"docs/a.md: modified outside write ["src/**"]"#]
    );
    let renamed = ChangeKind::Renamed {
        from: "src/a.rs".into(),
    };
    assert_eq!(
        violated(&[change("lib/a.rs", renamed)], &write),
        vec![r#"lib/a.rs: renamed outside write ["src/**"]"#]
    );
    let renamed_in = ChangeKind::Renamed {
        from: "lib/a.rs".into(),
    };
    assert_eq!(
        violated(&[change("src/a.rs", renamed_in)], &write),
        vec![r#"lib/a.rs: renamed to src/a.rs outside write ["src/**"]"#]
    );
    assert_eq!(
        violated(&[change("Cargo.toml", ChangeKind::Deleted)], &write),
        vec![r#"Cargo.toml: deleted outside write ["src/**"]"#]
    );
    assert_eq!(
        violated(&[change("run.sh", ChangeKind::ModeChanged)], &write),
        vec![r#"run.sh: mode changed outside write ["src/**"]"#]
    );
    assert_eq!(
        violated(&[change("src/a.rs", ChangeKind::Added)], &[]).len(),
        1
    );
    assert_eq!(
        violated(
            &[change(".git/hooks/pre-commit", ChangeKind::Added)],
            &["**"]
        ),
        vec![".git/hooks/pre-commit: change under .git (added)"]
    );
}

#[test]
fn violations_of_symlinks() {
    let write = ["src/**"];
    assert_eq!(
        violated(&[link("src/evil", "../../outside")], &write),
        vec!["src/evil: symlink pointing outside the worktree: ../../outside"]
    );
    assert_eq!(
        violated(&[link("src/abs", "/etc/passwd")], &write),
        vec!["src/abs: symlink pointing outside the worktree: /etc/passwd"]
    );
    assert!(violated(&[link("src/ok", "../src/lib.rs")], &write).is_empty());
    assert!(violated(&[link("src/dir", "nested")], &write).is_empty());
    assert_eq!(
        violated(&[link("src/cfg", "../Cargo.toml")], &write),
        vec![
            r#"src/cfg: symlink pointing to Cargo.toml (../Cargo.toml), outside write ["src/**"]"#
        ]
    );
    assert_eq!(
        violated(&[link("src/hook", "../.git/hooks/x")], &["**"]),
        vec!["src/hook: symlink pointing into .git: ../.git/hooks/x"]
    );
}

// ---------------------------------------------------------------- guard

#[test]
fn guard_reports_writes_to_the_common_git_dir() {
    let f = fixture(&[("a", "a\n")]);
    let ws = workspace(&f);
    let tree = ws.step_tree("s", ws.base()).unwrap();
    let before = ws.guard().unwrap();
    assert!(ws.guard_violations(&before).unwrap().is_empty());
    // Other steps coming and going are not the agent's doing.
    ws.step_tree("other", ws.base()).unwrap();
    assert!(ws.guard_violations(&before).unwrap().is_empty());

    write(&f.root, ".git/hooks/pre-commit", "#!/bin/sh\ncurl evil\n");
    let admin = fs::read_to_string(tree.path.join(".git")).unwrap();
    let admin = PathBuf::from(admin.trim().strip_prefix("gitdir: ").unwrap());
    fs::write(admin.join("config.worktree"), "[core]\nhooksPath=/tmp\n").unwrap();
    let found = ws.guard_violations(&before).unwrap();
    let paths: Vec<&str> = found.iter().map(|v| v.path.as_str()).collect();
    assert_eq!(
        paths,
        vec![
            ".git/hooks/pre-commit",
            ".git/worktrees/runbook-RUN1--s/config.worktree"
        ]
    );
    assert_eq!(found[0].reason, "created under .git/hooks");
}

#[test]
fn open_drops_a_step_worktree_a_crash_left_half_made() {
    let f = fixture(&[("a", "a\n")]);
    let ws = workspace(&f);
    let branch = ws.branch().to_string();
    let base = ws.base();
    ws.step_tree("d", base).unwrap();
    drop(ws);
    // A SIGKILL while libgit2 wrote the admin entry: `commondir` cut short, no `gitdir`.
    let admin = f.root.join(".git/worktrees/runbook-RUN1--d");
    fs::remove_file(admin.join("gitdir")).unwrap();
    fs::write(admin.join("commondir"), "../").unwrap();

    let ws = Workspace::open(&f.root, &f.run_dir, &branch, base).unwrap();
    assert!(!admin.exists(), "the half-made entry is gone");
    // A parallel step recreating it is then not mistaken for an agent's write.
    let before = ws.guard().unwrap();
    ws.step_tree("d", base).unwrap();
    assert!(ws.guard_violations(&before).unwrap().is_empty());
}

// ---------------------------------------------------------------- commit_step

#[test]
fn commit_step_carries_trailers_and_moves_no_ref() {
    let f = fixture(&[("a", "a\n")]);
    let ws = workspace(&f);
    let tree = ws.step_tree("s", ws.base()).unwrap();
    assert_eq!(
        ws.commit_step(&tree, "nothing", "", &trailers("s"))
            .unwrap(),
        None
    );
    write(&tree.path, "a", "b\n");
    let before_refs = all_refs(&f.root);
    let made = ws
        .commit_step(&tree, "Edit a", "Because.\nTwo lines.", &trailers("s"))
        .unwrap()
        .unwrap();
    assert_eq!(all_refs(&f.root), before_refs);
    assert_eq!(
        kinds(&made.changes),
        vec![("a".into(), ChangeKind::Modified)]
    );

    let repo = Repository::open(&f.root).unwrap();
    let commit = repo.find_commit(made.commit).unwrap();
    assert_eq!(commit.parent_ids().collect::<Vec<_>>(), vec![ws.base()]);
    assert_eq!(commit.author().name(), Some("runbook (coder)"));
    assert_eq!(commit.author().email(), Some("runbook@localhost"));
    let message = commit.message().unwrap();
    assert!(message.starts_with("Edit a\n\nBecause.\nTwo lines.\n\n"));
    let parsed: Vec<(String, String)> = git2::message_trailers_strs(message)
        .unwrap()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(
        parsed,
        vec![
            ("Runbook-Run".into(), "RUN1".into()),
            ("Runbook-Step".into(), "s".into()),
            ("Runbook-Agent".into(), "coder".into()),
            ("Runbook-Attempt".into(), "1".into()),
            ("Runbook-Spec-Sha256".into(), "a".repeat(64)),
            ("Runbook-Prompt-Sha256".into(), "b".repeat(64)),
        ]
    );
    if git_cli() {
        let out = std::process::Command::new("git")
            .args([
                "log",
                "-1",
                "--format=%(trailers:key=Runbook-Step,valueonly)",
            ])
            .arg(made.commit.to_string())
            .current_dir(&f.root)
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "s");
    }
}

fn all_refs(root: &Path) -> Vec<(String, Oid)> {
    let repo = Repository::open(root).unwrap();
    let mut refs: Vec<(String, Oid)> = repo
        .references()
        .unwrap()
        .map(|r| {
            let r = r.unwrap();
            (
                r.name().unwrap().to_string(),
                r.target().unwrap_or(Oid::zero()),
            )
        })
        .collect();
    refs.sort();
    refs
}

// ---------------------------------------------------------------- merge

/// Two step commits from the base, each writing `files`.
fn two_steps(ws: &Workspace, one: &[(&str, &str)], two: &[(&str, &str)]) -> (Oid, Oid) {
    let a = ws.step_tree("one", ws.base()).unwrap();
    for (path, text) in one {
        write(&a.path, path, text);
    }
    let b = ws.step_tree("two", ws.base()).unwrap();
    for (path, text) in two {
        write(&b.path, path, text);
    }
    (step_commit(ws, &a), step_commit(ws, &b))
}

#[test]
fn merge_fast_forwards_then_merges_then_is_unchanged() {
    let f = fixture(&[("a", "a\n"), ("b", "b\n")]);
    let ws = workspace(&f);
    let (one, two) = two_steps(&ws, &[("a", "A\n")], &[("b", "B\n")]);
    assert_eq!(
        ws.merge(one, "one").unwrap(),
        MergeOutcome::FastForward(one)
    );
    assert_eq!(ws.tip().unwrap(), one);
    assert_eq!(read(ws.run_worktree(), "a"), "A\n");

    let MergeOutcome::Merged(merged) = ws.merge(two, "merge two").unwrap() else {
        panic!("expected a merge commit");
    };
    let repo = Repository::open(&f.root).unwrap();
    let commit = repo.find_commit(merged).unwrap();
    assert_eq!(commit.parent_ids().collect::<Vec<_>>(), vec![one, two]);
    assert_eq!(commit.message(), Some("merge two"));
    assert_eq!(ws.tip().unwrap(), merged);
    assert_eq!(read(ws.run_worktree(), "a"), "A\n");
    assert_eq!(read(ws.run_worktree(), "b"), "B\n");

    assert_eq!(
        ws.merge(one, "again").unwrap(),
        MergeOutcome::Unchanged(merged)
    );
    assert_eq!(
        ws.merge(ws.base(), "base").unwrap(),
        MergeOutcome::Unchanged(merged)
    );
}

#[test]
fn merge_of_the_same_lines_is_a_conflict_with_both_sides() {
    let f = fixture(&[("a", "1\n2\n3\n"), ("b", "b\n")]);
    let ws = workspace(&f);
    let (one, two) = two_steps(
        &ws,
        &[("a", "1\nONE\n3\n"), ("b", "b1\n")],
        &[("a", "1\nTWO\n3\n"), ("b", "b2\n")],
    );
    ws.merge(one, "one").unwrap();
    let MergeOutcome::Conflict(conflict) = ws.merge(two, "two").unwrap() else {
        panic!("expected a conflict");
    };
    assert_eq!(ws.tip().unwrap(), one);
    assert_eq!(conflict.paths, vec!["a".to_string(), "b".to_string()]);
    assert_eq!((conflict.ours, conflict.theirs), (one, two));
    let a = &conflict.sides[0];
    assert_eq!(a.base.as_deref(), Some("1\n2\n3\n"));
    assert_eq!(a.ours.as_deref(), Some("1\nONE\n3\n"));
    assert_eq!(a.theirs.as_deref(), Some("1\nTWO\n3\n"));
    assert_eq!(read(ws.run_worktree(), "a"), "1\nONE\n3\n");
}

#[test]
fn resolve_takes_one_side() {
    for (side, expected) in [(Side::Ours, "ONE\n"), (Side::Theirs, "TWO\n")] {
        let f = fixture(&[("a", "a\n"), ("c", "c\n")]);
        let ws = workspace(&f);
        let (one, two) = two_steps(&ws, &[("a", "ONE\n")], &[("a", "TWO\n"), ("c", "C\n")]);
        ws.merge(one, "one").unwrap();
        let MergeOutcome::Conflict(conflict) = ws.merge(two, "two").unwrap() else {
            panic!("expected a conflict");
        };
        let merged = ws.resolve(&conflict, side, "resolved").unwrap();
        assert_eq!(ws.tip().unwrap(), merged);
        let repo = Repository::open(&f.root).unwrap();
        let parents: Vec<Oid> = repo.find_commit(merged).unwrap().parent_ids().collect();
        assert_eq!(parents, vec![one, two]);
        assert_eq!(read(ws.run_worktree(), "a"), expected);
        // The step's non-conflicting change is merged either way.
        assert_eq!(read(ws.run_worktree(), "c"), "C\n");
    }
}

#[test]
fn merge_bases_combines_dependencies() {
    let f = fixture(&[("a", "a\n"), ("b", "b\n")]);
    let ws = workspace(&f);
    assert_eq!(ws.merge_bases(&[]).unwrap(), Ok(ws.base()));
    let (one, two) = two_steps(&ws, &[("a", "A\n")], &[("b", "B\n")]);
    assert_eq!(ws.merge_bases(&[one]).unwrap(), Ok(one));
    assert_eq!(ws.merge_bases(&[one, one]).unwrap(), Ok(one));
    let both = ws.merge_bases(&[one, two]).unwrap().unwrap();
    let tree = ws.step_tree("three", both).unwrap();
    assert_eq!(read(&tree.path, "a"), "A\n");
    assert_eq!(read(&tree.path, "b"), "B\n");
    // The run branch is not moved by computing a base.
    assert_eq!(ws.tip().unwrap(), ws.base());

    let (x, y) = {
        let a = ws.step_tree("x", ws.base()).unwrap();
        write(&a.path, "a", "X\n");
        let b = ws.step_tree("y", ws.base()).unwrap();
        write(&b.path, "a", "Y\n");
        (step_commit(&ws, &a), step_commit(&ws, &b))
    };
    let conflict = ws.merge_bases(&[x, y]).unwrap().unwrap_err();
    assert_eq!(conflict.paths, vec!["a".to_string()]);
}

#[test]
fn parallel_merges_are_serialized() {
    let f = fixture(&[("a", "a\n")]);
    let ws = workspace(&f);
    let commits: Vec<Oid> = (0..4)
        .map(|i| {
            let tree = ws.step_tree(&format!("s{i}"), ws.base()).unwrap();
            write(&tree.path, &format!("f{i}"), "x\n");
            step_commit(&ws, &tree)
        })
        .collect();
    std::thread::scope(|scope| {
        for &commit in &commits {
            let ws = &ws;
            scope.spawn(move || ws.merge(commit, "m").unwrap());
        }
    });
    let repo = Repository::open(&f.root).unwrap();
    let tip = ws.tip().unwrap();
    for commit in commits {
        assert!(tip == commit || repo.graph_descendant_of(tip, commit).unwrap());
    }
    for i in 0..4 {
        assert_eq!(read(ws.run_worktree(), &format!("f{i}")), "x\n");
    }
}

// ---------------------------------------------------------------- branch and diff

#[test]
fn reset_branch_moves_only_the_run_branch() {
    let f = fixture(&[("a", "a\n")]);
    let ws = workspace(&f);
    let tree = ws.step_tree("s", ws.base()).unwrap();
    write(&tree.path, "a", "A\n");
    let commit = step_commit(&ws, &tree);
    ws.merge(commit, "m").unwrap();
    let before = user_state(&f.root);
    ws.reset_branch(ws.base()).unwrap();
    assert_eq!(ws.tip().unwrap(), ws.base());
    assert_eq!(read(ws.run_worktree(), "a"), "a\n");
    assert_eq!(user_state(&f.root), before);
    assert!(ws.reset_branch(Oid::zero()).is_err());
}

#[test]
fn diff_and_changed_paths() {
    let f = fixture(&[("a", "a\n")]);
    let ws = workspace(&f);
    let tree = ws.step_tree("s", ws.base()).unwrap();
    write(&tree.path, "a", "A\n");
    write(&tree.path, "n", "new\n");
    let commit = step_commit(&ws, &tree);
    let patch = ws.diff(ws.base(), commit).unwrap();
    assert!(patch.contains("diff --git a/a b/a"), "{patch}");
    assert!(patch.contains("-a\n+A\n"), "{patch}");
    assert!(patch.contains("+++ b/n"), "{patch}");
    assert_eq!(
        kinds(&ws.changed_paths(ws.base(), commit).unwrap()),
        vec![
            ("a".into(), ChangeKind::Modified),
            ("n".into(), ChangeKind::Added)
        ]
    );
}

// ---------------------------------------------------------------- fast_forward_user

/// A workspace whose branch holds one more commit changing `a`.
fn finished_run(f: &Fixture) -> Oid {
    let ws = workspace(f);
    let tree = ws.step_tree("s", ws.base()).unwrap();
    write(&tree.path, "a", "from the run\n");
    write(&tree.path, "added", "new file\n");
    let commit = step_commit(&ws, &tree);
    ws.merge(commit, "m").unwrap();
    ws.remove_all().unwrap();
    commit
}

#[test]
fn fast_forward_user_moves_a_clean_branch() {
    let f = fixture(&[("a", "a\n")]);
    let to = finished_run(&f);
    write(&f.root, "untracked-elsewhere", "fine\n");
    let branch = fast_forward_user(&f.root, to).unwrap().unwrap();
    assert_eq!(branch, "master");
    let repo = Repository::open(&f.root).unwrap();
    assert_eq!(repo.head().unwrap().target(), Some(to));
    assert_eq!(read(&f.root, "a"), "from the run\n");
    assert_eq!(read(&f.root, "added"), "new file\n");
    let statuses = repo.statuses(None).unwrap();
    let dirty: Vec<_> = statuses
        .iter()
        .filter(|s| {
            !s.status()
                .intersects(git2::Status::WT_NEW | git2::Status::IGNORED)
        })
        .map(|s| s.path().unwrap().to_string())
        .collect();
    assert!(dirty.is_empty(), "{dirty:?}");
}

#[test]
fn fast_forward_user_refuses_when_unsafe() {
    // Dirty tracked file.
    let f = fixture(&[("a", "a\n"), ("other", "o\n")]);
    let to = finished_run(&f);
    write(&f.root, "other", "user edit\n");
    let why = fast_forward_user(&f.root, to).unwrap().unwrap_err();
    assert!(why.contains("uncommitted changes (other)"), "{why}");
    assert_eq!(read(&f.root, "other"), "user edit\n");

    // Untracked file the checkout would overwrite.
    let f = fixture(&[("a", "a\n")]);
    let to = finished_run(&f);
    write(&f.root, "added", "mine\n");
    let why = fast_forward_user(&f.root, to).unwrap().unwrap_err();
    assert!(why.contains("untracked"), "{why}");
    assert_eq!(read(&f.root, "added"), "mine\n");

    // Detached HEAD.
    let f = fixture(&[("a", "a\n")]);
    let to = finished_run(&f);
    let repo = Repository::open(&f.root).unwrap();
    let head = repo.head().unwrap().target().unwrap();
    repo.set_head_detached(head).unwrap();
    let why = fast_forward_user(&f.root, to).unwrap().unwrap_err();
    assert!(why.contains("detached"), "{why}");

    // The user committed meanwhile.
    let f = fixture(&[("a", "a\n")]);
    let to = finished_run(&f);
    write(&f.root, "mine", "m\n");
    let repo = Repository::open(&f.root).unwrap();
    let user = commit_all(&repo, "user work");
    let why = fast_forward_user(&f.root, to).unwrap().unwrap_err();
    assert!(why.contains("merge instead"), "{why}");
    assert_eq!(repo.head().unwrap().target(), Some(user));
}

// ---------------------------------------------------------------- git's own view

#[test]
fn git_sees_step_trees_as_clean_worktrees() {
    if !git_cli() {
        return;
    }
    let f = fixture(&[("a", "a\n"), ("dir/b", "b\n")]);
    let ws = workspace(&f);
    let tree = ws.step_tree("s", ws.base()).unwrap();
    let git = |dir: &Path, args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(git(&tree.path, &["status", "--porcelain"]), "");
    let list = git(&f.root, &["worktree", "list", "--porcelain"]);
    assert!(list.contains("detached"), "{list}");
    assert!(
        list.contains("branch refs/heads/runbook/my-book/RUN1"),
        "{list}"
    );
    write(&tree.path, "a", "edited\n");
    assert_eq!(git(&tree.path, &["status", "--porcelain"]), " M a\n");
    ws.remove_all().unwrap();
    let list = git(&f.root, &["worktree", "list", "--porcelain"]);
    assert_eq!(list.matches("worktree ").count(), 1, "{list}");
}

// ---------------------------------------------------------------- cost

/// `cargo test --lib workspace::tests::cost -- --ignored --nocapture`: the cost of one
/// step's git work (worktree, commit, merge) for a one-file change in a 1,000-file repo.
#[test]
#[ignore]
fn cost_of_a_one_file_step() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repo");
    let repo = Repository::init(&root).unwrap();
    for i in 0..1000 {
        let text = format!("// file {i}\n{}", "let x = 1;\n".repeat(80));
        write(&root, &format!("src/m{}/f{i}.rs", i % 50), &text);
    }
    commit_all(&repo, "initial");
    let ws = Workspace::create(&root, &dir.path().join("run"), "bench", "RUN1").unwrap();
    let ms = |start: std::time::Instant| start.elapsed().as_secs_f64() * 1000.0;
    let mut rows = Vec::new();
    for i in 0..5 {
        let step = format!("step{i}");
        let start = std::time::Instant::now();
        let tree = ws.step_tree(&step, ws.base()).unwrap();
        let t_tree = ms(start);
        write(&tree.path, &format!("src/m{i}/f{i}.rs"), "changed\n");
        let start = std::time::Instant::now();
        let changes = ws.changes(&tree).unwrap();
        let t_changes = ms(start);
        assert_eq!(changes.len(), 1);
        let start = std::time::Instant::now();
        let commit = step_commit(&ws, &tree);
        let t_commit = ms(start);
        let start = std::time::Instant::now();
        ws.merge(commit, "m").unwrap();
        let t_merge = ms(start);
        let start = std::time::Instant::now();
        ws.remove_step_tree(&step).unwrap();
        let t_remove = ms(start);
        rows.push([t_tree, t_changes, t_commit, t_merge, t_remove]);
    }
    eprintln!("step_tree  changes  commit_step  merge  remove_step_tree   (ms)");
    for row in rows {
        eprintln!(
            "{:9.1}  {:7.1}  {:11.1}  {:5.1}  {:16.1}",
            row[0], row[1], row[2], row[3], row[4]
        );
    }
}
