//! Step worktrees: creating one per step at its base, resetting it between attempts and
//! removing it.

use super::error::{GitContext, IoContext};
use super::{names, Workspace, WorkspaceError};
use crate::record::crash;
use git2::{Oid, Repository, WorktreePruneOptions};
use std::path::{Path, PathBuf};

/// A step's git worktree and the commit its changes are measured against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepTree {
    /// The step's name as the runbook spells it.
    pub step: String,
    /// The worktree's directory, `<run_dir>/worktrees/<step>`.
    pub path: PathBuf,
    /// The commit the step started from.
    pub base: Oid,
}

impl Workspace {
    /// Creates (or, if it exists, reuses as-is — resume/retries continue from its files) the step's worktree at `base`.
    pub fn step_tree(&self, step: &str, base: Oid) -> Result<StepTree, WorkspaceError> {
        let repo = self.repo()?;
        let name = names::step_worktree_name(&self.run_id, step);
        let path = self.step_tree_path(step);
        let tree = StepTree {
            step: step.to_string(),
            path: path.clone(),
            base,
        };
        if worktree_is_usable(&repo, &name, &path) {
            return Ok(tree);
        }
        let _refs = self.lock_refs();
        discard_worktree(&repo, &name, &path)?;
        repo.find_commit(base)
            .context(|| format!("creating the worktree of step {step}: no commit {base}"))?;
        let parent = self.run_dir.join("worktrees");
        std::fs::create_dir_all(&parent).io_context("creating", &parent)?;

        // libgit2 checks a worktree out on a branch; a temporary one, dropped once the
        // worktree's HEAD is detached, leaves no branch behind.
        let temporary = names::temporary_branch(&self.run_id, step);
        let reference = repo
            .reference(&temporary, base, true, "runbook: step worktree")
            .context(|| format!("creating the temporary branch {temporary}"))?;
        let added = add_unfiltered_worktree(&self.repo_root, &name, &path, &reference)
            .context(|| format!("creating the worktree {} for step {step}", path.display()));
        let detached = added.and_then(|_| {
            let worktree = Repository::open(&path)
                .context(|| format!("opening the worktree {}", path.display()))?;
            worktree
                .set_head_detached(base)
                .context(|| format!("detaching {} at {base}", path.display()))
        });
        let deleted = delete_reference(&repo, &temporary);
        detached?;
        deleted?;
        crash::reached("git:step-worktree");
        Ok(tree)
    }

    /// Resets a step tree's files to `base` (drops everything an attempt did, incl. untracked files; keeps ignored ones out of the way is fine).
    pub fn reset_step_tree(&self, tree: &StepTree) -> Result<(), WorkspaceError> {
        self.reset_step_files(tree)?;
        crash::reached("git:step-worktree-reset");
        Ok(())
    }

    /// The reset itself; `reset_step_tree` passes its crash site once it is done.
    fn reset_step_files(&self, tree: &StepTree) -> Result<(), WorkspaceError> {
        let name = names::step_worktree_name(&self.run_id, &tree.step);
        if !worktree_is_usable(&self.repo()?, &name, &tree.path) {
            // The attempt broke the worktree itself (removed its `.git`, …): start afresh.
            self.remove_step_tree(&tree.step)?;
            self.step_tree(&tree.step, tree.base)?;
            return Ok(());
        }
        let worktree = self.open_step_repo(tree)?;
        worktree
            .set_head_detached(tree.base)
            .context(|| format!("detaching {} at {}", tree.path.display(), tree.base))?;
        let base = worktree
            .find_object(tree.base, None)
            .context(|| format!("looking up commit {}", tree.base))?;
        checkout_exactly(&worktree, &base, &tree.path)?;
        // libgit2 trusts the index's stat cache; an agent that ran `git add` and then edited
        // the file within the same second can slip past it. Re-check from the files.
        let left = self.changes(tree)?;
        if left.is_empty() {
            return Ok(());
        }
        for change in &left {
            let file = tree.path.join(&change.path);
            if std::fs::symlink_metadata(&file).is_ok_and(|m| m.is_dir()) {
                std::fs::remove_dir_all(&file).io_context("removing", &file)?;
            } else if std::fs::symlink_metadata(&file).is_ok() {
                std::fs::remove_file(&file).io_context("removing", &file)?;
            }
        }
        checkout_exactly(&worktree, &base, &tree.path)
    }

    /// Removes a step's worktree (directory + git's admin entry).
    pub fn remove_step_tree(&self, step: &str) -> Result<(), WorkspaceError> {
        let repo = self.repo()?;
        let name = names::step_worktree_name(&self.run_id, step);
        let _refs = self.lock_refs();
        discard_worktree(&repo, &name, &self.step_tree_path(step))?;
        delete_reference(&repo, &names::temporary_branch(&self.run_id, step))?;
        crash::reached("git:step-worktree-removed");
        Ok(())
    }

    /// Removes every worktree of this run (run worktree too) and prunes git's admin entries; the branch stays.
    pub fn remove_all(&self) -> Result<(), WorkspaceError> {
        let repo = self.repo()?;
        let _refs = self.lock_refs();
        let run_name = names::run_worktree_name(&self.run_id);
        let step_prefix = names::step_worktree_prefix(&self.run_id);
        let listed = repo
            .worktrees()
            .context(|| format!("listing the worktrees of {}", self.repo_root.display()))?;
        for name in listed.iter().flatten() {
            if name != run_name && !name.starts_with(&step_prefix) {
                continue;
            }
            let path = match repo.find_worktree(name) {
                Ok(worktree) => worktree.path().to_path_buf(),
                Err(_) => continue,
            };
            discard_worktree(&repo, name, &path)?;
        }
        // Directories whose admin entry was already gone.
        discard_worktree(&repo, &run_name, &self.run_worktree)?;
        let steps = self.run_dir.join("worktrees");
        if steps.exists() {
            std::fs::remove_dir_all(&steps).io_context("removing", &steps)?;
        }
        let temporaries = format!("refs/heads/runbook-wt/{}/*", self.run_id);
        let leftover: Vec<String> = repo
            .references_glob(&temporaries)
            .context(|| format!("listing {temporaries}"))?
            .names()
            .filter_map(|name| name.ok().map(str::to_string))
            .collect();
        for name in leftover {
            delete_reference(&repo, &name)?;
        }
        Ok(())
    }

    /// Opens a step worktree through git's admin entry rather than the `.git` link file in
    /// it, which the agent could have rewritten to point at another repository.
    pub(crate) fn open_step_repo(&self, tree: &StepTree) -> Result<Repository, WorkspaceError> {
        let repo = self.repo()?;
        let name = names::step_worktree_name(&self.run_id, &tree.step);
        // `open_from_worktree` goes through the link file; the admin dir does not.
        let admin = super::guard::common_dir(&repo)?
            .join("worktrees")
            .join(&name);
        let what = || {
            format!(
                "opening the worktree {} of step {} (create it with step_tree first)",
                tree.path.display(),
                tree.step
            )
        };
        let worktree = Repository::open(&admin).context(what)?;
        if !worktree
            .workdir()
            .is_some_and(|dir| same_path(dir, &tree.path))
        {
            return Err(git2::Error::from_str(
                "git's entry points at another directory",
            ))
            .context(what);
        }
        Ok(worktree)
    }

    /// Removes every step worktree of this run, keeping the run's own worktree.
    pub fn remove_step_trees(&self) -> Result<(), WorkspaceError> {
        let repo = self.repo()?;
        let _refs = self.lock_refs();
        let step_prefix = names::step_worktree_prefix(&self.run_id);
        let listed = repo
            .worktrees()
            .context(|| format!("listing the worktrees of {}", self.repo_root.display()))?;
        for name in listed.iter().flatten() {
            if !name.starts_with(&step_prefix) {
                continue;
            }
            if let Ok(worktree) = repo.find_worktree(name) {
                let path = worktree.path().to_path_buf();
                discard_worktree(&repo, name, &path)?;
            }
        }
        let steps = self.run_dir.join("worktrees");
        if steps.exists() {
            std::fs::remove_dir_all(&steps).io_context("removing", &steps)?;
        }
        Ok(())
    }

    fn step_tree_path(&self, step: &str) -> PathBuf {
        self.run_dir.join("worktrees").join(names::slug(step))
    }
}

/// Checks `target` out over everything in the worktree, untracked files included.
fn checkout_exactly(
    worktree: &Repository,
    target: &git2::Object<'_>,
    path: &Path,
) -> Result<(), WorkspaceError> {
    let mut checkout = git2::build::CheckoutBuilder::new();
    checkout
        .force()
        .remove_untracked(true)
        .disable_filters(true);
    worktree
        .checkout_tree(target, Some(&mut checkout))
        .context(|| format!("checking {} out in {}", target.id(), path.display()))
}

/// Whether git knows worktree `name` at `path` and its directory is intact.
pub(crate) fn worktree_is_usable(repo: &Repository, name: &str, path: &Path) -> bool {
    let Ok(worktree) = repo.find_worktree(name) else {
        return false;
    };
    if worktree.validate().is_err() || !path.join(".git").is_file() {
        return false;
    }
    same_path(worktree.path(), path)
}

/// Removes worktree `name`'s directory at `path` and git's admin entry, whichever exist.
pub(crate) fn discard_worktree(
    repo: &Repository,
    name: &str,
    path: &Path,
) -> Result<(), WorkspaceError> {
    if std::fs::symlink_metadata(path).is_ok() {
        std::fs::remove_dir_all(path).io_context("removing worktree", path)?;
    }
    if let Ok(worktree) = repo.find_worktree(name) {
        let mut prune = WorktreePruneOptions::new();
        prune.valid(true).locked(true);
        worktree
            .prune(Some(&mut prune))
            .context(|| format!("pruning git's entry for worktree {name}"))?;
    }
    // A worktree whose creation a crash cut short has an admin directory git does not
    // recognise as a worktree (no gitdir file yet), and that blocks creating it again.
    let admin = super::guard::common_dir(repo)?.join("worktrees").join(name);
    if admin.exists() {
        std::fs::remove_dir_all(&admin).io_context("removing git's entry", &admin)?;
    }
    Ok(())
}

/// Deletes a reference if it exists.
fn delete_reference(repo: &Repository, name: &str) -> Result<(), WorkspaceError> {
    match repo.find_reference(name) {
        Ok(mut reference) => reference
            .delete()
            .context(|| format!("deleting reference {name}")),
        Err(_) => Ok(()),
    }
}

/// Compares paths after resolving symlinks (temporary directories often sit behind one).
fn same_path(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    canonical(a) == canonical(b)
}

/// The worktrees of `repo_root` whose directory lies under `dir` (a run directory).
pub fn worktrees_under(repo_root: &Path, dir: &Path) -> Result<Vec<PathBuf>, WorkspaceError> {
    Ok(listed_under(repo_root, dir)?
        .into_iter()
        .map(|(_, path)| path)
        .collect())
}

/// Removes every worktree under `dir` (directories and git's admin entries); returns how
/// many there were. Branches are left alone.
pub fn remove_worktrees_under(repo_root: &Path, dir: &Path) -> Result<usize, WorkspaceError> {
    let repo = super::open_repo(repo_root)?;
    let found = listed_under(repo_root, dir)?;
    for (name, path) in &found {
        discard_worktree(&repo, name, path)?;
    }
    let steps = dir.join("worktrees");
    if steps.exists() {
        std::fs::remove_dir_all(&steps).io_context("removing", &steps)?;
    }
    Ok(found.len())
}

fn listed_under(repo_root: &Path, dir: &Path) -> Result<Vec<(String, PathBuf)>, WorkspaceError> {
    let repo = super::open_repo(repo_root)?;
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    let listed = repo
        .worktrees()
        .context(|| format!("listing the worktrees of {}", repo_root.display()))?;
    let mut out = Vec::new();
    for name in listed.iter().flatten() {
        if let Ok(worktree) = repo.find_worktree(name) {
            let path = worktree.path().to_path_buf();
            let resolved = path.canonicalize().unwrap_or_else(|_| path.clone());
            if resolved.starts_with(&dir) || path.starts_with(&dir) {
                out.push((name.to_string(), path));
            }
        }
    }
    Ok(out)
}

/// `git worktree add` whose checkout applies no filters: files are written exactly as
/// stored, the way step commits store them (no smudge and clean asymmetry), and libgit2
/// skips its per-file `.gitattributes` lookup, which resolves every directory of the
/// (deep) worktree path with `realpath` and was most of a step worktree's checkout time.
/// git2 does not expose a worktree add's checkout options, hence the raw call.
pub(crate) fn add_unfiltered_worktree(
    repo_root: &Path,
    name: &str,
    path: &Path,
    reference: &git2::Reference<'_>,
) -> Result<(), git2::Error> {
    use std::os::unix::ffi::OsStrExt;
    let c = |bytes: &[u8]| {
        std::ffi::CString::new(bytes)
            .map_err(|_| git2::Error::from_str("a path or name contains a NUL byte"))
    };
    let root = c(repo_root.as_os_str().as_bytes())?;
    let name = c(name.as_bytes())?;
    let path = c(path.as_os_str().as_bytes())?;
    let mut options = git2::WorktreeAddOptions::new();
    options.reference(Some(reference));
    // SAFETY: `raw()` points at the initialised options struct owned by `options`, which
    // outlives this copy; the copy's `reference` pointer stays valid as long as
    // `reference` does, which outlives the call below.
    let mut raw = unsafe { std::ptr::read(options.raw()) };
    raw.checkout_options.disable_filters = 1;
    let mut repo: *mut libgit2_sys::git_repository = std::ptr::null_mut();
    // SAFETY: libgit2 is initialised (the caller opened the repository through git2);
    // every pointer passed is valid for the call, and what libgit2 allocates is freed
    // exactly once below.
    unsafe {
        let rc = libgit2_sys::git_repository_open(&mut repo, root.as_ptr());
        if rc < 0 {
            return Err(git2::Error::last_error(rc)
                .unwrap_or_else(|| git2::Error::from_str("git_repository_open failed")));
        }
        let mut worktree: *mut libgit2_sys::git_worktree = std::ptr::null_mut();
        let rc =
            libgit2_sys::git_worktree_add(&mut worktree, repo, name.as_ptr(), path.as_ptr(), &raw);
        let result = if rc < 0 {
            Err(git2::Error::last_error(rc)
                .unwrap_or_else(|| git2::Error::from_str("git_worktree_add failed")))
        } else {
            Ok(())
        };
        if !worktree.is_null() {
            libgit2_sys::git_worktree_free(worktree);
        }
        libgit2_sys::git_repository_free(repo);
        result
    }
}
