//! The git layer: a run's branch, one git worktree per step, step commits with trailers,
//! three-way merges into the run branch, and the write-permission checks on what a step
//! changed.
//!
//! The user's working tree, index and HEAD are never touched (except by
//! [`fast_forward_user`], which the user asks for). A run works on the branch
//! `runbook/<runbook-name>/<run-id>`, checked out in `<run_dir>/worktree`; each step works
//! in `<run_dir>/worktrees/<step>`, a real git worktree checked out detached at the step's
//! base, so agents can use git inside it. What a step changed is always computed from the
//! files on disk against the step's base tree, never from the worktree's HEAD or index,
//! which the agent may have moved. See `docs/workspace-notes.md`.
//!
//! Each operation a resume depends on is a crash site of `record::crash`, passed once the
//! operation is complete: `git:run-branch`, `git:run-worktree`, `git:step-worktree`,
//! `git:step-worktree-reset`, `git:step-worktree-removed`, `git:step-commit`, `git:merge`,
//! `git:resolve` and `git:branch-reset`.

mod change;
mod commit;
mod error;
mod guard;
mod merge;
mod names;
mod snapshot;
mod step_tree;
mod user;
mod violation;

#[cfg(test)]
mod tests;

pub use change::{Change, ChangeKind};
pub use commit::{StepCommit, Trailers};
pub use error::WorkspaceError;
pub use guard::GitGuard;
pub use merge::{Conflict, ConflictSide, MergeOutcome, Side};
pub use step_tree::{remove_worktrees_under, worktrees_under, StepTree};
pub use user::fast_forward_user;
pub use violation::Violation;

use crate::record::crash;
use error::{GitContext, IoContext};
use git2::{ErrorCode, Oid, Repository, ResetType};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// One run's git state: its branch, its base commit and its worktrees.
#[derive(Debug)]
pub struct Workspace {
    /// The user's repository (its working directory root).
    repo_root: PathBuf,
    /// The run directory, absolute, holding the worktrees.
    run_dir: PathBuf,
    /// The run id, the last component of the branch name.
    run_id: String,
    /// The run branch's short name, `runbook/<name>/<run-id>`.
    branch: String,
    /// The user's HEAD when the run started.
    base: Oid,
    /// `<run_dir>/worktree`, where the run branch is checked out.
    run_worktree: PathBuf,
    /// Serializes everything that moves the run branch: parallel steps merge concurrently.
    branch_lock: Mutex<()>,
    /// Serializes creating and deleting the temporary branches of step worktrees:
    /// libgit2 removes a reflog directory that a ref deletion leaves empty, which races
    /// with a parallel step creating its own ref in that directory.
    refs_lock: Mutex<()>,
    /// `core.hooksPath` outside the common dir as the user's config had it when this
    /// process took the run over: the guard watches there, never where a step's edit of
    /// the config points (any directory; restoring it would rewrite what others wrote).
    trusted_hooks: Option<PathBuf>,
    /// The shared git files when this process took the run over.
    baseline: guard::GitGuard,
}

impl Workspace {
    /// Finds the repository containing `dir`; Ok(None) outside git.
    pub fn discover(dir: &Path) -> Result<Option<PathBuf>, WorkspaceError> {
        let repo = match Repository::discover(dir) {
            Ok(repo) => repo,
            Err(e) if e.code() == ErrorCode::NotFound => return Ok(None),
            Err(e) => {
                return Err(e).context(|| format!("looking for a repository at {}", dir.display()))
            }
        };
        match repo.workdir() {
            Some(workdir) => Ok(Some(clean_dir(workdir))),
            None => Err(WorkspaceError::Bare {
                repo: repo.path().to_path_buf(),
            }),
        }
    }

    /// Creates the run branch from HEAD (error if HEAD is unborn: "commit something first") and the run worktree.
    pub fn create(
        repo_root: &Path,
        run_dir: &Path,
        runbook_name: &str,
        run_id: &str,
    ) -> Result<Workspace, WorkspaceError> {
        let repo = open_repo(repo_root)?;
        let base = head_commit(&repo, repo_root)?;
        let branch = names::run_branch(runbook_name, run_id)?;
        let full = format!("refs/heads/{branch}");
        if repo.find_reference(&full).is_ok() {
            return Err(WorkspaceError::BranchExists {
                branch,
                repo: repo_root.to_path_buf(),
            });
        }
        // force = false: a concurrent creator of the same branch loses instead of overwriting.
        repo.reference(
            &full,
            base,
            false,
            &format!("runbook: run {run_id} started"),
        )
        .context(|| format!("creating branch {branch} at {base}"))?;
        crash::reached("git:run-branch");
        let workspace = Workspace::new(repo_root, run_dir, run_id, branch, base)?;
        workspace.ensure_run_worktree(&repo)?;
        Ok(workspace)
    }

    /// Re-opens an existing run's workspace (resume): branch must exist; recreates the run worktree if it was removed.
    pub fn open(
        repo_root: &Path,
        run_dir: &Path,
        branch: &str,
        base: Oid,
    ) -> Result<Workspace, WorkspaceError> {
        let repo = open_repo(repo_root)?;
        let branch = branch
            .strip_prefix("refs/heads/")
            .unwrap_or(branch)
            .to_string();
        let full = format!("refs/heads/{branch}");
        let tip = match repo.refname_to_id(&full) {
            Ok(tip) => tip,
            Err(e) if e.code() == ErrorCode::NotFound || e.code() == ErrorCode::InvalidSpec => {
                return Err(WorkspaceError::BranchMissing {
                    branch,
                    repo: repo_root.to_path_buf(),
                })
            }
            Err(e) => return Err(e).context(|| format!("reading branch {branch}")),
        };
        let run_id = branch.rsplit('/').next().unwrap_or(&branch).to_string();
        clear_stale_locks(&repo, &branch, &run_id)?;
        let workspace = Workspace::new(repo_root, run_dir, &run_id, branch, base)?;
        workspace.drop_half_made_step_trees(&repo)?;
        workspace.ensure_run_worktree(&repo)?;
        // A crash between updating the files and the ref leaves them apart; realign.
        workspace.sync_run_worktree(tip)?;
        Ok(workspace)
    }

    fn new(
        repo_root: &Path,
        run_dir: &Path,
        run_id: &str,
        branch: String,
        base: Oid,
    ) -> Result<Workspace, WorkspaceError> {
        std::fs::create_dir_all(run_dir).io_context("creating run directory", run_dir)?;
        let run_dir = run_dir
            .canonicalize()
            .io_context("resolving run directory", run_dir)?;
        let trusted_hooks = guard::outside_hooks(&open_repo(repo_root)?, repo_root)?;
        let mut workspace = Workspace {
            trusted_hooks,
            baseline: guard::GitGuard::default(),
            repo_root: repo_root.to_path_buf(),
            run_worktree: run_dir.join("worktree"),
            run_dir,
            run_id: run_id.to_string(),
            branch,
            base,
            branch_lock: Mutex::new(()),
            refs_lock: Mutex::new(()),
        };
        workspace.baseline = workspace.baseline_guard()?;
        Ok(workspace)
    }

    /// The run branch's short name (`runbook/<name>/<run-id>`); `open` accepts it back.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The user's HEAD commit the run started from.
    pub fn base(&self) -> Oid {
        self.base
    }

    /// The run branch's current commit.
    pub fn tip(&self) -> Result<Oid, WorkspaceError> {
        let repo = self.repo()?;
        repo.refname_to_id(&self.branch_ref())
            .context(|| format!("reading branch {}", self.branch))
    }

    /// The user's repository (its working directory root).
    pub fn repo_root(&self) -> &Path {
        &self.repo_root
    }

    /// The first parent of `commit`.
    pub fn parent(&self, commit: Oid) -> Result<Oid, WorkspaceError> {
        let repo = self.repo()?;
        let c = repo
            .find_commit(commit)
            .context(|| format!("looking up commit {commit}"))?;
        c.parent_id(0)
            .context(|| format!("commit {commit} has no parent"))
    }

    /// Where the run branch is checked out (`<run_dir>/worktree`).
    pub fn run_worktree(&self) -> &Path {
        &self.run_worktree
    }

    /// Moves the run branch to `to` (rollback / resume to the journal's last recorded tip) and updates the run worktree. Never touches any other ref.
    pub fn reset_branch(&self, to: Oid) -> Result<(), WorkspaceError> {
        let _guard = self.lock_branch();
        let repo = self.repo()?;
        repo.find_commit(to)
            .context(|| format!("resetting {} to {to}: no such commit", self.branch))?;
        self.sync_run_worktree(to)?;
        crash::reached("git:branch-reset");
        Ok(())
    }

    /// Opens the user's repository; a fresh handle per call keeps `Workspace` `Sync`.
    fn repo(&self) -> Result<Repository, WorkspaceError> {
        open_repo(&self.repo_root)
    }

    fn branch_ref(&self) -> String {
        format!("refs/heads/{}", self.branch)
    }

    fn lock_refs(&self) -> std::sync::MutexGuard<'_, ()> {
        self.refs_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn lock_branch(&self) -> std::sync::MutexGuard<'_, ()> {
        // A panic while holding the lock leaves no half-state the lock protects: the ref
        // is updated atomically by git. So a poisoned lock is still usable.
        self.branch_lock
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Removes git's admin entry of every step worktree of this run that a killed
    /// interpreter left unusable (half-made: git cannot validate it, or its checkout has
    /// no `.git`). Resumed steps recreate their worktree; left in place, the entry's files
    /// would change under a parallel step's guard snapshot and read as that step's agent
    /// writing to `.git`. Only the admin entry goes: its `gitdir` may be torn, so the
    /// directory it names is not trusted; the step's own worktree path is cleared when
    /// the step recreates it.
    fn drop_half_made_step_trees(&self, repo: &Repository) -> Result<(), WorkspaceError> {
        let admin = guard::common_dir(repo)?.join("worktrees");
        let prefix = names::step_worktree_prefix(&self.run_id);
        let Ok(entries) = std::fs::read_dir(&admin) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(slug) = name.strip_prefix(&prefix) else {
                continue;
            };
            let path = self.run_dir.join("worktrees").join(slug);
            if !step_tree::worktree_is_usable(repo, &name, &path) {
                let entry = entry.path();
                std::fs::remove_dir_all(&entry).io_context("removing git's entry", &entry)?;
            }
        }
        Ok(())
    }

    /// Makes sure the run worktree exists and is registered, creating it if needed.
    fn ensure_run_worktree(&self, repo: &Repository) -> Result<(), WorkspaceError> {
        let name = names::run_worktree_name(&self.run_id);
        if step_tree::worktree_is_usable(repo, &name, &self.run_worktree) {
            return Ok(());
        }
        step_tree::discard_worktree(repo, &name, &self.run_worktree)?;
        let reference = repo
            .find_reference(&self.branch_ref())
            .context(|| format!("reading branch {}", self.branch))?;
        step_tree::add_unfiltered_worktree(&self.repo_root, &name, &self.run_worktree, &reference)
            .context(|| {
                format!(
                    "creating the run worktree {} for {} (is the branch checked out elsewhere?)",
                    self.run_worktree.display(),
                    self.branch
                )
            })?;
        crash::reached("git:run-worktree");
        Ok(())
    }

    /// Moves the run branch to `to` and makes the run worktree's files follow.
    fn sync_run_worktree(&self, to: Oid) -> Result<(), WorkspaceError> {
        self.ensure_run_worktree(&self.repo()?)?;
        let worktree = Repository::open(&self.run_worktree)
            .context(|| format!("opening the run worktree {}", self.run_worktree.display()))?;
        // If someone switched the run worktree to another branch, a hard reset would move
        // that branch: point HEAD back at the run branch first.
        worktree.set_head(&self.branch_ref()).context(|| {
            format!(
                "pointing {} at {}",
                self.run_worktree.display(),
                self.branch
            )
        })?;
        let commit = worktree
            .find_object(to, Some(git2::ObjectType::Commit))
            .context(|| format!("looking up commit {to}"))?;
        let mut checkout = git2::build::CheckoutBuilder::new();
        // Files as stored, like step worktrees (see `add_unfiltered_worktree`).
        checkout.force().disable_filters(true);
        worktree
            .reset(&commit, ResetType::Hard, Some(&mut checkout))
            .context(|| format!("moving {} to {to}", self.branch))
    }
}

/// Opens the repository whose working directory is `root`.
/// Removes the lock files a killed interpreter left on this run's own refs and worktrees.
/// Only the process holding the run's lock re-opens its workspace, and nothing but that
/// process writes these refs, so a lock file here can only be a dead one's; git would
/// otherwise refuse every later update ("failed to lock file").
fn clear_stale_locks(repo: &Repository, branch: &str, run_id: &str) -> Result<(), WorkspaceError> {
    let common = guard::common_dir(repo)?;
    let mut stale = vec![common.join(format!("refs/heads/{branch}.lock"))];
    let temporaries = common.join("refs/heads/runbook-wt").join(run_id);
    if let Ok(entries) = std::fs::read_dir(&temporaries) {
        stale.extend(entries.flatten().map(|e| e.path()));
    }
    let run_worktree = names::run_worktree_name(run_id);
    let step_prefix = names::step_worktree_prefix(run_id);
    if let Ok(entries) = std::fs::read_dir(common.join("worktrees")) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != run_worktree && !name.starts_with(&step_prefix) {
                continue;
            }
            if let Ok(files) = std::fs::read_dir(entry.path()) {
                stale.extend(files.flatten().map(|f| f.path()));
            }
        }
    }
    for path in stale {
        if path.extension().is_some_and(|e| e == "lock") && path.is_file() {
            std::fs::remove_file(&path).io_context("removing the stale lock", &path)?;
        }
    }
    Ok(())
}

fn open_repo(root: &Path) -> Result<Repository, WorkspaceError> {
    let repo = Repository::open(root)
        .context(|| format!("opening the repository at {}", root.display()))?;
    if repo.is_bare() {
        return Err(WorkspaceError::Bare {
            repo: repo.path().to_path_buf(),
        });
    }
    Ok(repo)
}

/// HEAD's commit, or `UnbornHead` for a repository without commits.
fn head_commit(repo: &Repository, root: &Path) -> Result<Oid, WorkspaceError> {
    let head = match repo.head() {
        Ok(head) => head,
        Err(e) if e.code() == ErrorCode::UnbornBranch || e.code() == ErrorCode::NotFound => {
            return Err(WorkspaceError::UnbornHead {
                repo: root.to_path_buf(),
            })
        }
        Err(e) => return Err(e).context(|| format!("reading HEAD of {}", root.display())),
    };
    let commit = head
        .peel_to_commit()
        .context(|| format!("reading HEAD's commit in {}", root.display()))?;
    Ok(commit.id())
}

/// libgit2 reports work directories with a trailing slash; callers join onto them.
fn clean_dir(dir: &Path) -> PathBuf {
    dir.components().collect()
}
