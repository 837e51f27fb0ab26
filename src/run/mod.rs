//! The interpreter: starts, resumes and rolls back runs of a checked runbook. A run
//! is its journal: every decision the scheduler makes is written there first, so a
//! run can be rebuilt, resumed and audited from `events.jsonl` alone.

pub mod checkpoint;
pub mod confine;
pub mod context;
pub mod event;
pub mod progress;
pub mod rollback;
pub mod scheduler;
pub mod state;
pub mod step;
pub mod tree;

use crate::agents::process::{ChunkFilter, EchoTarget, OutputFilter};
use crate::check::CheckedRunbook;
use crate::record::journal::Journal;
use crate::record::redact::{Redactor, StreamRedactor};
use crate::record::run_dir::RunDir;
use context::{Context, Renderer, StepView};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

pub use scheduler::Outcome;

/// The shell that runs `sh` lines, `until` checks and rollback commands: by absolute
/// path, so it neither depends on the agent's PATH nor costs a PATH search per step.
pub const SHELL: &str = "/bin/sh";

/// How a run behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Steps at once.
    pub jobs: usize,
    /// Whether checkpoints may ask on the terminal.
    pub interactive: bool,
    /// Checkpoints approved in advance.
    pub approve: Vec<String>,
    /// Approve every checkpoint in advance.
    pub approve_all: bool,
    /// Stream step output to the terminal.
    pub verbose: bool,
    /// Who decides at the terminal.
    pub identity: String,
    /// Show a live view.
    pub live: bool,
    /// Fast-forward the user's branch to the run branch when the run succeeds.
    pub merge: bool,
    /// The OS sandbox every agent and shell process runs in; `None` with `--sandbox off`.
    pub sandbox: Option<crate::sandbox::Support>,
    /// Paths no sandboxed process may change even inside its worktree: the runbook's
    /// sources and the run records.
    pub sandbox_protect: Vec<std::path::PathBuf>,
    /// Paths every sandboxed process may read besides its agent's `read`: the git
    /// repository's own directory, which tools like `git diff` need.
    pub sandbox_read: Vec<std::path::PathBuf>,
}

/// Everything the scheduler and step tasks share during one process's drive of a run.
pub struct Session {
    /// The runbook.
    pub checked: CheckedRunbook,
    /// The run directory.
    pub dir: RunDir,
    /// The journal.
    pub journal: Journal,
    /// Secret values to redact.
    pub redactor: Arc<Redactor>,
    /// The same, as a stream filter for process output.
    pub filter: Arc<dyn OutputFilter>,
    /// The fixed template context.
    pub context: Context,
    /// The template renderer.
    pub renderer: Renderer,
    /// Where steps run without a workspace (`--in-place`, outside git); with one, the
    /// run branch's worktree, where checkpoints look and compensations run.
    pub workdir: PathBuf,
    /// The run branch and the steps' worktrees, unless the run works in place.
    pub workspace: Option<Arc<crate::workspace::Workspace>>,
    /// What is known of the steps' commits.
    pub git: std::sync::Mutex<tree::GitState>,
    /// sha256 of the runbook file, for the commit trailers.
    pub spec_sha256: String,
    /// One permit per agent process allowed at once (`--jobs`). A step task prepares its
    /// attempt before it holds one and records the result after it gave it back, so that
    /// bookkeeping overlaps other steps' processes instead of sitting between them.
    pub slots: Arc<tokio::sync::Semaphore>,
    /// Set when the run stops scheduling (a failure that rolls back, a revise, Ctrl-C):
    /// a step task still waiting for a permit then gives up without starting.
    pub stopping: std::sync::atomic::AtomicBool,
    /// Serializes landing steps on the run branch with recording them (see step.rs).
    pub landing: Arc<tokio::sync::Mutex<()>>,
    /// PATH, HOME and LANG of the interpreter.
    pub base_env: Vec<(String, String)>,
    /// Secret values by name.
    pub secrets: HashMap<String, String>,
    /// Behaviour.
    pub options: Options,
    /// Becomes true on Ctrl-C.
    pub cancel: tokio::sync::watch::Receiver<bool>,
    /// Sets `cancel`.
    pub cancel_tx: tokio::sync::watch::Sender<bool>,
    /// The terminal view.
    pub progress: progress::Progress,
    /// US dollars the agents of this run reported spending (for the run's `budget`).
    pub spent_usd: std::sync::Mutex<f64>,
    /// What templates see of each step. Written by the scheduler, read by step tasks;
    /// a template only reads ancestors, whose entries no longer change.
    pub views: std::sync::RwLock<BTreeMap<String, StepView>>,
}

impl Session {
    /// Calls `f` with the current step views.
    pub fn with_views<R>(&self, f: impl FnOnce(&BTreeMap<String, StepView>) -> R) -> R {
        let guard = self
            .views
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&guard)
    }

    /// Records what templates see of a step.
    pub fn set_view(&self, step: &str, view: StepView) {
        let mut guard = self
            .views
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.insert(step.to_string(), view);
    }
}

impl Session {
    /// Where a step's output is echoed with `--verbose`.
    pub fn echo(&self, label: &str) -> Option<EchoTarget> {
        if !self.options.verbose {
            return None;
        }
        let redactor = self.redactor.clone();
        Some(EchoTarget::new(label.to_string(), move |line: &str| {
            eprintln!("{}", redactor.redact_str(line));
        }))
    }
}

/// Redaction as a process output filter.
pub struct RedactingFilter(pub Arc<Redactor>);

struct RedactingChunks(Option<StreamRedactor>);

impl OutputFilter for RedactingFilter {
    fn start(&self) -> Box<dyn ChunkFilter + Send> {
        Box::new(RedactingChunks(Some(self.0.stream())))
    }
}

impl ChunkFilter for RedactingChunks {
    fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        match &mut self.0 {
            Some(s) => s.push(chunk),
            None => chunk.to_vec(),
        }
    }

    fn finish(&mut self) -> Vec<u8> {
        self.0
            .take()
            .map(StreamRedactor::finish)
            .unwrap_or_default()
    }
}

/// PATH, HOME and LANG from the interpreter's environment: all an agent gets by default.
pub fn base_environment() -> Vec<(String, String)> {
    ["PATH", "HOME", "LANG"]
        .iter()
        .filter_map(|k| std::env::var(k).ok().map(|v| (k.to_string(), v)))
        .collect()
}

/// Reads the secret values the runbook's agents need from the environment.
pub fn secret_values(runbook: &crate::ir::Runbook) -> Result<HashMap<String, String>, String> {
    let mut out = HashMap::new();
    for secret in &runbook.secrets {
        let needed = runbook
            .agents
            .iter()
            .any(|a| a.permissions.env.value.contains(&secret.name));
        match std::env::var(&secret.name) {
            Ok(v) if v.chars().count() >= 4 => {
                out.insert(secret.name.clone(), v);
            }
            Ok(_) if needed => {
                return Err(format!(
                    "secret {} is shorter than 4 characters: too short to redact reliably",
                    secret.name
                ))
            }
            Err(_) if needed => {
                return Err(format!(
                    "secret {} is not set: export it in the environment before `runbook run`",
                    secret.name
                ))
            }
            _ => {}
        }
    }
    Ok(out)
}

/// What templates see of finished steps, rebuilt from their records.
pub fn views_from_records(dir: &RunDir, state: &state::RunState) -> BTreeMap<String, StepView> {
    let mut views = BTreeMap::new();
    for (name, status) in &state.nodes {
        let mut view = StepView {
            status: status.word().to_string(),
            ..Default::default()
        };
        if let Some(files) = state.files.get(name) {
            view.files = files.iter().map(|f| f.path.clone()).collect();
        }
        if *status == state::NodeStatus::Succeeded {
            // The last attempt's output is the step's output.
            let attempt = state.attempts.get(name).copied().unwrap_or(1);
            // A CLI agent's output is its final message, not its JSON.
            let attempt_dir = dir.step_attempt_dir(name, attempt);
            let message = attempt_dir.path().join("message.md");
            let path = if message.exists() {
                message
            } else {
                attempt_dir.stdout()
            };
            if let Ok(bytes) = read_prefix(&path, context::OUTPUT_CAP) {
                view.output = String::from_utf8_lossy(&bytes).trim_end().to_string();
            }
        }
        views.insert(name.clone(), view);
    }
    views
}

fn read_prefix(path: &std::path::Path, limit: usize) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut buf = Vec::new();
    std::fs::File::open(path)?
        .take(limit as u64)
        .read_to_end(&mut buf)?;
    Ok(buf)
}
