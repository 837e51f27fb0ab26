//! What a run shows on the terminal: a live view of running steps when stderr is a
//! terminal, nothing but the essentials otherwise. Secrets are redacted from all of it.

use indicatif::{MultiProgress, ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The terminal view of a run.
pub struct Progress {
    live: Option<MultiProgress>,
    bars: Mutex<HashMap<String, ProgressBar>>,
    redactor: Arc<crate::record::redact::Redactor>,
    done: Mutex<(usize, usize)>,
}

impl Progress {
    /// A live view when `live`, quiet otherwise.
    pub fn new(live: bool, redactor: Arc<crate::record::redact::Redactor>) -> Progress {
        Progress {
            live: live.then(MultiProgress::new),
            bars: Mutex::new(HashMap::new()),
            redactor,
            done: Mutex::new((0, 0)),
        }
    }

    /// Prints a line above the live view (or plainly), redacted.
    pub fn line(&self, text: &str) {
        let text = self.redactor.redact_str(text);
        match &self.live {
            Some(m) => {
                let _ = m.println(text);
            }
            None => eprintln!("{text}"),
        }
    }

    /// A warning, always shown.
    pub fn warn(&self, text: &str) {
        self.line(&format!("warning: {text}"));
    }

    /// A step attempt began.
    pub fn step_started(&self, step: &str, attempt: u32) {
        let Some(m) = &self.live else { return };
        let bar = m.add(ProgressBar::new_spinner());
        bar.set_style(
            ProgressStyle::with_template("{spinner} {prefix:.bold} {msg} {elapsed}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        bar.set_prefix(step.to_string());
        bar.set_message(if attempt > 1 {
            format!("attempt {attempt}")
        } else {
            "running".into()
        });
        bar.enable_steady_tick(Duration::from_millis(120));
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(old) = bars.insert(step.to_string(), bar) {
                old.finish_and_clear();
            }
        }
    }

    /// A step attempt ended.
    pub fn step_finished(&self, step: &str, attempt: u32, ok: bool, retry: bool, ms: u64) {
        if let Ok(mut bars) = self.bars.lock() {
            if let Some(bar) = bars.remove(step) {
                bar.finish_and_clear();
            }
        }
        if let Ok(mut d) = self.done.lock() {
            if ok {
                d.0 += 1;
            } else if !retry {
                d.1 += 1;
            }
        }
        if self.live.is_none() {
            return;
        }
        let secs = ms as f64 / 1000.0;
        let text = match (ok, retry) {
            (true, _) => format!("✓ {step} ({secs:.1}s)"),
            (false, true) => {
                format!("↻ {step} attempt {attempt} failed its check; retrying with feedback")
            }
            (false, false) => format!("✗ {step} failed ({secs:.1}s)"),
        };
        self.line(&text);
    }

    /// A step was skipped.
    pub fn step_skipped(&self, step: &str, reason: &str) {
        if self.live.is_some() {
            self.line(&format!("- {step} skipped: {reason}"));
        }
    }

    /// Steps that succeeded and failed so far in this process.
    pub fn counts(&self) -> (usize, usize) {
        self.done.lock().map(|d| *d).unwrap_or((0, 0))
    }

    /// Clears the live view.
    pub fn finish(&self) {
        if let Ok(mut bars) = self.bars.lock() {
            for (_, bar) in bars.drain() {
                bar.finish_and_clear();
            }
        }
    }

    /// Suspends the live view while `f` uses the terminal (a checkpoint prompt).
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.live {
            Some(m) => m.suspend(f),
            None => f(),
        }
    }
}
