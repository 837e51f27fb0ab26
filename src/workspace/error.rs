//! The one error type of the git layer.

use std::io;
use std::path::PathBuf;

/// Why a workspace operation failed; every message names the repository, path or commit.
#[derive(Debug, thiserror::Error)]
pub enum WorkspaceError {
    /// libgit2 refused an operation.
    #[error("git: {what}: {source}")]
    Git {
        /// What was being done, naming the path, ref or commit.
        what: String,
        /// libgit2's error.
        #[source]
        source: git2::Error,
    },
    /// A file or directory could not be read, written or removed.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The repository has no commit yet, so there is nothing to branch from.
    #[error("the repository at {} has no commit yet (HEAD is unborn): commit something first", .repo.display())]
    UnbornHead {
        /// The repository's working directory.
        repo: PathBuf,
    },
    /// The repository has no working directory.
    #[error("{} is a bare repository: runbook needs a repository with a working tree", .repo.display())]
    Bare {
        /// The repository's git directory.
        repo: PathBuf,
    },
    /// The run branch to create is already there.
    #[error("branch {branch} already exists in {}: pick another run id or delete the branch (git branch -D {branch})", .repo.display())]
    BranchExists {
        /// The branch's short name.
        branch: String,
        /// The repository's working directory.
        repo: PathBuf,
    },
    /// The run branch to reopen is gone.
    #[error("branch {branch} does not exist in {}: the run cannot be resumed without it", .repo.display())]
    BranchMissing {
        /// The branch's short name.
        branch: String,
        /// The repository's working directory.
        repo: PathBuf,
    },
    /// A name cannot be made into a git branch name.
    #[error("{name:?} cannot be used in a git branch name: use letters, digits, '-', '_' or '.'")]
    InvalidName {
        /// The offending runbook name or run id.
        name: String,
    },
    /// The run branch moved since the conflict was computed and the new merge conflicts elsewhere.
    #[error("the run branch moved since the conflict on {paths:?} was shown and merging {theirs} now also conflicts on {new_paths:?}: merge again and decide on the new conflict")]
    StaleConflict {
        /// The paths the decision was about.
        paths: Vec<String>,
        /// The step commit being merged.
        theirs: git2::Oid,
        /// Paths that conflict now but were not part of the decision.
        new_paths: Vec<String>,
    },
}

/// Adds what was being done to a libgit2 error.
pub(crate) trait GitContext<T> {
    /// Wraps the error with `what`, computed only on failure.
    fn context(self, what: impl FnOnce() -> String) -> Result<T, WorkspaceError>;
}

impl<T> GitContext<T> for Result<T, git2::Error> {
    fn context(self, what: impl FnOnce() -> String) -> Result<T, WorkspaceError> {
        self.map_err(|source| WorkspaceError::Git {
            what: what(),
            source,
        })
    }
}

/// Adds what was being done and the path to an I/O error.
pub(crate) trait IoContext<T> {
    /// Wraps the error with `what` and `path`.
    fn io_context(self, what: &'static str, path: &std::path::Path) -> Result<T, WorkspaceError>;
}

impl<T> IoContext<T> for Result<T, io::Error> {
    fn io_context(self, what: &'static str, path: &std::path::Path) -> Result<T, WorkspaceError> {
        self.map_err(|source| WorkspaceError::Io {
            what,
            path: path.to_path_buf(),
            source,
        })
    }
}
