//! The OS sandbox against an agent that tries to escape it: real attacks run as steps
//! (files outside the allowed roots, `.git`, the user's tree, denied reads, the
//! interpreter's environment and process, loopback listeners over TCP and UDP, io_uring,
//! namespaces), each of which must fail with the sandbox on and succeed with
//! `--sandbox off` (the control that proves each attack is real), while every allowed
//! write succeeds and nothing outside the allowed roots changes, down to its `stat`.
//! The tests fail, never skip, when the sandbox cannot be set up.

mod support;

use std::collections::BTreeMap;
use std::net::{TcpListener, UdpSocket};
use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use support::{git, init_repo, Test, RUNBOOK};

const CANARY: &str = "canary-7f3a9e1d";

/// `stat` of everything under `root` (but `skip`): what no attack may change.
fn stats(root: &Path, skip: &[&str]) -> BTreeMap<PathBuf, String> {
    fn walk(root: &Path, dir: &Path, skip: &[&str], out: &mut BTreeMap<PathBuf, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if skip.iter().any(|s| rel.starts_with(s)) {
                continue;
            }
            let m = std::fs::symlink_metadata(&path).unwrap();
            let target = std::fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_default();
            out.insert(
                rel,
                format!(
                    "mode {:o} uid {} gid {} size {} ino {} nlink {} mtime {}.{} ctime {}.{} -> {target}",
                    m.mode(),
                    m.uid(),
                    m.gid(),
                    m.size(),
                    m.ino(),
                    m.nlink(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec()
                ),
            );
            if m.is_dir() {
                walk(root, &path, skip, out);
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, skip, &mut out);
    out
}

/// Loopback listeners that count who reached them.
struct Listeners {
    tcp_port: u16,
    udp_port: u16,
    abstract_name: String,
    tcp_hits: Arc<AtomicUsize>,
    udp_hits: Arc<AtomicUsize>,
    unix_hits: Arc<AtomicUsize>,
}

impl Listeners {
    fn start() -> Listeners {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
        let l = Listeners {
            tcp_port: tcp.local_addr().unwrap().port(),
            udp_port: udp.local_addr().unwrap().port(),
            // Unique per listener: `cargo test` runs the tests as threads of one process.
            abstract_name: {
                static NEXT: AtomicUsize = AtomicUsize::new(0);
                format!(
                    "runbook-test-{}-{}",
                    std::process::id(),
                    NEXT.fetch_add(1, Ordering::SeqCst)
                )
            },
            tcp_hits: Arc::default(),
            udp_hits: Arc::default(),
            unix_hits: Arc::default(),
        };
        use std::os::linux::net::SocketAddrExt;
        let name = std::os::unix::net::SocketAddr::from_abstract_name(&l.abstract_name).unwrap();
        l.serve_unix(UnixListener::bind_addr(&name).unwrap());
        let hits = l.tcp_hits.clone();
        std::thread::spawn(move || {
            for stream in tcp.incoming().flatten() {
                hits.fetch_add(1, Ordering::SeqCst);
                use std::io::Write;
                let mut s = stream;
                let _ = s.write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok");
            }
        });
        let hits = l.udp_hits.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while udp.recv_from(&mut buf).is_ok() {
                hits.fetch_add(1, Ordering::SeqCst);
            }
        });
        l
    }

    /// Counts connections to a unix socket (by path or abstract).
    fn serve_unix(&self, listener: UnixListener) {
        let hits = self.unix_hits.clone();
        std::thread::spawn(move || {
            for _ in listener.incoming().flatten() {
                hits.fetch_add(1, Ordering::SeqCst);
            }
        });
    }

    fn hits(&self) -> (usize, usize) {
        // A datagram may still be in flight when the run ends.
        std::thread::sleep(Duration::from_millis(100));
        (
            self.tcp_hits.load(Ordering::SeqCst),
            self.udp_hits.load(Ordering::SeqCst),
        )
    }
}

/// Escapes a shell command for a runbook string.
fn quoted(cmd: &str) -> String {
    cmd.replace('\\', "\\\\").replace('"', "\\\"")
}

/// The attacks, by name. `@O` stands for the attack's own directory outside the
/// repository (so that attacks cannot disturb one another in the control run), `REPO`
/// is the user's tree.
fn attacks(repo: &Path, l: &Listeners) -> Vec<(&'static str, String)> {
    let r = repo.display().to_string();
    let (tcp, udp) = (l.tcp_port, l.udp_port);
    let py = "/usr/bin/python3";
    vec![
        ("create", "echo x > @O/new.txt".into()),
        ("append", "echo x >> @O/file.txt".into()),
        ("truncate", "truncate -s 0 @O/file.txt".into()),
        ("truncate_by_open", ": > @O/file.txt".into()),
        ("mkdir", "mkdir @O/dir".into()),
        ("symlink", "ln -s /etc/passwd @O/link".into()),
        ("hardlink_in", "ln @O/file.txt allowed/hard".into()),
        ("hardlink_out", "ln allowed/linkout.txt @O/hard".into()),
        ("unlink", "rm @O/file.txt".into()),
        ("rmdir", "rmdir @O/emptydir".into()),
        ("rename_out", "mv allowed/moveout.txt @O/moved.txt".into()),
        ("rename_in", "mv @O/file.txt allowed/stolen.txt".into()),
        ("chmod", "chmod 777 @O/file.txt".into()),
        ("chown", "chown 1:1 @O/file.txt".into()),
        ("utime", "touch -d 2001-01-01 @O/file.txt".into()),
        ("write_user_tree", format!("echo x >> {r}/README.md")),
        ("chmod_user_tree", format!("chmod 600 {r}/other/tool.sh")),
        ("write_outside_globs", "echo x >> README.md".into()),
        ("delete_outside_globs", "rm other/tool.sh".into()),
        (
            "git_hook",
            "echo 'echo pwned' > \"$(git rev-parse --git-common-dir)/hooks/pre-commit\"".into(),
        ),
        ("git_config", "git config --local core.hooksPath /tmp".into()),
        ("read_denied_outside", "cat @O/secret.txt".into()),
        ("read_denied_inside", "cat other/private.txt".into()),
        ("read_home", "ls -a \"$HOME\"".into()),
        (
            "interpreter_environ",
            format!("grep -a -q {CANARY} /proc/$PPID/environ"),
        ),
        (
            "any_environ",
            format!("grep -a -l -q {CANARY} /proc/[0-9]*/environ"),
        ),
        ("signal_interpreter", "kill -0 $PPID".into()),
        ("curl", format!("curl -s -m 2 http://127.0.0.1:{tcp}/")),
        ("nc", format!("nc -z -w 2 127.0.0.1 {tcp}")),
        (
            "bash_dev_tcp",
            format!("bash -c 'echo hi > /dev/tcp/127.0.0.1/{tcp}'"),
        ),
        (
            "python_tcp",
            format!("{py} -c 'import socket; socket.create_connection((\"127.0.0.1\", {tcp}), 2)'"),
        ),
        (
            "python_udp",
            format!("{py} -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b\"x\", (\"127.0.0.1\", {udp}))'"),
        ),
        (
            "io_uring",
            format!("{py} -c 'import ctypes, sys; r = ctypes.CDLL(None).syscall(425, 8, ctypes.create_string_buffer(120)); sys.exit(0 if r >= 0 else 1)'"),
        ),
        ("user_namespace", "unshare -r true".into()),
        (
            "unix_socket",
            format!("{py} -c 'import socket; socket.socket(socket.AF_UNIX).connect(\"@O/sock\")'"),
        ),
        (
            "abstract_socket",
            format!("{py} -c 'import socket; socket.socket(socket.AF_UNIX).connect(chr(0) + \"{}\")'", l.abstract_name),
        ),
    ]
}

/// Gives each attack its own directory outside the repository, with the files it targets.
fn outside_targets(outside: &Path, attacks: &mut [(&'static str, String)]) {
    for (name, cmd) in attacks.iter_mut() {
        let dir = outside.join(name);
        std::fs::create_dir_all(dir.join("emptydir")).unwrap();
        std::fs::write(dir.join("file.txt"), "outside\n").unwrap();
        std::fs::write(dir.join("secret.txt"), "secret\n").unwrap();
        *cmd = cmd.replace("@O", &dir.display().to_string());
    }
}

/// Writes the agent may make: each must succeed in the sandbox.
const ALLOWED: &[(&str, &str)] = &[
    ("ok_create", "echo a > allowed/new.txt"),
    ("ok_append", "echo b >> allowed/keep.txt"),
    (
        "ok_truncate",
        "truncate -s 0 allowed/trunc.txt && : > allowed/trunc2.txt",
    ),
    (
        "ok_mkdir",
        "mkdir -p allowed/d/e && echo f > allowed/d/e/f.txt",
    ),
    ("ok_symlink", "ln -s keep.txt allowed/link"),
    ("ok_hardlink", "ln allowed/keep.txt allowed/hard.txt"),
    ("ok_rename", "mv allowed/movable.txt allowed/moved.txt"),
    ("ok_chmod", "chmod +x allowed/tool.sh"),
    ("ok_unlink", "rm allowed/gone.txt"),
    (
        "ok_new_dir",
        "mkdir -p fresh/deep && echo n > fresh/deep/n.txt",
    ),
    ("ok_tmpdir", "echo t > \"$TMPDIR/t\" && cat \"$TMPDIR/t\""),
    ("ok_read", "cat src/readable.txt"),
    (
        "ok_git",
        "git status --short >/dev/null && git log -1 --format=%s",
    ),
    ("ok_python", "/usr/bin/python3 -c 'print(1)'"),
    (
        "ok_unix_socket",
        "/usr/bin/python3 -c 'import socket; socket.socketpair()'",
    ),
    (
        "ok_shared_memory",
        "/usr/bin/python3 -c 'import multiprocessing as m; l = m.Lock(); l.acquire()'",
    ),
];

fn runbook(attacks: &[(&str, String)]) -> String {
    let mut text = String::from(
        "runbook attacks {\n  agent attacker uses shell {\n    read [\"allowed/**\", \"src/**\", \"fresh/**\"]\n    write [\"allowed/**\", \"fresh/**\"]\n    network off\n  }\n  phase all {\n",
    );
    for (name, cmd) in attacks {
        // The marker is printed only when the attack's command itself succeeded.
        text.push_str(&format!(
            "    step {name} by attacker {{\n      sh \"{} && echo BREACH\"\n      on_failure continue\n    }}\n",
            quoted(cmd)
        ));
    }
    text.push_str("  }\n}\n");
    text
}

fn project() -> Test {
    Test::new()
        .write("README.md", "hello\n")
        .write("allowed/keep.txt", "keep\n")
        // Files of their own for the attacks that take one out: in the control run,
        // where they succeed, they must not conflict with the allowed writes.
        .write("allowed/linkout.txt", "link me out\n")
        .write("allowed/moveout.txt", "move me out\n")
        .write("allowed/trunc.txt", "trunc\n")
        .write("allowed/trunc2.txt", "trunc\n")
        .write("allowed/movable.txt", "move me\n")
        .write("allowed/tool.sh", "echo tool\n")
        .write("allowed/gone.txt", "gone\n")
        .write("other/tool.sh", "echo tool\n")
        .write("other/private.txt", "private\n")
        .write("src/readable.txt", "readable\n")
        .env(CANARY_VAR, CANARY)
}

const CANARY_VAR: &str = "RUNBOOK_TEST_CANARY";

/// Runs every step of `text` and returns, per step, whether its command succeeded.
fn outcomes(t: &Test, args: &[&str], names: &[&str]) -> BTreeMap<String, bool> {
    let out = t.command(args);
    assert!(
        // 3: without the sandbox, attacks that land can conflict with allowed writes.
        matches!(out.code, Some(0 | 1 | 3)),
        "the run did not complete ({:?}): {}",
        out.code,
        out.stderr
    );
    let run = t.last_run();
    names
        .iter()
        .map(|name| {
            let stdout = std::fs::read_to_string(run.attempt_dir(name, 1).join("stdout.log"))
                .unwrap_or_default();
            (name.to_string(), stdout.contains("BREACH"))
        })
        .collect()
}

#[test]
fn every_attack_is_blocked_and_every_allowed_write_succeeds() {
    let outside = tempfile::tempdir().unwrap();
    let listeners = Listeners::start();
    let t = init_repo(project());
    let mut steps = attacks(t.path(), &listeners);
    outside_targets(outside.path(), &mut steps);
    listeners.serve_unix(UnixListener::bind(outside.path().join("unix_socket/sock")).unwrap());
    let attack_names: Vec<&str> = steps.iter().map(|(n, _)| *n).collect();
    steps.extend(ALLOWED.iter().map(|(n, c)| (*n, c.to_string())));
    let t = t.runbook(&runbook(&steps));
    git(&t, &["add", "-A"]);
    git(&t, &["commit", "-q", "-m", "the runbook"]);

    let skip = [".git", ".runbook"];
    let repo_before = stats(t.path(), &skip);
    let outside_before = stats(outside.path(), &[]);
    let all: Vec<&str> = steps.iter().map(|(n, _)| *n).collect();
    let sandboxed = outcomes(&t, &["run", RUNBOOK, "--no-input", "--jobs", "4"], &all);

    let breaches: Vec<&str> = attack_names
        .iter()
        .filter(|n| sandboxed[**n])
        .copied()
        .collect();
    assert!(breaches.is_empty(), "attacks not blocked: {breaches:?}");
    let failed: Vec<&str> = ALLOWED
        .iter()
        .map(|(n, _)| *n)
        .filter(|n| !sandboxed[*n])
        .collect();
    assert!(failed.is_empty(), "allowed operations failed: {failed:?}");
    assert_eq!(
        stats(outside.path(), &[]),
        outside_before,
        "outside changed"
    );
    assert_eq!(
        stats(t.path(), &skip),
        repo_before,
        "the user's tree changed"
    );
    assert_eq!(listeners.hits(), (0, 0), "a listener was reached");
    assert_eq!(listeners.unix_hits.load(Ordering::SeqCst), 0);
    // The allowed writes landed on the run branch.
    let branch = t.last_run().events_named("run_started")[0]["branch"]
        .as_str()
        .unwrap()
        .to_string();
    let files = git(&t, &["ls-tree", "-r", "--name-only", &branch]);
    for f in ["allowed/new.txt", "allowed/d/e/f.txt", "fresh/deep/n.txt"] {
        assert!(files.contains(f), "{f} did not land: {files}");
    }
    // The records say the run was confined.
    let run_json = std::fs::read_to_string(t.last_run().path.join("run.json")).unwrap();
    assert!(run_json.contains("\"mode\": \"on\""), "{run_json}");

    // The control: without the sandbox every attack works, so each one is real.
    let control = outcomes(
        &t,
        &[
            "run",
            RUNBOOK,
            "--no-input",
            "--jobs",
            "4",
            "--sandbox",
            "off",
        ],
        &all,
    );
    let harmless: Vec<&str> = attack_names
        .iter()
        .filter(|n| !control[**n])
        .copied()
        .collect();
    assert!(
        harmless.is_empty(),
        "attacks that fail even without the sandbox prove nothing: {harmless:?}"
    );
    assert!(listeners.hits().0 > 0 && listeners.hits().1 > 0);
    assert_eq!(listeners.unix_hits.load(Ordering::SeqCst), 2);
    t.command(&["show", &t.last_run().id])
        .code(0)
        .stdout_has("sandbox OFF");
}

#[test]
fn in_place_the_git_dir_records_and_runbook_stay_read_only() {
    let protected = [
        ("git_config", "echo x >> .git/config"),
        ("git_hook", "echo x > .git/hooks/post-checkout"),
        ("records", "echo x > .runbook/planted"),
        ("runbook", "echo '// changed' >> test.runbook"),
    ];
    let allowed = [("ok_write", "echo ok > result.txt")];
    let mut steps: Vec<(&str, String)> =
        protected.iter().map(|(n, c)| (*n, c.to_string())).collect();
    steps.extend(allowed.iter().map(|(n, c)| (*n, c.to_string())));
    let text = runbook(&steps).replace(
        "read [\"allowed/**\", \"src/**\", \"fresh/**\"]\n    write [\"allowed/**\", \"fresh/**\"]",
        "write [\"**\"]",
    );
    let t = init_repo(Test::new().write("README.md", "hello\n")).runbook(&text);
    let all: Vec<&str> = steps.iter().map(|(n, _)| *n).collect();
    let git_before = stats(&t.path().join(".git"), &["index"]);
    let results = outcomes(&t, &["run", RUNBOOK, "--in-place", "--no-input"], &all);
    for (name, _) in protected {
        assert!(!results[name], "{name} was not blocked");
    }
    assert!(results["ok_write"]);
    assert_eq!(t.read("result.txt"), "ok\n");
    assert_eq!(t.read(RUNBOOK), text);
    assert!(!t.path().join(".runbook/planted").exists());
    assert_eq!(stats(&t.path().join(".git"), &["index"]), git_before);
}

/// `exec` is checked on what a template rendered, before anything starts.
#[test]
fn a_rendered_line_outside_exec_does_not_start() {
    let t = Test::new().runbook(
        r#"
runbook rendered {
  param tool: string = "touch"
  agent narrow uses shell { exec ["echo"] }
  phase one {
    step go by narrow { sh "{{ params.tool }} pwned" }
  }
}
"#,
    );
    t.run().code(1);
    assert!(!t.path().join("pwned").exists());
    let run = t.only_run();
    let finished = &run.events_named("step_finished")[0];
    let reason = finished["reason"].as_str().unwrap();
    assert!(
        reason.contains("`touch`") && reason.contains("exec"),
        "{reason}"
    );
}

/// What `exec` does not stop, kept visible: an allowed interpreter runs anything.
#[test]
fn known_exec_bypasses_inside_an_allowed_program_still_work() {
    let t = Test::new().runbook(
        r#"
runbook bypass {
  agent narrow uses shell { exec ["sh", "env", "find", "xargs"] }
  phase one {
    step via_sh by narrow { sh "sh -c 'touch via-sh'" }
    step via_env by narrow { sh "env touch via-env" }
    step via_find by narrow { sh "find . -maxdepth 0 -exec touch via-find ';'" }
    step via_xargs by narrow { sh "echo via-xargs | xargs touch" }
  }
}
"#,
    );
    t.run().code(0);
    for f in ["via-sh", "via-env", "via-find", "via-xargs"] {
        assert!(
            t.path().join(f).exists(),
            "{f}: the documented bypass changed"
        );
    }
}

/// Where the machine cannot confine a step, nothing starts and nothing is left behind;
/// `--sandbox off` is the explicit way on. The interpreter is itself started inside
/// the sandbox here, whose seccomp filter refuses new namespaces: a machine without
/// them, for real.
#[test]
fn without_namespaces_the_run_refuses_to_start_and_names_the_opt_out() {
    use runbook::sandbox::{probe, Net, Policy, Prepared};
    use std::os::unix::process::CommandExt;
    let t = Test::new().runbook(
        r#"
runbook simple {
  phase one { step s { sh "echo hi > out.txt" } }
}
"#,
    );
    let support = probe().expect("the sandbox must be available on the test machine");
    let policy = Policy {
        cwd: t.path().to_path_buf(),
        read: vec![PathBuf::from(env!("CARGO_BIN_EXE_runbook"))],
        write: vec![t.path().to_path_buf()],
        protected: vec![],
        network: Net::Off,
        home: None,
        network_log: None,
        shm: None,
    };
    let prepared = Arc::new(Prepared::new(&policy, &support).unwrap());
    let confined = |args: &[&str]| {
        let prepared = prepared.clone();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_runbook"));
        cmd.args(args).current_dir(t.path());
        // SAFETY: `enter` only makes system calls on memory prepared before the fork.
        unsafe {
            cmd.pre_exec(move || prepared.enter());
        }
        cmd.output().unwrap()
    };
    let out = confined(&["run", RUNBOOK, "--no-input"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("namespaces"), "{stderr}");
    assert!(stderr.contains("--sandbox off"), "{stderr}");
    assert!(!t.path().join(".runbook").exists(), "a run was left behind");
    assert!(!t.path().join("out.txt").exists());

    let out = confined(&["run", RUNBOOK, "--no-input", "--sandbox", "off"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(t.read("out.txt"), "hi\n");
    let run = t.only_run();
    let started = &run.events_named("run_started")[0];
    assert_eq!(started["sandbox"]["mode"], "off");
}

/// `network ["host:port"]`: the allowlist proxy is the only way out. Listed hosts are
/// reached through it (plain HTTP and CONNECT tunnels), others get 403, and going
/// around it (no proxy, another address, UDP) reaches nothing.
#[test]
fn a_host_list_admits_only_its_hosts_through_the_proxy() {
    let listeners = Listeners::start();
    let port = listeners.tcp_port;
    let udp = listeners.udp_port;
    let py = "/usr/bin/python3";
    let allowed = [
        ("via_proxy", format!("curl -sf http://localhost:{port}/")),
        (
            "via_tunnel",
            format!("curl -sf -p http://localhost:{port}/"),
        ),
    ];
    let attacks = [
        ("unlisted_host", format!("curl -sf http://127.0.0.1:{port}/")),
        ("unlisted_port", "curl -sf http://localhost:1/".to_string()),
        ("around_proxy", format!("curl -sf --noproxy '*' -m 2 http://localhost:{port}/")),
        (
            "python_direct",
            format!("{py} -c 'import socket; socket.create_connection((\"127.0.0.1\", {port}), 2)'"),
        ),
        (
            "python_udp",
            format!("{py} -c 'import socket; s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.sendto(b\"x\", (\"127.0.0.1\", {udp}))'"),
        ),
    ];
    let mut steps: Vec<(&str, String)> = allowed.to_vec();
    steps.extend(attacks.iter().cloned());
    let text = runbook(&steps).replace(
        "read [\"allowed/**\", \"src/**\", \"fresh/**\"]\n    write [\"allowed/**\", \"fresh/**\"]\n    network off",
        &format!("network [\"localhost:{port}\"]"),
    );
    assert!(text.contains("network [\"localhost"), "{text}");
    let t = Test::new().runbook(&text);
    let all: Vec<&str> = steps.iter().map(|(n, _)| *n).collect();
    let results = outcomes(&t, &["run", RUNBOOK, "--in-place", "--no-input"], &all);
    for (name, _) in &allowed {
        assert!(results[*name], "{name} did not get through");
    }
    for (name, _) in &attacks {
        assert!(!results[*name], "{name} got through");
    }
    assert_eq!(
        listeners.hits(),
        (2, 0),
        "only the two allowed requests arrive"
    );
    let run = t.only_run();
    let log = |step: &str| {
        std::fs::read_to_string(run.attempt_dir(step, 1).join("network.log")).unwrap_or_default()
    };
    assert_eq!(log("via_proxy"), format!("allowed HTTP localhost:{port}\n"));
    assert_eq!(
        log("via_tunnel"),
        format!("allowed CONNECT localhost:{port}\n")
    );
    assert_eq!(
        log("unlisted_host"),
        format!("denied HTTP 127.0.0.1:{port}\n")
    );
    assert_eq!(log("around_proxy"), "");
}

#[test]
fn a_project_under_dev_shm_is_refused_with_the_reason() {
    // The sandbox mounts a private /dev/shm, which would hide such a tree from the step:
    // the user must hear that, not "cannot start /bin/sh: No such file or directory".
    let t = Test::new_in(Path::new("/dev/shm")).runbook(
        r#"
runbook shm {
  phase only {
    step s { sh "true" }
  }
}
"#,
    );
    let out = t.command(&["run", RUNBOOK, "--in-place", "--no-input"]);
    out.code(1);
    let said = format!("{}{}", out.stdout, out.stderr);
    assert!(said.contains("is under /dev/shm"), "{said}");
    assert!(said.contains("move the project out of /dev/shm"), "{said}");
    // With the sandbox off the same tree runs.
    t.command(&[
        "run",
        RUNBOOK,
        "--in-place",
        "--no-input",
        "--sandbox",
        "off",
    ])
    .code(0);
}
