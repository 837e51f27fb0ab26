//! Three-way merges of step commits: into the run branch, and of a step's dependencies into
//! its base. A conflict is returned with both sides, never resolved on its own.

use super::commit::EMAIL;
use super::error::GitContext;
use super::{Workspace, WorkspaceError};
use crate::record::crash;
use git2::{Index, IndexEntry, Oid, Repository, Signature};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// What merging a step commit into the run branch did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MergeOutcome {
    /// The branch had not moved since the step's base: it now points at the step commit.
    FastForward(Oid),
    /// A merge commit (run tip, step commit) is the new tip.
    Merged(Oid),
    /// The branch already contains the commit; the tip stays.
    Unchanged(Oid),
    /// Both sides changed the same lines; the branch is untouched.
    Conflict(Conflict),
}

/// A merge that needs a person: the conflicting paths and both sides' texts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The conflicting paths, sorted.
    pub paths: Vec<String>,
    /// The run branch's tip (or the first dependency, for `merge_bases`).
    pub ours: Oid,
    /// The step commit being merged.
    pub theirs: Oid,
    /// The three texts of each conflicting path.
    pub sides: Vec<ConflictSide>,
}

/// One conflicting path's texts (lossy UTF-8, each cut at [`SIDE_LIMIT`] bytes); None where
/// that side has no such file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConflictSide {
    /// The path.
    pub path: String,
    /// The merge base's text.
    pub base: Option<String>,
    /// The run branch's text.
    pub ours: Option<String>,
    /// The step's text.
    pub theirs: Option<String>,
}

/// Which side a person chose for the conflicting paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The run branch's version.
    Ours,
    /// The step's version.
    Theirs,
}

/// How much of each side's text a conflict carries: enough to decide, small enough to
/// record in the journal.
pub const SIDE_LIMIT: usize = 64 * 1024;

impl Workspace {
    /// The commit a step starts from: `base()` for no deps, the dep for one, an in-memory merge commit of several (Err(Conflict) if they conflict).
    pub fn merge_bases(&self, deps: &[Oid]) -> Result<Result<Oid, Conflict>, WorkspaceError> {
        let repo = self.repo()?;
        let mut unique: Vec<Oid> = Vec::new();
        for dep in deps {
            if !unique.contains(dep) {
                unique.push(*dep);
            }
        }
        let Some((&first, rest)) = unique.split_first() else {
            return Ok(Ok(self.base));
        };
        let mut merged = first;
        for &next in rest {
            if contains(&repo, merged, next)? {
                continue;
            }
            if contains(&repo, next, merged)? {
                merged = next;
                continue;
            }
            let index = merge_index(&repo, merged, next)?;
            if index.has_conflicts() {
                return Ok(Err(conflict(&repo, &index, merged, next)?));
            }
            let message = format!("runbook: merge of dependencies {merged} and {next}");
            merged = commit_index(&repo, index, &message, merged, next)?;
        }
        Ok(Ok(merged))
    }

    /// Three-way merges `commit` into the run branch (fast-forward when possible; Unchanged if already contained); updates the branch ref and the run worktree's files. Serialized by an internal mutex (parallel steps call it concurrently). Conflict leaves the branch untouched.
    pub fn merge(&self, commit: Oid, message: &str) -> Result<MergeOutcome, WorkspaceError> {
        let _guard = self.lock_branch();
        let repo = self.repo()?;
        repo.find_commit(commit)
            .context(|| format!("merging {commit} into {}: no such commit", self.branch))?;
        let tip = self.tip()?;
        if contains(&repo, tip, commit)? {
            return Ok(MergeOutcome::Unchanged(tip));
        }
        if contains(&repo, commit, tip)? {
            self.sync_run_worktree(commit)?;
            crash::reached("git:merge");
            return Ok(MergeOutcome::FastForward(commit));
        }
        let index = merge_index(&repo, tip, commit)?;
        if index.has_conflicts() {
            return Ok(MergeOutcome::Conflict(conflict(
                &repo, &index, tip, commit,
            )?));
        }
        let merged = commit_index(&repo, index, message, tip, commit)?;
        self.sync_run_worktree(merged)?;
        crash::reached("git:merge");
        Ok(MergeOutcome::Merged(merged))
    }

    /// Resolves a conflict by taking one side for the conflicting paths (`Side::Ours` = run branch, `Side::Theirs` = step) and committing the merge.
    pub fn resolve(
        &self,
        conflict: &Conflict,
        side: Side,
        message: &str,
    ) -> Result<Oid, WorkspaceError> {
        let _guard = self.lock_branch();
        let repo = self.repo()?;
        // Other steps may have merged since the conflict was shown: merge onto today's tip,
        // and refuse if that brings conflicts the decision was not about.
        let tip = self.tip()?;
        let mut index = merge_index(&repo, tip, conflict.theirs)?;
        let now = conflict_paths(&index)?;
        let new_paths: Vec<String> = now
            .iter()
            .filter(|path| !conflict.paths.contains(path))
            .cloned()
            .collect();
        if !new_paths.is_empty() {
            return Err(WorkspaceError::StaleConflict {
                paths: conflict.paths.clone(),
                theirs: conflict.theirs,
                new_paths,
            });
        }
        take_side(&mut index, side)?;
        let merged = commit_index(&repo, index, message, tip, conflict.theirs)?;
        self.sync_run_worktree(merged)?;
        crash::reached("git:resolve");
        Ok(merged)
    }
}

/// Whether `ancestor` is `commit` or one of its ancestors.
fn contains(repo: &Repository, commit: Oid, ancestor: Oid) -> Result<bool, WorkspaceError> {
    if commit == ancestor {
        return Ok(true);
    }
    repo.graph_descendant_of(commit, ancestor)
        .context(|| format!("checking whether {commit} contains {ancestor}"))
}

/// The in-memory index of merging `theirs` into `ours`.
fn merge_index(repo: &Repository, ours: Oid, theirs: Oid) -> Result<Index, WorkspaceError> {
    let ours_commit = repo
        .find_commit(ours)
        .context(|| format!("reading commit {ours}"))?;
    let theirs_commit = repo
        .find_commit(theirs)
        .context(|| format!("reading commit {theirs}"))?;
    repo.merge_commits(&ours_commit, &theirs_commit, None)
        .context(|| format!("merging {theirs} into {ours}"))
}

/// Writes a clean merge index as a commit with parents `ours`, `theirs`, on no ref.
fn commit_index(
    repo: &Repository,
    mut index: Index,
    message: &str,
    ours: Oid,
    theirs: Oid,
) -> Result<Oid, WorkspaceError> {
    let tree_id = index
        .write_tree_to(repo)
        .context(|| format!("writing the merge tree of {ours} and {theirs}"))?;
    let tree = repo
        .find_tree(tree_id)
        .context(|| format!("reading tree {tree_id}"))?;
    let ours_commit = repo
        .find_commit(ours)
        .context(|| format!("reading commit {ours}"))?;
    let theirs_commit = repo
        .find_commit(theirs)
        .context(|| format!("reading commit {theirs}"))?;
    let signature =
        Signature::now("runbook", EMAIL).context(|| "making runbook's signature".into())?;
    repo.commit(
        None,
        &signature,
        &signature,
        message,
        &tree,
        &[&ours_commit, &theirs_commit],
    )
    .context(|| format!("committing the merge of {theirs} into {ours}"))
}

/// The conflict `index` holds, with both sides' texts.
fn conflict(
    repo: &Repository,
    index: &Index,
    ours: Oid,
    theirs: Oid,
) -> Result<Conflict, WorkspaceError> {
    let mut sides = Vec::new();
    for entry in index
        .conflicts()
        .context(|| format!("reading the conflicts of {theirs} into {ours}"))?
    {
        let entry = entry.context(|| format!("reading a conflict of {theirs} into {ours}"))?;
        let path = [&entry.our, &entry.their, &entry.ancestor]
            .into_iter()
            .flatten()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .next()
            .unwrap_or_default();
        sides.push(ConflictSide {
            path,
            base: text(repo, entry.ancestor.as_ref())?,
            ours: text(repo, entry.our.as_ref())?,
            theirs: text(repo, entry.their.as_ref())?,
        });
    }
    sides.sort_by(|a, b| a.path.cmp(&b.path));
    sides.dedup_by(|a, b| a.path == b.path);
    Ok(Conflict {
        paths: sides.iter().map(|s| s.path.clone()).collect(),
        ours,
        theirs,
        sides,
    })
}

/// The sorted conflicting paths of `index`.
fn conflict_paths(index: &Index) -> Result<Vec<String>, WorkspaceError> {
    let mut paths = Vec::new();
    for entry in index
        .conflicts()
        .context(|| "reading merge conflicts".into())?
    {
        let entry = entry.context(|| "reading a merge conflict".into())?;
        let path = [&entry.our, &entry.their, &entry.ancestor]
            .into_iter()
            .flatten()
            .map(|e| String::from_utf8_lossy(&e.path).into_owned())
            .next();
        paths.extend(path);
    }
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// Replaces every conflict in `index` by `side`'s whole file (or its absence).
fn take_side(index: &mut Index, side: Side) -> Result<(), WorkspaceError> {
    let mut chosen: Vec<(Vec<u8>, Option<IndexEntry>)> = Vec::new();
    for entry in index
        .conflicts()
        .context(|| "reading merge conflicts".into())?
    {
        let entry = entry.context(|| "reading a merge conflict".into())?;
        let path = [&entry.our, &entry.their, &entry.ancestor]
            .into_iter()
            .flatten()
            .map(|e| e.path.clone())
            .next()
            .unwrap_or_default();
        let taken = match side {
            Side::Ours => entry.our,
            Side::Theirs => entry.their,
        };
        chosen.push((path, taken));
    }
    for (path, taken) in chosen {
        let shown = String::from_utf8_lossy(&path).into_owned();
        let file = Path::new(std::ffi::OsStr::from_bytes(&path));
        index
            .remove_path(file)
            .context(|| format!("clearing the conflict on {shown}"))?;
        if let Some(mut entry) = taken {
            // Stage bits mark conflict sides; the chosen side becomes the plain entry.
            entry.flags &= !STAGE_MASK;
            index
                .add(&entry)
                .context(|| format!("taking one side of {shown}"))?;
        }
    }
    Ok(())
}

/// libgit2's `GIT_INDEX_ENTRY_STAGEMASK`.
const STAGE_MASK: u16 = 0x3000;

/// A blob's text for a conflict display, cut at [`SIDE_LIMIT`].
fn text(repo: &Repository, entry: Option<&IndexEntry>) -> Result<Option<String>, WorkspaceError> {
    let Some(entry) = entry else {
        return Ok(None);
    };
    if entry.mode == u32::from(git2::FileMode::Commit) {
        return Ok(Some(format!("Subproject commit {}", entry.id)));
    }
    let blob = repo
        .find_blob(entry.id)
        .context(|| format!("reading blob {}", entry.id))?;
    let content = blob.content();
    let cut = &content[..content.len().min(SIDE_LIMIT)];
    Ok(Some(String::from_utf8_lossy(cut).into_owned()))
}
