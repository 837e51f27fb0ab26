//! What changed between two trees, in the terms the permission check and the records use.

use super::error::GitContext;
use super::snapshot::lossy;
use super::{Workspace, WorkspaceError};
use git2::{Delta, DiffFindOptions, DiffOptions, FileMode, Oid, Repository, Tree};

/// One changed path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The path after the change (repo-relative, `/`-separated); the old path of a deletion.
    pub path: String,
    /// How it changed.
    pub kind: ChangeKind,
    /// The link's target when the new entry is a symlink.
    pub symlink_target: Option<String>,
}

/// How a path changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangeKind {
    /// A new path.
    Added,
    /// Same path, new content (the mode may have changed too).
    Modified,
    /// The path is gone.
    Deleted,
    /// Moved from `from`, possibly with edits.
    Renamed {
        /// The path before the move.
        from: String,
    },
    /// Same content, only the executable bit changed.
    ModeChanged,
    /// A file became a symlink or the other way round (or a submodule).
    TypeChanged,
}

impl Workspace {
    /// Unified diff (git-style patch text) between two commits, and the changed paths.
    pub fn diff(&self, from: Oid, to: Oid) -> Result<String, WorkspaceError> {
        let repo = self.repo()?;
        let old = commit_tree(&repo, from)?;
        let new = commit_tree(&repo, to)?;
        let diff = tree_diff(&repo, &old, &new)?;
        let mut text = Vec::new();
        diff.print(git2::DiffFormat::Patch, |_, _, line| {
            if matches!(line.origin(), '+' | '-' | ' ') {
                text.push(line.origin() as u8);
            }
            text.extend_from_slice(line.content());
            true
        })
        .context(|| format!("printing the diff {from}..{to}"))?;
        Ok(String::from_utf8_lossy(&text).into_owned())
    }

    /// The paths changed between two commits, renames detected.
    pub fn changed_paths(&self, from: Oid, to: Oid) -> Result<Vec<Change>, WorkspaceError> {
        let repo = self.repo()?;
        let old = commit_tree(&repo, from)?;
        let new = commit_tree(&repo, to)?;
        tree_changes(&repo, &old, &new)
    }
}

/// The tree of commit `id`.
pub(crate) fn commit_tree(repo: &Repository, id: Oid) -> Result<Tree<'_>, WorkspaceError> {
    repo.find_commit(id)
        .and_then(|commit| commit.tree())
        .context(|| format!("reading the tree of commit {id}"))
}

/// The diff of two trees with renames and type changes detected, as git shows it.
fn tree_diff<'r>(
    repo: &'r Repository,
    old: &Tree<'_>,
    new: &Tree<'_>,
) -> Result<git2::Diff<'r>, WorkspaceError> {
    let mut options = DiffOptions::new();
    options.include_typechange(true);
    let mut diff = repo
        .diff_tree_to_tree(Some(old), Some(new), Some(&mut options))
        .context(|| format!("comparing trees {} and {}", old.id(), new.id()))?;
    let mut find = DiffFindOptions::new();
    find.renames(true);
    diff.find_similar(Some(&mut find))
        .context(|| format!("finding renames between {} and {}", old.id(), new.id()))?;
    Ok(diff)
}

/// Every change from `old` to `new`, in path order.
pub(crate) fn tree_changes(
    repo: &Repository,
    old: &Tree<'_>,
    new: &Tree<'_>,
) -> Result<Vec<Change>, WorkspaceError> {
    let diff = tree_diff(repo, old, new)?;
    let mut changes = Vec::new();
    for delta in diff.deltas() {
        let old_file = delta.old_file();
        let new_file = delta.new_file();
        let path_of = |file: &git2::DiffFile<'_>| file.path_bytes().map(lossy).unwrap_or_default();
        let kind = match delta.status() {
            Delta::Added | Delta::Copied => ChangeKind::Added,
            Delta::Deleted => ChangeKind::Deleted,
            Delta::Renamed => ChangeKind::Renamed {
                from: path_of(&old_file),
            },
            Delta::Typechange => ChangeKind::TypeChanged,
            Delta::Modified if old_file.id() == new_file.id() => ChangeKind::ModeChanged,
            Delta::Modified => ChangeKind::Modified,
            // Tree-to-tree diffs produce nothing else.
            _ => continue,
        };
        let path = if kind == ChangeKind::Deleted {
            path_of(&old_file)
        } else {
            path_of(&new_file)
        };
        let symlink_target = if kind != ChangeKind::Deleted && new_file.mode() == FileMode::Link {
            let blob = repo
                .find_blob(new_file.id())
                .context(|| format!("reading the symlink {path}"))?;
            Some(String::from_utf8_lossy(blob.content()).into_owned())
        } else {
            None
        };
        changes.push(Change {
            path,
            kind,
            symlink_target,
        });
    }
    Ok(changes)
}

impl Workspace {
    /// Everything changed in the tree relative to `tree.base` — compare the base TREE to the FILES on disk (not to the worktree's HEAD/index: the agent may have run `git commit` or `git add` itself). Untracked files included (recursively), ignored files excluded, renames detected, mode changes (chmod +x) and symlinks reported.
    pub fn changes(&self, tree: &super::StepTree) -> Result<Vec<Change>, WorkspaceError> {
        let (worktree, snapshot) = self.snapshot(tree)?;
        let base = commit_tree(&worktree, tree.base)?;
        let new = worktree
            .find_tree(snapshot.tree)
            .context(|| format!("reading tree {}", snapshot.tree))?;
        let mut changes = tree_changes(&worktree, &base, &new)?;
        changes.extend(snapshot.git_paths.into_iter().map(|path| Change {
            path,
            kind: ChangeKind::Added,
            symlink_target: None,
        }));
        Ok(changes)
    }

    /// The step worktree's repository and the tree of its files.
    pub(crate) fn snapshot(
        &self,
        tree: &super::StepTree,
    ) -> Result<(Repository, super::snapshot::Snapshot), WorkspaceError> {
        let worktree = self.open_step_repo(tree)?;
        let base = commit_tree(&worktree, tree.base)?;
        let snapshot = super::snapshot::snapshot(&worktree, &tree.path, &base)?;
        drop(base);
        Ok((worktree, snapshot))
    }
}
