//! From permission globs to the directories the OS layers grant. The kernel knows paths,
//! not globs: a glob grants its longest literal directory, and the exact glob is held
//! by the write check before commit.

use std::path::{Component, Path, PathBuf};

/// Whether a path component has glob syntax in it.
fn is_glob(part: &str) -> bool {
    part.contains(['*', '?', '[', '{', '\\'])
}

/// The directory (or file) a glob can reach at most, resolved against `base` (the
/// worktree), or against `home` for `~/…` and the root for `/…`. `None` for a pattern
/// that is not a path the sandbox can resolve (`~` without a home).
pub fn reach(glob: &str, base: &Path, home: Option<&Path>) -> Option<PathBuf> {
    let text = glob.trim_start_matches("./");
    let (mut root, rest) = if let Some(rest) = text.strip_prefix("~/") {
        (home?.to_path_buf(), rest)
    } else if text == "~" {
        return home.map(Path::to_path_buf);
    } else if let Some(rest) = text.strip_prefix('/') {
        (PathBuf::from("/"), rest)
    } else {
        (base.to_path_buf(), text)
    };
    let parts: Vec<&str> = rest.split('/').filter(|p| !p.is_empty()).collect();
    let literal = parts.iter().take_while(|p| !is_glob(p)).count();
    for part in &parts[..literal] {
        if *part == ".." {
            // Leaving the base through `..` is never granted by a repository glob.
            return None;
        }
        root.push(part);
    }
    // A fully literal pattern names one file or directory; it may not exist yet,
    // and creating it needs its directory.
    if literal == parts.len() && !root.is_dir() && literal > 0 {
        root.pop();
    }
    Some(root)
}

/// The smallest set of roots covering `paths`: a path under another one is dropped.
pub fn minimal(mut paths: Vec<PathBuf>) -> Vec<PathBuf> {
    paths.sort();
    paths.dedup();
    let mut out: Vec<PathBuf> = Vec::new();
    for p in paths {
        if !out.iter().any(|r| p.starts_with(r)) {
            out.push(p);
        }
    }
    out
}

/// `path` made absolute and free of `.`/`..` without touching the filesystem.
pub fn lexical(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_glob_reaches_its_literal_directory() {
        let d = tempfile::tempdir().unwrap();
        let b = d.path();
        std::fs::create_dir_all(b.join("src/deep")).unwrap();
        assert_eq!(reach("src/**", b, None).unwrap(), b.join("src"));
        assert_eq!(
            reach("./src/deep/*.rs", b, None).unwrap(),
            b.join("src/deep")
        );
        assert_eq!(reach("**", b, None).unwrap(), b);
        assert_eq!(reach("*.md", b, None).unwrap(), b);
        // A file, existing or not, is reached through its directory.
        assert_eq!(reach("Cargo.toml", b, None).unwrap(), b);
        assert_eq!(reach("src/new.rs", b, None).unwrap(), b.join("src"));
        // A literal directory is itself.
        assert_eq!(reach("src/deep", b, None).unwrap(), b.join("src/deep"));
        assert_eq!(
            reach("~/.cargo/**", b, Some(Path::new("/home/u"))).unwrap(),
            PathBuf::from("/home/u/.cargo")
        );
        assert_eq!(reach("~/.cargo/**", b, None), None);
        assert_eq!(
            reach("/opt/tool/**", b, None).unwrap(),
            PathBuf::from("/opt/tool")
        );
        assert_eq!(reach("../outside/**", b, None), None);
    }

    #[test]
    fn minimal_drops_nested_roots() {
        let r = minimal(vec![
            PathBuf::from("/w/src"),
            PathBuf::from("/w"),
            PathBuf::from("/x"),
            PathBuf::from("/w/src/a"),
            PathBuf::from("/x"),
        ]);
        assert_eq!(r, vec![PathBuf::from("/w"), PathBuf::from("/x")]);
        // Prefixes are by component, not by string.
        let r = minimal(vec![PathBuf::from("/w"), PathBuf::from("/wx")]);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn lexical_resolves_dots() {
        assert_eq!(lexical(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
