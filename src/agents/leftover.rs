//! Step processes an interpreter left running when it died.
//!
//! A step runs in a process group of its own, so when the interpreter is killed (kill -9,
//! a crash, the machine's OOM killer) nothing ends its steps: they keep going, and a
//! `runbook resume` that re-runs the step in flight would run it twice at once (two
//! agents editing one tree). Every step process carries `RUNBOOK_RUN_ID` and
//! `RUNBOOK_STEP` in its environment (a run's own variables, set at spawn), which is how
//! a resume finds them in `/proc` and ends their groups before it starts anything.
//!
//! Linux only, like the rest of `agents`.

use std::time::{Duration, Instant};

/// How long leftovers get between SIGTERM and SIGKILL.
const GRACE: Duration = Duration::from_millis(500);

/// The process groups of live processes started for run `run_id` whose step
/// `needs_rerun` says will run again, sorted, without duplicates. Our own group is never
/// among them.
pub fn groups_of_run(run_id: &str, needs_rerun: impl Fn(&str) -> bool) -> Vec<i32> {
    let own_group = current_group();
    let mut groups: Vec<i32> = processes()
        .into_iter()
        .filter(|p| p.state != 'Z' && p.pgid > 1 && p.pgid != own_group)
        .filter(|p| {
            let environment = read_environment(p.pid);
            let variable = |name: &str| {
                environment
                    .iter()
                    .find_map(|(k, v)| (k == name).then_some(v.as_str()))
            };
            variable("RUNBOOK_RUN_ID") == Some(run_id)
                && variable("RUNBOOK_STEP").is_some_and(&needs_rerun)
        })
        .map(|p| p.pgid)
        .collect();
    groups.sort_unstable();
    groups.dedup();
    groups
}

/// Ends the groups: SIGTERM, then SIGKILL for whatever still runs after [`GRACE`].
///
/// The groups' processes are not our children: once dead they are init's to reap, so a
/// group counts as gone when nothing in it runs any more (zombies are ignored).
pub fn end_groups(groups: &[i32]) {
    signal_groups(groups, libc::SIGTERM);
    let give_up = Instant::now() + GRACE;
    while Instant::now() < give_up {
        if !any_running(groups) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    signal_groups(groups, libc::SIGKILL);
    // SIGKILL cannot be caught; wait (boundedly) for the kernel to finish the kills.
    let give_up = Instant::now() + GRACE;
    while any_running(groups) && Instant::now() < give_up {
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn signal_groups(groups: &[i32], signal: libc::c_int) {
    for &pgid in groups {
        // Never our own group, init's, or "every process we may signal".
        if pgid <= 1 || pgid == current_group() {
            continue;
        }
        // SAFETY: kill(2) takes plain integers and touches no memory of ours.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

fn any_running(groups: &[i32]) -> bool {
    processes()
        .iter()
        .any(|p| p.state != 'Z' && groups.contains(&p.pgid))
}

fn current_group() -> i32 {
    // SAFETY: getpgrp(2) cannot fail and touches no memory.
    unsafe { libc::getpgrp() }
}

/// One process as `/proc/<pid>/stat` describes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ProcessInfo {
    pid: i32,
    state: char,
    pgid: i32,
}

/// Every process we can see; ones that vanish while we look are left out.
fn processes() -> Vec<ProcessInfo> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            parse_stat(pid, &stat)
        })
        .collect()
}

/// Parses `/proc/<pid>/stat`: the command name may hold spaces and parentheses, so the
/// fields are counted from the last `)`: state, ppid, pgrp, …
fn parse_stat(pid: i32, stat: &str) -> Option<ProcessInfo> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let pgid = fields.nth(1)?.parse().ok()?;
    Some(ProcessInfo { pid, state, pgid })
}

/// The environment a process was started with; empty if unreadable (another user's).
fn read_environment(pid: i32) -> Vec<(String, String)> {
    let Ok(bytes) = std::fs::read(format!("/proc/{pid}/environ")) else {
        return Vec::new();
    };
    parse_environment(&bytes)
}

fn parse_environment(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|&b| b == 0)
        .filter_map(|entry| {
            let text = String::from_utf8_lossy(entry);
            let (k, v) = text.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::CommandExt;

    #[test]
    fn stat_fields_count_from_the_last_paren() {
        let stat = "4242 (a (weird) name) S 1 4240 4240 0 -1 4194560";
        assert_eq!(
            parse_stat(4242, stat),
            Some(ProcessInfo {
                pid: 4242,
                state: 'S',
                pgid: 4240
            })
        );
        assert_eq!(parse_stat(1, "garbage"), None);
    }

    #[test]
    fn environment_entries_split_at_the_first_equals() {
        assert_eq!(
            parse_environment(b"A=1\0B=x=y\0NOEQUALS\0\0"),
            vec![
                ("A".to_string(), "1".to_string()),
                ("B".to_string(), "x=y".to_string())
            ]
        );
    }

    #[test]
    fn finds_and_ends_the_groups_of_one_run_and_step_only() {
        let spawn = |run: &str, step: &str| {
            std::process::Command::new("sh")
                .args(["-c", "sleep 30 & wait"])
                .env_clear()
                .env("PATH", std::env::var("PATH").unwrap_or_default())
                .env("RUNBOOK_RUN_ID", run)
                .env("RUNBOOK_STEP", step)
                .process_group(0)
                .spawn()
                .unwrap()
        };
        let run = format!("LEFTOVERTEST{}", std::process::id());
        let mut target = spawn(&run, "build");
        let mut finished_step = spawn(&run, "done");
        let mut other_run = spawn("SOMEOTHERRUN", "build");
        // Give the shells a moment to start their sleeps (the result does not depend on it).
        std::thread::sleep(Duration::from_millis(50));

        let groups = groups_of_run(&run, |step| step == "build");
        let target_group = i32::try_from(target.id()).unwrap();
        assert_eq!(groups, vec![target_group]);

        end_groups(&groups);
        let status = target.wait().unwrap();
        assert!(!status.success());
        assert!(!any_running(&groups));
        assert!(groups_of_run(&run, |step| step == "build").is_empty());

        // The others were left alone.
        assert!(finished_step.try_wait().unwrap().is_none());
        assert!(other_run.try_wait().unwrap().is_none());
        for child in [&mut finished_step, &mut other_run] {
            let pgid = i32::try_from(child.id()).unwrap();
            end_groups(&[pgid]);
            child.wait().unwrap();
        }
    }
}
