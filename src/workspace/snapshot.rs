//! A tree object made from the files on disk in a step worktree: what the step changed is
//! this tree against the base tree, whatever the agent did to the worktree's HEAD or index.

use super::error::{GitContext, IoContext};
use super::WorkspaceError;
use git2::{FileMode, IndexEntry, IndexTime, ObjectType, Oid, Repository, Tree, TreeWalkMode};
use std::collections::{HashMap, HashSet};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

/// The worktree's files as a tree, plus what a tree cannot hold.
pub(crate) struct Snapshot {
    /// The tree of every tracked or untracked, not ignored file.
    pub tree: Oid,
    /// Paths under a nested `.git` (or an odd `.git` link file): never committable, always
    /// a violation.
    pub git_paths: Vec<String>,
}

/// One entry of the base tree.
struct BaseEntry {
    mode: i32,
    id: Oid,
}

/// What the walk needs to know about the base and the repository.
struct Walk<'a> {
    repo: &'a Repository,
    odb: git2::Odb<'a>,
    base: HashMap<Vec<u8>, BaseEntry>,
    /// Every directory holding a base entry: an ignored directory is still walked if so.
    base_dirs: HashSet<Vec<u8>>,
    /// `core.fileMode`: when false, the executable bit on disk means nothing.
    file_mode: bool,
    index: git2::Index,
    git_paths: Vec<String>,
}

/// Builds the tree of the files under `root` (the worktree `repo` works in).
pub(crate) fn snapshot(
    repo: &Repository,
    root: &Path,
    base: &Tree<'_>,
) -> Result<Snapshot, WorkspaceError> {
    let mut base_entries = HashMap::new();
    let mut base_dirs = HashSet::new();
    base.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let mut path = dir.as_bytes().to_vec();
        path.extend_from_slice(entry.name_bytes());
        if entry.kind() == Some(ObjectType::Tree) {
            base_dirs.insert(path);
        } else {
            base_entries.insert(
                path,
                BaseEntry {
                    mode: entry.filemode(),
                    id: entry.id(),
                },
            );
        }
        git2::TreeWalkResult::Ok
    })
    .context(|| format!("reading tree {}", base.id()))?;
    let file_mode = repo
        .config()
        .and_then(|c| c.get_bool("core.filemode"))
        .unwrap_or(true);
    let mut walk = Walk {
        repo,
        odb: repo
            .odb()
            .context(|| "opening the object database".into())?,
        base: base_entries,
        base_dirs,
        file_mode,
        index: git2::Index::new().context(|| "creating an in-memory index".into())?,
        git_paths: Vec::new(),
    };
    check_git_link(root, &mut walk.git_paths)?;
    walk.directory(root, &[])?;
    let tree = walk
        .index
        .write_tree_to(repo)
        .context(|| format!("writing the tree of {}", root.display()))?;
    Ok(Snapshot {
        tree,
        git_paths: walk.git_paths,
    })
}

/// The worktree's own `.git` must stay the link file git wrote; anything else is an agent
/// tampering with git's view of the worktree.
fn check_git_link(root: &Path, git_paths: &mut Vec<String>) -> Result<(), WorkspaceError> {
    let link = root.join(".git");
    let intact = std::fs::symlink_metadata(&link).is_ok_and(|m| m.is_file())
        && std::fs::read(&link)
            .io_context("reading", &link)?
            .starts_with(b"gitdir: ");
    if !intact {
        git_paths.push(".git".to_string());
    }
    Ok(())
}

impl Walk<'_> {
    fn directory(&mut self, dir: &Path, prefix: &[u8]) -> Result<(), WorkspaceError> {
        let entries = std::fs::read_dir(dir).io_context("reading directory", dir)?;
        for entry in entries {
            let entry = entry.io_context("reading directory", dir)?;
            let name = entry.file_name();
            let mut path = prefix.to_vec();
            if !path.is_empty() {
                path.push(b'/');
            }
            path.extend_from_slice(name.as_bytes());
            let full = entry.path();
            if name.as_bytes() == b".git" {
                // The root's link file is git's own; a nested one is a repository
                // inside the tree that git cannot hold.
                if !prefix.is_empty() {
                    self.git_paths.push(lossy(&path));
                }
                continue;
            }
            let meta = std::fs::symlink_metadata(&full).io_context("reading", &full)?;
            let kind = meta.file_type();
            if kind.is_dir() {
                self.subdirectory(&full, path)?;
            } else if kind.is_symlink() {
                if self.skipped(&path)? {
                    continue;
                }
                let target = std::fs::read_link(&full).io_context("reading symlink", &full)?;
                let id = self.blob(target.as_os_str().as_bytes())?;
                self.add(path, u32::from(FileMode::Link), id)?;
            } else if kind.is_file() {
                if self.skipped(&path)? {
                    continue;
                }
                let data = std::fs::read(&full).io_context("reading", &full)?;
                let id = self.blob(&data)?;
                let mode = self.file_mode_of(&path, meta.permissions().mode());
                self.add(path, mode, id)?;
            }
            // Sockets, fifos and devices have no git representation.
        }
        Ok(())
    }

    fn subdirectory(&mut self, full: &Path, path: Vec<u8>) -> Result<(), WorkspaceError> {
        if let Some(base) = self.base.get(&path) {
            if base.mode == i32::from(FileMode::Commit) {
                // A submodule: its checkout is not ours to read; keep the recorded commit.
                let id = base.id;
                return self.add(path, u32::from(FileMode::Commit), id);
            }
        }
        if !self.base_dirs.contains(&path) && self.ignored(&path)? {
            return Ok(());
        }
        self.directory(full, &path)
    }

    /// Whether an untracked path is ignored (a path in the base is never ignored, as in git).
    fn skipped(&self, path: &[u8]) -> Result<bool, WorkspaceError> {
        if self.base.contains_key(path) {
            return Ok(false);
        }
        self.ignored(path)
    }

    fn ignored(&self, path: &[u8]) -> Result<bool, WorkspaceError> {
        let relative = Path::new(std::ffi::OsStr::from_bytes(path));
        self.repo
            .is_path_ignored(relative)
            .context(|| format!("checking whether {} is ignored", relative.display()))
    }

    fn file_mode_of(&self, path: &[u8], disk_mode: u32) -> u32 {
        if !self.file_mode {
            if let Some(base) = self.base.get(path) {
                if base.mode == i32::from(FileMode::BlobExecutable) {
                    return u32::from(FileMode::BlobExecutable);
                }
            }
            return u32::from(FileMode::Blob);
        }
        if disk_mode & 0o100 != 0 {
            u32::from(FileMode::BlobExecutable)
        } else {
            u32::from(FileMode::Blob)
        }
    }

    /// Stores `data` as a blob unless the object database already has it.
    fn blob(&self, data: &[u8]) -> Result<Oid, WorkspaceError> {
        let id = Oid::hash_object(ObjectType::Blob, data).context(|| "hashing a file".into())?;
        if !self.odb.exists(id) {
            self.odb
                .write(ObjectType::Blob, data)
                .context(|| format!("writing blob {id}"))?;
        }
        Ok(id)
    }

    fn add(&mut self, path: Vec<u8>, mode: u32, id: Oid) -> Result<(), WorkspaceError> {
        let shown = lossy(&path);
        let entry = IndexEntry {
            ctime: IndexTime::new(0, 0),
            mtime: IndexTime::new(0, 0),
            dev: 0,
            ino: 0,
            mode,
            uid: 0,
            gid: 0,
            file_size: 0,
            id,
            flags: 0,
            flags_extended: 0,
            path,
        };
        // libgit2 refuses names git itself would misread as `.git` (`.GIT`, `git~1`, …):
        // report them like any other path inside git's directory.
        if self.index.add(&entry).is_err() {
            self.git_paths.push(shown);
        }
        Ok(())
    }
}

/// A git path as text for messages and `Change`s.
pub(crate) fn lossy(path: &[u8]) -> String {
    String::from_utf8_lossy(path).into_owned()
}
