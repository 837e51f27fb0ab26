//! Detecting an agent writing to git's own files (hooks, config, info/) through the common
//! git directory its worktree shares with the user's repository.

use super::error::IoContext;
use super::{Violation, Workspace, WorkspaceError};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A snapshot of the sensitive files in the common git dir.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GitGuard {
    /// Label (`.git/hooks/pre-commit`, or an absolute path under `core.hooksPath`) → mode and
    /// content hash.
    files: BTreeMap<String, (u32, [u8; 32])>,
    /// Where each guarded file outside `.git/worktrees` lives, and what it held, so that
    /// an agent's write to a hook can be undone: a planted hook would otherwise run at
    /// the user's next commit.
    saved: BTreeMap<String, (PathBuf, Saved)>,
    /// `core.hooksPath` outside the common dir, as the user's config had it. A later
    /// snapshot looks there, never where an agent's edit of the config points: that
    /// could be any directory, and restoring it would delete what is new in it.
    hooks: Option<PathBuf>,
}

/// A guarded file's content and kind, as it was.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Saved {
    File { mode: u32, bytes: Vec<u8> },
    Link(PathBuf),
}

/// Files directly in the common dir that change what git runs or where it reads objects.
const FILES: &[&str] = &["config", "objects/info/alternates"];
/// Directories of the common dir whose every file matters.
const DIRECTORIES: &[&str] = &["hooks", "info"];
/// Files of a worktree's admin dir that redirect or reconfigure it (HEAD, index and logs
/// change legitimately when an agent commits).
const WORKTREE_FILES: &[&str] = &["config.worktree", "commondir", "gitdir"];

impl Workspace {
    /// Snapshot of hooks/, config, info/ (and the worktree admin dir of the step) in the common git dir, to detect an agent writing there.
    ///
    /// The shared files (hooks, config, info/) are as they were when this process took
    /// the run over, not as they are now: a parallel step may have changed them, and
    /// taking that as a step's starting point would restore the change, not undo it.
    /// The worktree admin files are as they are now (step worktrees come and go).
    pub fn guard(&self) -> Result<GitGuard, WorkspaceError> {
        let now = self.guard_files(self.trusted_hooks.clone())?;
        let mut guard = self.baseline.clone();
        guard
            .files
            .retain(|label, _| !label.starts_with(".git/worktrees/"));
        guard.files.extend(
            now.files
                .into_iter()
                .filter(|(label, _)| label.starts_with(".git/worktrees/")),
        );
        Ok(guard)
    }

    /// The snapshot a run starts from (see [`Workspace::guard`]).
    pub(crate) fn baseline_guard(&self) -> Result<GitGuard, WorkspaceError> {
        self.guard_files(self.trusted_hooks.clone())
    }

    /// The snapshot, with hooks outside the common dir looked for in `hooks`.
    fn guard_files(&self, hooks: Option<PathBuf>) -> Result<GitGuard, WorkspaceError> {
        // Parallel steps' worktrees are created and removed under this lock: a snapshot
        // never sees one half-made (which would read as an agent's change).
        let _refs = self.lock_refs();
        let repo = self.repo()?;
        let common = common_dir(&repo)?;
        let mut files = BTreeMap::new();
        for file in FILES {
            record(&common.join(file), format!(".git/{file}"), &mut files)?;
        }
        for dir in DIRECTORIES {
            record_tree(&common.join(dir), &format!(".git/{dir}"), &mut files)?;
        }
        let mut saved = BTreeMap::new();
        for label in files.keys() {
            let path = common.join(label.trim_start_matches(".git/"));
            if let Some(content) = save(&path)? {
                saved.insert(label.clone(), (path, content));
            }
        }
        let admin = common.join("worktrees");
        if let Ok(entries) = std::fs::read_dir(&admin) {
            for entry in entries.flatten() {
                let name = entry.file_name().to_string_lossy().into_owned();
                for file in WORKTREE_FILES {
                    let label = format!(".git/worktrees/{name}/{file}");
                    record(&entry.path().join(file), label, &mut files)?;
                }
            }
        }
        if let Some(hooks) = &hooks {
            let label = hooks.display().to_string();
            let mut outside = BTreeMap::new();
            record_tree(hooks, &label, &mut outside)?;
            for label in outside.keys() {
                let path = PathBuf::from(label);
                if let Some(content) = save(&path)? {
                    saved.insert(label.clone(), (path, content));
                }
            }
            files.extend(outside);
        }
        Ok(GitGuard {
            files,
            saved,
            hooks,
        })
    }

    /// Puts the hooks, config and `info/` files back as `before` saw them: changed ones
    /// rewritten, deleted ones recreated, created ones removed. Worktree admin files are
    /// left alone (git owns them). Returns the labels it restored.
    pub fn restore_guarded(&self, before: &GitGuard) -> Result<Vec<String>, WorkspaceError> {
        let after = self.guard_files(before.hooks.clone())?;
        let mut restored = Vec::new();
        for (label, (path, content)) in &before.saved {
            if after.saved.get(label).map(|(_, c)| c) == Some(content) {
                continue;
            }
            if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(path).io_context("removing", path)?;
            } else if std::fs::symlink_metadata(path).is_ok() {
                std::fs::remove_file(path).io_context("removing", path)?;
            }
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent).io_context("creating", parent)?;
            }
            match content {
                Saved::File { mode, bytes } => {
                    std::fs::write(path, bytes).io_context("restoring", path)?;
                    std::fs::set_permissions(path, std::fs::Permissions::from_mode(*mode))
                        .io_context("restoring the mode of", path)?;
                }
                Saved::Link(target) => {
                    std::os::unix::fs::symlink(target, path).io_context("restoring", path)?;
                }
            }
            restored.push(label.clone());
        }
        for (label, (path, _)) in &after.saved {
            if before.saved.contains_key(label) {
                continue;
            }
            // A parallel step restoring the same shared file may have removed it first.
            match std::fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(e).io_context("removing", path);
                }
                _ => {}
            }
            restored.push(label.clone());
        }
        Ok(restored)
    }

    /// Paths under .git that differ from the snapshot (as Violations), restoring nothing.
    pub fn guard_violations(&self, before: &GitGuard) -> Result<Vec<Violation>, WorkspaceError> {
        let after = self.guard_files(before.hooks.clone())?;
        let labels: BTreeSet<&String> = before.files.keys().chain(after.files.keys()).collect();
        let mut found = Vec::new();
        for label in labels {
            if !worktree_admin_in_both(label, before, &after) {
                // Parallel steps add and remove their own worktrees meanwhile.
                continue;
            }
            let what = match (before.files.get(label), after.files.get(label)) {
                (Some(old), Some(new)) if old == new => continue,
                (Some(_), Some(_)) => "changed",
                (None, Some(_)) => "created",
                (Some(_), None) => "deleted",
                (None, None) => continue,
            };
            found.push(Violation {
                path: label.clone(),
                reason: format!("{what} under {}", area(label)),
            });
        }
        Ok(found)
    }
}

/// `.git/hooks` for `.git/hooks/pre-commit`: the area a guarded file belongs to.
fn area(label: &str) -> String {
    let parts: Vec<&str> = label.split('/').collect();
    match parts.as_slice() {
        [".git", "worktrees", name, ..] => format!(".git/worktrees/{name}"),
        [".git", dir, _, ..] => format!(".git/{dir}"),
        [".git", _] => ".git".to_string(),
        _ => "core.hooksPath".to_string(),
    }
}

/// Whether `label` is outside `.git/worktrees`, or its worktree exists in both snapshots.
fn worktree_admin_in_both(label: &str, before: &GitGuard, after: &GitGuard) -> bool {
    let Some(rest) = label.strip_prefix(".git/worktrees/") else {
        return true;
    };
    let name = rest.split('/').next().unwrap_or(rest);
    let prefix = format!(".git/worktrees/{name}/");
    let has = |guard: &GitGuard| guard.files.keys().any(|k| k.starts_with(&prefix));
    has(before) && has(after)
}

/// The content of a guarded file or symlink, if it exists.
fn save(path: &Path) -> Result<Option<Saved>, WorkspaceError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(None);
    };
    Ok(if meta.file_type().is_symlink() {
        Some(Saved::Link(
            std::fs::read_link(path).io_context("reading symlink", path)?,
        ))
    } else if meta.is_file() {
        Some(Saved::File {
            mode: meta.permissions().mode(),
            bytes: std::fs::read(path).io_context("reading", path)?,
        })
    } else {
        None
    })
}

/// Adds `path` (a file or symlink) to the snapshot if it exists.
fn record(
    path: &Path,
    label: String,
    files: &mut BTreeMap<String, (u32, [u8; 32])>,
) -> Result<(), WorkspaceError> {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    let content = if meta.file_type().is_symlink() {
        let target = std::fs::read_link(path).io_context("reading symlink", path)?;
        target.as_os_str().as_encoded_bytes().to_vec()
    } else if meta.is_file() {
        std::fs::read(path).io_context("reading", path)?
    } else {
        return Ok(());
    };
    files.insert(
        label,
        (meta.permissions().mode(), Sha256::digest(&content).into()),
    );
    Ok(())
}

/// Adds every file under `dir` to the snapshot.
fn record_tree(
    dir: &Path,
    label: &str,
    files: &mut BTreeMap<String, (u32, [u8; 32])>,
) -> Result<(), WorkspaceError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries {
        let entry = entry.io_context("reading directory", dir)?;
        let path = entry.path();
        let child = format!("{label}/{}", entry.file_name().to_string_lossy());
        let is_dir = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
        if is_dir {
            record_tree(&path, &child, files)?;
        } else {
            record(&path, child, files)?;
        }
    }
    Ok(())
}

/// The directory shared by all worktrees (the main `.git`), even when `repo` is a linked worktree.
pub(crate) fn common_dir(repo: &git2::Repository) -> Result<PathBuf, WorkspaceError> {
    let git_dir = repo.path();
    let link = git_dir.join("commondir");
    if !repo.is_worktree() || !link.exists() {
        return Ok(git_dir.to_path_buf());
    }
    let text = std::fs::read_to_string(&link).io_context("reading", &link)?;
    let common = git_dir.join(text.trim());
    Ok(common.canonicalize().unwrap_or(common))
}

/// `core.hooksPath` when it lies outside the common dir (inside, the guard covers it).
pub(crate) fn outside_hooks(
    repo: &git2::Repository,
    root: &Path,
) -> Result<Option<PathBuf>, WorkspaceError> {
    let common = common_dir(repo)?;
    Ok(hooks_path(repo, root).filter(|h| !h.starts_with(&common)))
}

/// `core.hooksPath`, resolved the way git resolves it (relative to the working tree).
fn hooks_path(repo: &git2::Repository, root: &Path) -> Option<PathBuf> {
    let config = repo.config().ok()?;
    let value = config.get_path("core.hooksPath").ok()?;
    Some(if value.is_absolute() {
        value
    } else {
        root.join(value)
    })
}
