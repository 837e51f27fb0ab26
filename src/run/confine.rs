//! The sandbox of one step attempt: its agent's permissions as paths, and the programs
//! its lines start checked against `exec` before anything is spawned.

use super::Session;
use crate::ir::{Agent, Network};
use crate::sandbox::policy::{lexical, minimal, reach};
use crate::sandbox::{Net, Policy, Prepared};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The variable of `base_env` named `name`.
fn var<'a>(session: &'a Session, name: &str) -> Option<&'a str> {
    session
        .base_env
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Where `program` is: as given when it has a slash (against `cwd`), else on the PATH.
fn locate(program: &str, cwd: &Path, path_dirs: &[PathBuf]) -> Option<PathBuf> {
    if program.contains('/') {
        return Some(lexical(&cwd.join(program)));
    }
    path_dirs
        .iter()
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// What a program needs to read besides itself: a symlink's target, and for an npm
/// package (the CLI agents) the whole `node_modules` it lives in, where its own
/// dependencies and platform binaries are.
fn program_reads(program: &Path) -> Vec<PathBuf> {
    let mut out = vec![program.to_path_buf()];
    let Ok(real) = std::fs::canonicalize(program) else {
        return out;
    };
    let top_modules = real
        .ancestors()
        .filter(|a| a.file_name().is_some_and(|n| n == "node_modules"))
        .last()
        .map(Path::to_path_buf);
    // A Python virtual environment (pip, pipx and uv install aider in one): all of it,
    // and the installation its `python` comes from.
    let venv = real
        .parent()
        .and_then(Path::parent)
        .filter(|v| v.join("pyvenv.cfg").is_file())
        .map(Path::to_path_buf);
    if let Some(venv) = venv {
        out.extend(python_home(&venv.join("pyvenv.cfg")));
        out.push(venv);
    }
    match top_modules {
        Some(m) => out.push(m),
        None => out.push(real),
    }
    out
}

/// The installation a virtual environment's `python` comes from: the parent of the
/// `home` directory its `pyvenv.cfg` names.
fn python_home(cfg: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(cfg).ok()?;
    let home = text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "home").then(|| PathBuf::from(value.trim()))
    })?;
    home.is_absolute()
        .then(|| home.parent().map(Path::to_path_buf))
        .flatten()
}

/// The network of a process of `agent` that talks to its model at `endpoints`: a CLI
/// agent must reach its model even when its tools may reach nothing, so the endpoints
/// join the host list (through the proxy) of an agent that is not simply `network on`.
pub fn effective_network(agent: &Agent, endpoints: &[String]) -> Network {
    match (&agent.permissions.network.value, endpoints.is_empty()) {
        (network, true) | (network @ Network::On, _) => network.clone(),
        (Network::Off, false) => Network::Hosts(endpoints.to_vec()),
        (Network::Hosts(hosts), false) => {
            let mut all = hosts.clone();
            all.extend(endpoints.iter().filter(|e| !hosts.contains(e)).cloned());
            Network::Hosts(all)
        }
    }
}

/// The absolute directories of the interpreter's PATH.
fn path_dirs(session: &Session) -> Vec<PathBuf> {
    var(session, "PATH")
        .unwrap_or_default()
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(PathBuf::from)
        .collect()
}

/// What the sandbox must let a process read to start `program` (a name on the PATH, or
/// a path against `workdir`): nothing when it is not found.
pub fn program_paths(session: &Session, workdir: &Path, program: &str) -> Vec<PathBuf> {
    let path_dirs = path_dirs(session);
    locate(program, workdir, &path_dirs)
        .map(|p| program_reads(&p))
        .unwrap_or_default()
}

/// The policy of a process `agent` runs in `workdir`, with `tmp` as its own temp dir.
fn policy(
    session: &Session,
    agent: &Agent,
    workdir: &Path,
    tmp: &Path,
    extra_read: &[PathBuf],
    network_log: Option<&Path>,
    endpoints: &[String],
) -> Policy {
    let home = var(session, "HOME").map(PathBuf::from);
    let path_dirs = path_dirs(session);
    let perms = &agent.permissions;

    let mut read: Vec<PathBuf> = perms
        .read
        .value
        .iter()
        .filter_map(|p| reach(&p.text, workdir, home.as_deref()))
        .map(|p| lexical(&p))
        .collect();
    read.extend(path_dirs.iter().cloned());
    // The worktree's `.git` pointer, so that git works in it (it stays read-only), and
    // the user's git config: git refuses to run at all when it exists but is unreadable.
    read.push(workdir.join(".git"));
    if let Some(home) = &home {
        read.push(home.join(".gitconfig"));
        read.push(home.join(".config/git"));
    }
    read.extend(session.options.sandbox_read.iter().cloned());
    read.extend(extra_read.iter().cloned());
    if let crate::ir::AgentKind::Command { run } = &agent.kind {
        if let Some(program) = crate::agents::process::split_command_line(run)
            .ok()
            .and_then(|argv| argv.into_iter().next())
        {
            if let Some(found) = locate(&program, workdir, &path_dirs) {
                read.extend(program_reads(&found));
            }
        }
    }

    let write: Vec<PathBuf> = perms
        .write
        .value
        .iter()
        .filter_map(|p| reach(&p.text, workdir, home.as_deref()))
        .map(|p| lexical(&p))
        .collect();
    for w in &write {
        // A directory a glob names may not exist yet; inside the worktree it is made
        // (git does not see empty directories), so that the step can fill it.
        if w.starts_with(workdir) && !w.exists() {
            let _ = std::fs::create_dir_all(w);
        }
    }
    let mut write = minimal(write);
    // The step's temp dir and the run's shared scratch space (outputs that are neither
    // committed nor records) lie in the run directory, which is read-only even where it
    // is inside the worktree (in place): they stay roots of their own, mounted after it.
    write.push(tmp.to_path_buf());
    let artifacts = artifacts_dir(session);
    let _ = std::fs::create_dir_all(&artifacts);
    write.push(artifacts);

    let mut protected = vec![workdir.join(".git")];
    protected.extend(session.options.sandbox_protect.iter().cloned());

    Policy {
        home,
        cwd: workdir.to_path_buf(),
        read: minimal(read),
        write,
        protected,
        network: match &effective_network(agent, endpoints) {
            Network::On => Net::On,
            Network::Off => Net::Off,
            Network::Hosts(hosts) => Net::Hosts(hosts.clone()),
        },
        network_log: network_log.map(Path::to_path_buf),
        // Inside the temp dir, which is writable and goes with the attempt.
        shm: Some(tmp.join(".shm")),
    }
}

/// `<run dir>/artifacts`: where steps may leave files for later steps or for people
/// (a build, a package) outside the worktree; the rest of the run directory is records.
pub fn artifacts_dir(session: &Session) -> PathBuf {
    session.dir.path().join("artifacts")
}

/// Prepares the sandbox of one attempt, or `None` with `--sandbox off`.
pub fn prepare(
    session: &Session,
    agent: &Agent,
    workdir: &Path,
    tmp: &Path,
    extra_read: &[PathBuf],
    network_log: Option<&Path>,
    endpoints: &[String],
) -> Result<Option<Arc<Prepared>>, String> {
    let Some(support) = &session.options.sandbox else {
        return Ok(None);
    };
    std::fs::create_dir_all(tmp)
        .map_err(|e| format!("cannot create the step's temp dir {}: {e}", tmp.display()))?;
    let policy = policy(
        session,
        agent,
        workdir,
        tmp,
        extra_read,
        network_log,
        endpoints,
    );
    Prepared::new(&policy, support)
        .map(|p| Some(Arc::new(p)))
        .map_err(|e| e.to_string())
}

/// The programs of a rendered `sh` line or `until` check that the agent's `exec` does
/// not allow: the static check sees templates, this sees what they rendered to.
pub fn disallowed_programs(agent: &Agent, line: &str) -> Vec<String> {
    crate::check::shell::programs(line)
        .into_iter()
        .filter(|p| !crate::check::shell::allowed(&p.word, &agent.permissions.exec.value))
        .map(|p| p.word)
        .collect()
}

/// The proxy variables of a step whose agent has a host list: every common tool reads
/// one of them, and the proxy is the only way out of the step's network namespace.
pub fn proxy_env(session: &Session, agent: &Agent, endpoints: &[String]) -> Vec<(String, String)> {
    if session.options.sandbox.is_none()
        || !matches!(effective_network(agent, endpoints), Network::Hosts(_))
    {
        return Vec::new();
    }
    let url = format!("http://127.0.0.1:{}", crate::sandbox::proxy::PORT);
    let mut env: Vec<(String, String)> = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ]
    .iter()
    .map(|k| (k.to_string(), url.clone()))
    .collect();
    env.push(("NO_PROXY".into(), String::new()));
    env.push(("no_proxy".into(), String::new()));
    env
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_in_a_python_environment_reads_the_environment_and_its_python() {
        let dir = tempfile::tempdir().unwrap();
        let venv = dir.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        std::fs::write(
            venv.join("pyvenv.cfg"),
            "home = /opt/python/bin\ninclude-system-site-packages = false\n",
        )
        .unwrap();
        let program = venv.join("bin/aider");
        std::fs::write(&program, "#!/usr/bin/env python\n").unwrap();
        let reads = program_reads(&program);
        let venv = std::fs::canonicalize(&venv).unwrap();
        assert!(reads.contains(&venv), "{reads:?}");
        assert!(reads.contains(&PathBuf::from("/opt/python")), "{reads:?}");

        // Anything else reads itself only.
        let plain = dir.path().join("tool");
        std::fs::write(&plain, "#!/bin/sh\n").unwrap();
        let reads = program_reads(&plain);
        assert!(!reads.iter().any(|r| r.ends_with("venv")), "{reads:?}");
    }
}
