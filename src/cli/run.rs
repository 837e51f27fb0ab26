//! `runbook run`, `runbook resume` and `runbook rollback`: set up a session and drive it.

use super::{color_stderr, repository_root, EXIT_FAILED, EXIT_OK, EXIT_USAGE};
use crate::check::{check_path, CheckedRunbook};
use crate::diagnostic::render;
use crate::ir::value::ParamType;
use crate::record::journal::{read_events, Journal, JournalError};
use crate::record::lock::RunLock;
use crate::record::redact::Redactor;
use crate::record::run_dir::{write_atomic, RunDir};
use crate::record::run_id::RunId;
use crate::run::context::{Context, Renderer};
use crate::run::event::{now, Event, SandboxRecord, SpecFile};
use crate::run::state::RunState;
use crate::run::{self, Options, Outcome, Session};
use crate::syntax::source::SourceMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Exit code: suspended at a checkpoint.
pub const EXIT_SUSPENDED: i32 = 3;
/// Exit code: interrupted.
pub const EXIT_INTERRUPTED: i32 = 130;

/// Options shared by `run` and `resume`.
#[derive(clap::Args, Debug, Clone)]
pub struct DriveArgs {
    /// Steps to run at once (default: the number of CPUs).
    #[arg(long, short = 'j')]
    jobs: Option<usize>,
    /// Never ask on the terminal: suspend at checkpoints (exit 3).
    #[arg(long)]
    no_input: bool,
    /// Approve this checkpoint in advance (repeatable); recorded as pre-approved.
    #[arg(long = "approve", value_name = "CHECKPOINT")]
    approve: Vec<String>,
    /// Approve every checkpoint in advance; recorded as pre-approved.
    #[arg(long)]
    approve_all: bool,
    /// Stream each step's output to the terminal.
    #[arg(long, short)]
    verbose: bool,
    /// Who decides at the terminal (default: $RUNBOOK_USER or $USER).
    #[arg(long = "as", value_name = "NAME")]
    identity: Option<String>,
    /// When the run succeeds, fast-forward the current branch to the run branch (only
    /// when that is safe: no local changes, and the branch has not moved on).
    #[arg(long)]
    merge: bool,
    /// Confine every agent and shell process in the OS sandbox (`on`, the default for a
    /// new run; a resumed run keeps what it was started with) or not (`off`, recorded).
    #[arg(long, value_name = "on|off")]
    sandbox: Option<SandboxArg>,
}

/// `--sandbox on|off`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SandboxArg {
    /// Confine every process; refuse to start where the machine cannot.
    On,
    /// Do not confine (recorded in the run's records and shown by `runbook show`).
    Off,
}

impl From<SandboxArg> for crate::sandbox::Mode {
    fn from(a: SandboxArg) -> Self {
        match a {
            SandboxArg::On => crate::sandbox::Mode::On,
            SandboxArg::Off => crate::sandbox::Mode::Off,
        }
    }
}

/// Sets up the sandbox a session uses, failing closed: `Err` names what is missing and
/// how to opt out.
fn sandbox_for(
    mode: crate::sandbox::Mode,
) -> Result<(Option<crate::sandbox::Support>, SandboxRecord), String> {
    use crate::sandbox::Mode;
    match mode {
        Mode::On => match crate::sandbox::probe() {
            Ok(support) => Ok((Some(support), record_of(Some(support)))),
            Err(e) => Err(format!(
                "{e}\n  help: {}",
                crate::sandbox::SandboxError::OPT_OUT
            )),
        },
        Mode::Off => {
            eprintln!("warning: --sandbox off: agent and shell processes are not confined (recorded in the run)");
            Ok((None, record_of(None)))
        }
    }
}

/// What the records say of a session's sandbox.
fn record_of(support: Option<crate::sandbox::Support>) -> SandboxRecord {
    match support {
        Some(s) => SandboxRecord {
            mode: crate::sandbox::Mode::On,
            layers: Some(s.describe()),
        },
        None => SandboxRecord {
            mode: crate::sandbox::Mode::Off,
            layers: None,
        },
    }
}

/// Arguments of `runbook run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The runbook file.
    file: PathBuf,
    /// Set a parameter: --param NAME=VALUE (repeatable; typed).
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Read parameters from a JSON or TOML file.
    #[arg(long = "params", value_name = "FILE")]
    params_file: Option<PathBuf>,
    /// Print what would run, in order, with rendered prompts; run nothing.
    #[arg(long)]
    dry_run: bool,
    /// Work in the current working tree instead of git worktrees on a run branch.
    #[arg(long, conflicts_with = "merge")]
    in_place: bool,
    #[command(flatten)]
    drive: DriveArgs,
}

/// Arguments of `runbook resume`.
#[derive(clap::Args, Debug)]
pub struct ResumeArgs {
    /// The run id (or a unique prefix).
    run: String,
    #[command(flatten)]
    drive: DriveArgs,
}

/// Arguments of `runbook rollback`.
#[derive(clap::Args, Debug)]
pub struct RollbackArgs {
    /// The run id (or a unique prefix).
    run: String,
    /// Confine the compensations in the OS sandbox (default: what the run recorded).
    #[arg(long, value_name = "on|off")]
    sandbox: Option<SandboxArg>,
}

/// Where run records live: the repository root, or the current directory outside git.
pub fn records_root() -> Result<PathBuf, String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the current directory: {e}"))?;
    Ok(repository_root(&cwd).unwrap_or(cwd))
}

/// Finds a run by id or unique prefix.
pub fn find_run(root: &Path, wanted: &str) -> Result<RunDir, String> {
    let runs = crate::record::run_dir::list_runs(root);
    let matches: Vec<_> = runs
        .iter()
        .filter(|r| r.as_str().starts_with(wanted))
        .collect();
    match matches.as_slice() {
        [one] => {
            RunDir::open(root, (*one).clone()).map_err(|e| format!("cannot open run {one}: {e}"))
        }
        [] => Err(format!(
            "no run `{wanted}` under {} (see `runbook runs`)",
            crate::record::run_dir::runs_dir(root).display()
        )),
        many => Err(format!(
            "`{wanted}` matches {} runs; give more of the id",
            many.len()
        )),
    }
}

/// Loads and checks a runbook, printing diagnostics; `None` when it has errors.
pub fn load_checked(file: &Path) -> Result<(CheckedRunbook, SourceMap), i32> {
    let mut map = SourceMap::new();
    let outcome = match check_path(&mut map, file) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return Err(EXIT_USAGE);
        }
    };
    let color = color_stderr();
    for d in &outcome.diagnostics {
        eprint!("{}", render::human(d, &map, color));
    }
    match outcome.checked {
        Some(c) => Ok((c, map)),
        None => {
            eprintln!(
                "error: {} has errors; fix them before running (see `runbook check`)",
                file.display()
            );
            Err(EXIT_USAGE)
        }
    }
}

/// Resolves parameter values: defaults, then the params file, then `--param`; every
/// param must end up with a value.
fn resolve_params(
    runbook: &crate::ir::Runbook,
    file: Option<&Path>,
    pairs: &[String],
) -> Result<serde_json::Value, String> {
    let values = given_params(runbook, file, pairs)?;
    for p in &runbook.params {
        if !values.contains_key(&p.name) {
            let help = p
                .help
                .as_deref()
                .map(|h| format!(" ({h})"))
                .unwrap_or_default();
            let example = match p.ty {
                ParamType::Bool => "true",
                ParamType::Int => "3",
                ParamType::Duration => "30m",
                _ => "VALUE",
            };
            return Err(format!(
                "param `{}` is required{help}: pass --param {}={example}",
                p.name, p.name
            ));
        }
    }
    Ok(serde_json::Value::Object(values))
}

/// The parameter values known before a run: defaults, then the params file, then
/// `--param` (typed; unknown names are errors). Required params without a value are
/// absent: `run` refuses them, `plan` shows them as unset.
pub(super) fn given_params(
    runbook: &crate::ir::Runbook,
    file: Option<&Path>,
    pairs: &[String],
) -> Result<serde_json::Map<String, serde_json::Value>, String> {
    let mut values = serde_json::Map::new();
    for p in &runbook.params {
        if let Some(d) = &p.default {
            values.insert(p.name.clone(), d.to_json());
        }
    }
    let declared = |name: &str| -> Result<&crate::ir::Param, String> {
        runbook
            .params
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| {
                let known: Vec<&str> = runbook.params.iter().map(|p| p.name.as_str()).collect();
                format!(
                    "unknown param `{name}` (declared: {})",
                    if known.is_empty() {
                        "none".into()
                    } else {
                        known.join(", ")
                    }
                )
            })
    };
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let table: serde_json::Value = if path.extension().is_some_and(|e| e == "toml") {
            let t: toml::Value =
                toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            serde_json::to_value(t).map_err(|e| e.to_string())?
        } else {
            serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?
        };
        let serde_json::Value::Object(map) = table else {
            return Err(format!(
                "{}: expected a table of NAME = VALUE",
                path.display()
            ));
        };
        for (k, v) in map {
            let p = declared(&k)?;
            let value =
                p.ty.from_json(&v)
                    .map_err(|e| format!("param `{k}` in {}: {e}", path.display()))?;
            values.insert(k, value.to_json());
        }
    }
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .ok_or_else(|| format!("--param `{pair}`: write NAME=VALUE"))?;
        let p = declared(k.trim())?;
        let value =
            p.ty.parse_value(v)
                .map_err(|e| format!("--param {k}: {e} (declared as {})", p.ty.name()))?;
        values.insert(k.trim().to_string(), value.to_json());
    }
    Ok(values)
}

/// Every `--approve NAME` must name a checkpoint its decider may decide.
fn check_preapprovals(runbook: &crate::ir::Runbook, args: &DriveArgs) -> Result<(), String> {
    let identity = identity(args);
    for name in &args.approve {
        let Some(cp) = runbook
            .node_named(name)
            .and_then(|n| runbook.node(n).checkpoint())
        else {
            return Err(format!("--approve {name}: no checkpoint has this name"));
        };
        if !crate::run::checkpoint::may_decide(cp, &identity) {
            return Err(format!(
                "--approve {name}: {identity} may not decide it; its approvers are {} (pass --as NAME)",
                cp.approvers.join(", ")
            ));
        }
    }
    Ok(())
}

/// Who decides: `--as`, else $RUNBOOK_USER, else $USER.
fn identity(args: &DriveArgs) -> String {
    args.identity
        .clone()
        .unwrap_or_else(crate::run::checkpoint::default_identity)
}

fn options(args: &DriveArgs) -> Options {
    let terminal = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    Options {
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        interactive: terminal && !args.no_input,
        approve: args.approve.clone(),
        approve_all: args.approve_all,
        verbose: args.verbose,
        identity: identity(args),
        live: std::io::stderr().is_terminal(),
        merge: args.merge,
        sandbox: None,
        sandbox_protect: Vec::new(),
        sandbox_read: Vec::new(),
    }
}

/// Fills in what the sandbox protects and opens for every process of a run: the
/// runbook's sources and the records stay read-only, git's own directory readable.
fn confine_run(
    options: &mut Options,
    support: Option<crate::sandbox::Support>,
    spec: &[SpecFile],
    records_root: &Path,
    workspace: Option<&crate::workspace::Workspace>,
) {
    options.sandbox = support;
    options.sandbox_protect = spec
        .iter()
        .filter_map(|s| std::fs::canonicalize(&s.path).ok())
        .collect();
    let runs = crate::record::run_dir::runs_dir(records_root);
    // All of `.runbook`, not only the runs: nothing planted beside them either.
    options
        .sandbox_protect
        .push(runs.parent().map_or(runs.clone(), Path::to_path_buf));
    if let Some(ws) = workspace {
        if let Ok(repo) = git2::Repository::open(ws.repo_root()) {
            // A repository that is itself a linked worktree keeps its objects two levels up.
            let git_dir = repo.path();
            let common = if repo.is_worktree() {
                git_dir.parent().and_then(Path::parent).unwrap_or(git_dir)
            } else {
                git_dir
            };
            options.sandbox_read.push(common.to_path_buf());
        }
    }
}

/// The sandbox a run was last driven with: runs recorded before the sandbox existed, and
/// runs started with it, resume with it on.
fn recorded_mode(state: &RunState) -> crate::sandbox::Mode {
    state
        .sandbox
        .as_ref()
        .map_or(crate::sandbox::Mode::On, |s| s.mode)
}

fn spec_files(checked: &CheckedRunbook, map: &SourceMap) -> Vec<SpecFile> {
    checked
        .runbook()
        .sources
        .iter()
        .map(|s| {
            let f = map.get(s.file);
            SpecFile {
                path: f.path.display().to_string(),
                role: serde_json::to_value(s.role)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_string))
                    .unwrap_or_default(),
                sha256: crate::record::sha256_hex(f.text.as_bytes()),
            }
        })
        .collect()
}

fn git_head(dir: &Path) -> Option<String> {
    let repo = git2::Repository::discover(dir).ok()?;
    let head = repo.head().ok()?.peel_to_commit().ok()?;
    Some(head.id().to_string())
}

/// What run.json records about a run besides its status.
struct RunMeta<'a> {
    file: &'a Path,
    spec: &'a [SpecFile],
    params: &'a serde_json::Value,
    workdir: &'a Path,
    head: Option<&'a str>,
    started: &'a str,
    sandbox: &'a SandboxRecord,
}

/// Writes run.json (atomically) from what is known now.
fn write_run_json(
    dir: &RunDir,
    checked: &CheckedRunbook,
    meta: &RunMeta,
    status: &str,
    ended: Option<&str>,
) {
    let runbook = checked.runbook();
    let doc = serde_json::json!({
        "run_id": dir.id().as_str(),
        "runbook": runbook.name,
        "version": runbook.version,
        "file": meta.file.display().to_string(),
        "sources": meta.spec,
        "head": meta.head,
        "params": meta.params,
        "workdir": meta.workdir.display().to_string(),
        "interpreter": format!("runbook {}", env!("CARGO_PKG_VERSION")),
        "host": hostname(),
        "started": meta.started,
        "ended": ended,
        "status": status,
        "sandbox": meta.sandbox,
    });
    let text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    if let Err(e) = write_atomic(&dir.run_json(), text.as_bytes()) {
        eprintln!("warning: cannot write {}: {e}", dir.run_json().display());
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// The redactor of a run's secret values, shared by the journal, the logs and the terminal.
fn redactor_for(secrets: &std::collections::HashMap<String, String>) -> Arc<Redactor> {
    Arc::new(Redactor::new(
        secrets
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    ))
}

/// `runbook run FILE`.
pub fn run(args: RunArgs) -> i32 {
    let (checked, map) = match load_checked(&args.file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let runbook = checked.runbook();
    let params = match resolve_params(runbook, args.params_file.as_deref(), &args.params) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if let Err(e) = check_preapprovals(runbook, &args.drive) {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    let secrets = run::secret_values(runbook);
    if args.dry_run {
        // A dry run renders no secret and runs nothing: it can preview a runbook on a
        // machine without the secrets, and says what a real run would still need.
        if let Err(e) = &secrets {
            eprintln!("warning: {e}");
        }
        return super::dry_run::print(&checked, &params);
    }
    let secrets = match secrets {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    // Before anything is created: a run that cannot be confined leaves nothing behind.
    let mode = args
        .drive
        .sandbox
        .map_or(crate::sandbox::Mode::On, Into::into);
    let (support, sandbox) = match sandbox_for(mode) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let root = match records_root() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let repo = if args.in_place {
        None
    } else {
        match crate::workspace::Workspace::discover(&root) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: {e}");
                return EXIT_USAGE;
            }
        }
    };
    if repo.is_none() && !args.in_place {
        eprintln!(
            "note: {} is not in a git repository: steps run in it directly, without worktrees, commits or write checks",
            root.display()
        );
        if args.drive.merge {
            eprintln!("error: --merge needs a git repository");
            return EXIT_USAGE;
        }
    }
    let dir = match RunDir::create(&root, RunId::generate()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!(
                "error: cannot create the run directory under {}: {e}",
                root.display()
            );
            return EXIT_USAGE;
        }
    };
    let lock = match RunLock::acquire(dir.lock_file()) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let workspace = match &repo {
        None => None,
        Some(repo_root) => match crate::workspace::Workspace::create(
            repo_root,
            dir.path(),
            &runbook.name,
            dir.id().as_str(),
        ) {
            Ok(ws) => Some(Arc::new(ws)),
            Err(e) => {
                // Nothing ran and nothing was recorded: leave no half-made run behind.
                drop(lock);
                let _ = std::fs::remove_dir_all(dir.path());
                eprintln!(
                    "error: cannot set up the run's git workspace: {e}
  (or pass --in-place to run in the working tree)"
                );
                return EXIT_USAGE;
            }
        },
    };
    let workdir = workspace
        .as_ref()
        .map_or_else(|| root.clone(), |ws| ws.run_worktree().to_path_buf());
    let spec = spec_files(&checked, &map);
    for s in &checked.runbook().sources {
        let f = map.get(s.file);
        let name = f
            .path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if let Err(e) = dir.store_spec(&name, f.text.as_bytes()) {
            eprintln!(
                "error: cannot store the spec in {}: {e}",
                dir.spec_dir().display()
            );
            return EXIT_USAGE;
        }
    }
    let redactor = redactor_for(&secrets);
    let journal = match Journal::create(dir.events()) {
        Ok(j) => j.with_redactor((*redactor).clone()),
        Err(e) => {
            eprintln!("error: cannot create {}: {e}", dir.events().display());
            return EXIT_USAGE;
        }
    };
    let head = match &workspace {
        Some(ws) => Some(ws.base().to_string()),
        None => git_head(&workdir),
    };
    let started = now();
    let meta = RunMeta {
        file: &args.file,
        spec: &spec,
        params: &params,
        workdir: &workdir,
        head: head.as_deref(),
        started: &started,
        sandbox: &sandbox,
    };
    write_run_json(&dir, &checked, &meta, "running", None);
    let event = Event::RunStarted {
        time: started.clone(),
        runbook: runbook.name.clone(),
        file: args.file.display().to_string(),
        spec: spec.clone(),
        params: params.clone(),
        workdir: workdir.display().to_string(),
        head: head.clone(),
        branch: workspace.as_ref().map(|ws| ws.branch().to_string()),
        sandbox: Some(sandbox.clone()),
    };
    if let Err(e) = journal.append(&event) {
        eprintln!("error: cannot write the journal: {e}");
        return EXIT_USAGE;
    }
    let mut state = RunState::default();
    state.apply(&event);
    eprintln!(
        "run {} of {} ({})",
        dir.id(),
        runbook.name,
        dir.path().display()
    );
    if let Some(ws) = &workspace {
        eprintln!(
            "working on branch {} (from {}); your working tree is not touched",
            ws.branch(),
            &ws.base().to_string()[..12]
        );
    }
    let file = args.file.clone();
    let mut options = options(&args.drive);
    confine_run(&mut options, support, &spec, &root, workspace.as_deref());
    drive(
        checked, dir, journal, redactor, secrets, params, workdir, workspace, options, state, lock,
        &file, spec, head, started,
    )
}

/// `runbook resume RUN`.
pub fn resume(args: ResumeArgs) -> i32 {
    let OpenRun {
        dir,
        lock,
        state,
        file,
        started,
    } = match open_run(&args.run) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if let Some(status) = &state.finished {
        eprintln!("run {} already finished: {status}", dir.id());
        return if status == "succeeded" {
            EXIT_OK
        } else {
            EXIT_FAILED
        };
    }
    let (checked, map) = match load_checked(&file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Err(e) = check_preapprovals(checked.runbook(), &args.drive) {
        eprintln!("error: {e}");
        return EXIT_USAGE;
    }
    let spec = spec_files(&checked, &map);
    if let Some(changed) = changed_source(&state.spec, &spec) {
        eprintln!("error: {changed} changed since run {} started; a run resumes only with the exact spec it started with (restore the file, or start a new run)", dir.id());
        return EXIT_USAGE;
    }
    let secrets = match run::secret_values(checked.runbook()) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let mode = args
        .drive
        .sandbox
        .map_or_else(|| recorded_mode(&state), Into::into);
    let (support, sandbox) = match sandbox_for(mode) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let redactor = redactor_for(&secrets);
    let journal = match Journal::open_append::<Event>(dir.events()) {
        Ok(j) => j.with_redactor((*redactor).clone()),
        Err(e) => {
            eprintln!("error: cannot open {}: {e}", dir.events().display());
            return EXIT_USAGE;
        }
    };
    if let Err(e) = journal.append(&Event::RunResumed {
        time: now(),
        pid: std::process::id(),
        sandbox: Some(sandbox),
    }) {
        eprintln!("error: cannot write the journal: {e}");
        return EXIT_USAGE;
    }
    end_leftovers(&dir, &state);
    let in_flight = state.in_flight();
    if !in_flight.is_empty() {
        let names: Vec<String> = in_flight
            .iter()
            .map(|(n, a)| format!("{n} (attempt {a})"))
            .collect();
        eprintln!("re-running what was in flight: {}", names.join(", "));
    }
    eprintln!("resuming run {} of {}", dir.id(), checked.runbook().name);
    let params = state.params.clone();
    let workspace = match reopen_workspace(&dir, &state, &journal) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let workdir = workspace.as_ref().map_or_else(
        || PathBuf::from(&state.workdir),
        |ws| ws.run_worktree().to_path_buf(),
    );
    let head = state.head.clone();
    let mut options = options(&args.drive);
    match records_root() {
        Ok(root) => confine_run(&mut options, support, &spec, &root, workspace.as_deref()),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    }
    drive(
        checked, dir, journal, redactor, secrets, params, workdir, workspace, options, state, lock,
        &file, spec, head, started,
    )
}

/// Re-opens the run's workspace, with the run branch where the journal last saw it: a
/// merge that a crash kept from being recorded is undone, and its step runs again.
fn reopen_workspace(
    dir: &RunDir,
    state: &RunState,
    journal: &Journal,
) -> Result<Option<Arc<crate::workspace::Workspace>>, String> {
    let Some(branch) = &state.branch else {
        return Ok(None);
    };
    let base = state
        .head
        .as_deref()
        .and_then(|h| git2::Oid::from_str(h).ok())
        .ok_or_else(|| {
            format!(
                "run {} has a branch but no base commit in its journal",
                dir.id()
            )
        })?;
    let root = records_root()?;
    let repo = crate::workspace::Workspace::discover(&root)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| {
            format!(
                "run {} worked in git, but {} is not in a repository",
                dir.id(),
                root.display()
            )
        })?;
    let ws = crate::workspace::Workspace::open(&repo, dir.path(), branch, base)
        .map_err(|e| format!("cannot re-open the workspace of run {}: {e}", dir.id()))?;
    let recorded = state
        .tip
        .as_deref()
        .and_then(|t| git2::Oid::from_str(t).ok())
        .unwrap_or(base);
    if ws.tip().map_err(|e| e.to_string())? != recorded {
        ws.reset_branch(recorded).map_err(|e| e.to_string())?;
        journal
            .append(&Event::BranchReset {
                time: now(),
                to: recorded.to_string(),
                reason: "resume: back to the last state the journal recorded".into(),
            })
            .map_err(|e| e.to_string())?;
    }
    Ok(Some(Arc::new(ws)))
}

/// Ends the step processes a dead driver of this run left running (kill -9, a crash):
/// the steps that will run again must not run twice at once. Steps that finished are
/// left alone; a process that deliberately outlives its step is theirs to keep.
fn end_leftovers(dir: &RunDir, state: &RunState) {
    use crate::run::state::NodeStatus;
    let groups = crate::agents::leftover::groups_of_run(dir.id().as_str(), |step| {
        !matches!(
            state.status(step),
            NodeStatus::Succeeded | NodeStatus::Skipped
        )
    });
    if groups.is_empty() {
        return;
    }
    let list: Vec<String> = groups.iter().map(i32::to_string).collect();
    eprintln!(
        "ending step processes left running by the previous driver (process groups {})",
        list.join(", ")
    );
    crate::agents::leftover::end_groups(&groups);
}

/// An existing run, locked by this process, with its state rebuilt from the journal.
pub struct OpenRun {
    /// Its directory.
    pub dir: RunDir,
    /// Held until dropped: no other process drives the run meanwhile.
    pub lock: RunLock,
    /// Its state.
    pub state: RunState,
    /// Its runbook file.
    pub file: PathBuf,
    /// When it started.
    pub started: String,
}

/// Finds the run `wanted` (an id or unique prefix), locks it and reads its journal.
pub fn open_run(wanted: &str) -> Result<OpenRun, String> {
    let root = records_root()?;
    let dir = find_run(&root, wanted)?;
    let lock = RunLock::acquire(dir.lock_file()).map_err(|e| e.to_string())?;
    let (state, file, started) = load_state(&dir)?;
    Ok(OpenRun {
        dir,
        lock,
        state,
        file,
        started,
    })
}

/// Why a run directory without a journal, or with one that lacks `run_started`, cannot
/// be continued: its process was killed before the run's start was recorded, and no
/// step ran.
fn never_started(dir: &RunDir) -> String {
    format!(
        "run {} never started: its process stopped before the run's start was recorded, \
         so no step ran and there is nothing to continue; start a new run with \
         `runbook run FILE`, and delete {}",
        dir.id(),
        dir.path().display()
    )
}

/// The state of a run, its runbook file and start time, from its journal.
pub fn load_state(dir: &RunDir) -> Result<(RunState, PathBuf, String), String> {
    let events = run_events(dir)?;
    let mut file = None;
    let mut started = String::new();
    for e in &events {
        if let Event::RunStarted { file: f, time, .. } = e {
            file = Some(PathBuf::from(f));
            started = time.clone();
        }
    }
    let file = file.ok_or_else(|| never_started(dir))?;
    Ok((RunState::from_events(&events), file, started))
}

/// The intact events of a run's journal; a run without a journal never started.
pub fn run_events(dir: &RunDir) -> Result<Vec<Event>, String> {
    match read_events::<Event>(dir.events()) {
        Ok(contents) => Ok(contents.events),
        Err(JournalError::Read { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
            Err(never_started(dir))
        }
        Err(e) => Err(format!("cannot read {}: {e}", dir.events().display())),
    }
}

fn changed_source(before: &[SpecFile], now: &[SpecFile]) -> Option<String> {
    for b in before {
        match now.iter().find(|n| n.path == b.path) {
            Some(n) if n.sha256 == b.sha256 => {}
            _ => return Some(b.path.clone()),
        }
    }
    now.iter()
        .find(|n| !before.iter().any(|b| b.path == n.path))
        .map(|n| n.path.clone())
}

#[allow(clippy::too_many_arguments)]
fn drive(
    checked: CheckedRunbook,
    dir: RunDir,
    journal: Journal,
    redactor: Arc<Redactor>,
    secrets: std::collections::HashMap<String, String>,
    params: serde_json::Value,
    workdir: PathBuf,
    workspace: Option<Arc<crate::workspace::Workspace>>,
    options: Options,
    mut state: RunState,
    lock: RunLock,
    file: &Path,
    spec: Vec<SpecFile>,
    head: Option<String>,
    started: String,
) -> i32 {
    // The run's shared scratch space exists from the start, sandbox or not.
    if let Err(e) = std::fs::create_dir_all(dir.path().join("artifacts")) {
        eprintln!(
            "error: cannot create {}: {e}",
            dir.path().join("artifacts").display()
        );
        return EXIT_USAGE;
    }
    let runbook = checked.runbook();
    let context = Context {
        params: params.clone(),
        run_id: dir.id().to_string(),
        run_dir: dir.path().display().to_string(),
        name: runbook.name.clone(),
        version: runbook.version.clone().unwrap_or_default(),
        title: runbook.title.clone().unwrap_or_default(),
    };
    let views = std::sync::RwLock::new(run::views_from_records(&dir, &state));
    let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
    let progress = run::progress::Progress::new(options.live, redactor.clone());
    let session = Arc::new(Session {
        checked,
        dir,
        journal,
        filter: Arc::new(run::RedactingFilter(redactor.clone())),
        redactor,
        context,
        renderer: Renderer::default(),
        workdir,
        workspace,
        git: std::sync::Mutex::new(run::tree::GitState::from_state(&state)),
        spec_sha256: spec.first().map(|s| s.sha256.clone()).unwrap_or_default(),
        slots: Arc::new(tokio::sync::Semaphore::new(options.jobs.max(1))),
        landing: Arc::default(),
        stopping: Default::default(),
        base_env: run::base_environment(),
        secrets,
        options,
        cancel,
        cancel_tx,
        progress,
        spent_usd: std::sync::Mutex::new(state.spent_usd),
        views,
    });
    // One worker thread: a step's turnover (its process exits, the next one starts) is a
    // chain of small tasks, and handing them between workers costs more in wake-ups than
    // a second worker gains; git work, file writes and prompts run on blocking threads
    // anyway. The scheduler runs as a task on that worker, not on this thread, for the
    // same reason.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return EXIT_USAGE;
        }
    };
    let driving = session.clone();
    let result = runtime.block_on(async move {
        let task = tokio::spawn(async move {
            let outcome = run::scheduler::drive(driving.clone(), &mut state).await;
            // Every event must be on disk before the process reports anything.
            let last = driving.journal.last_seq();
            let synced = driving.journal.durable(last).await;
            (outcome, synced)
        });
        task.await
    });
    let result = match result {
        Ok(r) => r,
        // A panic in the scheduler stays a panic, as when it ran on this thread.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(e) => {
            eprintln!("error: the run was stopped: {e}");
            return EXIT_FAILED;
        }
    };
    // The final commit above wrote the last results: report any that failed.
    run::scheduler::warn_record_failures(&session);
    session.progress.finish();
    let id = session.dir.id().to_string();
    let (outcome, synced) = result;
    if let Err(e) = synced {
        eprintln!("error: the journal could not be written: {e}");
        return EXIT_FAILED;
    }
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    let status = match &outcome {
        Outcome::Succeeded => "succeeded",
        Outcome::Failed { .. } => "failed",
        Outcome::Rejected { .. } => "rejected",
        Outcome::Suspended(_) => "suspended",
        Outcome::Interrupted => "interrupted",
    };
    let ended = matches!(
        outcome,
        Outcome::Succeeded | Outcome::Failed { .. } | Outcome::Rejected { .. }
    )
    .then(now);
    let meta = RunMeta {
        file,
        spec: &spec,
        params: &params,
        workdir: &session.workdir,
        head: head.as_deref(),
        started: &started,
        sandbox: &record_of(session.options.sandbox),
    };
    write_run_json(
        &session.dir,
        &session.checked,
        &meta,
        status,
        ended.as_deref(),
    );
    drop(lock);
    let (ok, failed) = session.progress.counts();
    match outcome {
        Outcome::Succeeded => {
            eprintln!("run {id} succeeded ({ok} steps run in this session)");
            if let Some(ws) = &session.workspace {
                return take_the_result(ws, &session.dir, session.options.merge);
            }
            EXIT_OK
        }
        Outcome::Failed {
            reason,
            rollback_ok,
        }
        | Outcome::Rejected {
            reason,
            rollback_ok,
        } => {
            eprintln!(
                "run {id} {status}: {}",
                session.redactor.redact_str(&reason)
            );
            if !rollback_ok {
                eprintln!("ROLLBACK INCOMPLETE: at least one compensation failed; see `runbook show {id}`");
            }
            let _ = failed;
            EXIT_FAILED
        }
        Outcome::Suspended(waiting) => {
            eprintln!("run {id} suspended, waiting for: {}", waiting.join(", "));
            for w in &waiting {
                eprintln!(
                    "  decide:  runbook approve {id} {w}   (or --reject, or --revise \"comment\")"
                );
            }
            eprintln!("  then:    runbook resume {id}");
            EXIT_SUSPENDED
        }
        Outcome::Interrupted => {
            eprintln!("run {id} interrupted; continue with: runbook resume {id}");
            EXIT_INTERRUPTED
        }
    }
}

/// Says how to take a finished run's branch, or fast-forwards to it with `--merge`.
fn take_the_result(ws: &crate::workspace::Workspace, dir: &RunDir, merge: bool) -> i32 {
    // The step worktrees served their purpose; the run's own stays until `runbook gc`.
    if let Err(e) = ws.remove_step_trees() {
        eprintln!("warning: cannot remove the step worktrees: {e}");
    }
    let branch = ws.branch();
    let tip = match ws.tip() {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_FAILED;
        }
    };
    if tip == ws.base() {
        eprintln!("the run changed no file: {branch} is where it started");
        return EXIT_OK;
    }
    let files = ws
        .changed_paths(ws.base(), tip)
        .map(|c| c.len())
        .unwrap_or(0);
    eprintln!(
        "the result is on {branch} ({files} files changed; see `git log {}..{branch}` or `runbook show {} --changes`)",
        &ws.base().to_string()[..12],
        dir.id()
    );
    if merge {
        return match crate::workspace::fast_forward_user(ws.repo_root(), tip) {
            Ok(Ok(yours)) => {
                eprintln!("fast-forwarded {yours} to {branch}");
                EXIT_OK
            }
            Ok(Err(why)) => {
                eprintln!(
                    "error: --merge: not fast-forwarding: {why}
  take it by hand:  git merge {branch}"
                );
                EXIT_FAILED
            }
            Err(e) => {
                eprintln!("error: --merge: {e}");
                EXIT_FAILED
            }
        };
    }
    eprintln!("  take it:         git merge {branch}   (or: runbook run --merge next time)");
    eprintln!("  or review it:    git push -u origin {branch}   and open a pull request");
    eprintln!("  clean up later:  runbook gc   (removes worktrees; records and the branch stay)");
    EXIT_OK
}

/// `runbook rollback RUN`.
pub fn rollback(args: RollbackArgs) -> i32 {
    let OpenRun {
        dir,
        lock: _lock,
        state,
        file,
        ..
    } = match open_run(&args.run) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if state.rolled_back {
        eprintln!(
            "error: run {} was already rolled back (see `runbook show {}`)",
            dir.id(),
            dir.id()
        );
        return EXIT_USAGE;
    }
    if state.finished.as_deref() == Some("succeeded") {
        eprintln!(
            "error: run {} succeeded; `rollback` undoes suspended, interrupted or failed runs",
            dir.id()
        );
        return EXIT_USAGE;
    }
    let (checked, _map) = match load_checked(&file) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let secrets = run::secret_values(checked.runbook()).unwrap_or_default();
    let mode = args
        .sandbox
        .map_or_else(|| recorded_mode(&state), Into::into);
    let (support, sandbox) = match sandbox_for(mode) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let redactor = redactor_for(&secrets);
    let journal = match Journal::open_append::<Event>(dir.events()) {
        Ok(j) => j.with_redactor((*redactor).clone()),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    if state.sandbox.as_ref() != Some(&sandbox) {
        // Only a change is worth a line: who confined the compensations must be known.
        if let Err(e) = journal.append(&Event::RunResumed {
            time: now(),
            pid: std::process::id(),
            sandbox: Some(sandbox),
        }) {
            eprintln!("error: cannot write the journal: {e}");
            return EXIT_USAGE;
        }
    }
    // Compensations must not run beside step processes a dead driver left running.
    end_leftovers(&dir, &state);
    let workspace = match reopen_workspace(&dir, &state, &journal) {
        Ok(ws) => ws,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let runbook = checked.runbook();
    let context = Context {
        params: state.params.clone(),
        run_id: dir.id().to_string(),
        run_dir: dir.path().display().to_string(),
        name: runbook.name.clone(),
        version: runbook.version.clone().unwrap_or_default(),
        title: runbook.title.clone().unwrap_or_default(),
    };
    let (cancel_tx, cancel) = tokio::sync::watch::channel(false);
    let mut session = Session {
        progress: run::progress::Progress::new(false, redactor.clone()),
        checked,
        dir,
        journal,
        filter: Arc::new(run::RedactingFilter(redactor.clone())),
        redactor,
        context,
        renderer: Renderer::default(),
        workdir: workspace.as_ref().map_or_else(
            || PathBuf::from(&state.workdir),
            |ws| ws.run_worktree().to_path_buf(),
        ),
        git: std::sync::Mutex::new(run::tree::GitState::from_state(&state)),
        spec_sha256: state
            .spec
            .first()
            .map(|s| s.sha256.clone())
            .unwrap_or_default(),
        slots: Arc::new(tokio::sync::Semaphore::new(1)),
        landing: Arc::default(),
        stopping: Default::default(),
        workspace,
        base_env: run::base_environment(),
        secrets,
        options: Options {
            jobs: 1,
            interactive: false,
            approve: vec![],
            approve_all: false,
            verbose: false,
            identity: String::new(),
            live: false,
            merge: false,
            sandbox: None,
            sandbox_protect: Vec::new(),
            sandbox_read: Vec::new(),
        },
        cancel,
        cancel_tx,
        spent_usd: std::sync::Mutex::new(state.spent_usd),
        views: Default::default(),
    };
    let spec = state.spec.clone();
    match records_root() {
        Ok(root) => confine_run(
            &mut session.options,
            support,
            &spec,
            &root,
            session.workspace.as_deref(),
        ),
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let identity = crate::run::checkpoint::default_identity();
    let result = runtime.block_on(async {
        let ok = run::rollback::run(
            &session,
            &state,
            &format!("requested by {identity} with `runbook rollback`"),
        )
        .await?;
        session
            .journal
            .append(&Event::RunFinished {
                time: now(),
                status: "rolled_back".into(),
            })
            .map_err(|e| e.to_string())?;
        session
            .journal
            .durable(session.journal.last_seq())
            .await
            .map_err(|e| e.to_string())?;
        Ok::<bool, String>(ok)
    });
    match result {
        Ok(true) => {
            eprintln!("run {} rolled back", session.dir.id());
            EXIT_OK
        }
        Ok(false) => {
            eprintln!(
                "ROLLBACK INCOMPLETE for run {}: at least one compensation failed",
                session.dir.id()
            );
            EXIT_FAILED
        }
        Err(e) => {
            eprintln!("error: {e}");
            EXIT_FAILED
        }
    }
}
