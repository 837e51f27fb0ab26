//! The checker: judges a lowered runbook (cycles, races, templates, permissions,
//! policy, unused declarations, the run's budget) and is the only way to obtain a [`CheckedRunbook`],
//! so the interpreter cannot run a runbook that has errors. It does no I/O.

pub mod budget;
pub mod filters;
pub mod ordering;
pub mod permissions;
pub mod shell;
pub mod templates;
pub mod usage;

use crate::diagnostic::{self, Diagnostic};
use crate::ir::lower;
use crate::ir::Runbook;
use crate::syntax::source::SourceMap;
use std::path::Path;

/// A runbook with no errors; only [`check`] builds one.
#[derive(Debug)]
pub struct CheckedRunbook {
    runbook: Runbook,
    /// Warnings found (errors make [`check`] return no runbook).
    pub warnings: Vec<Diagnostic>,
}

impl CheckedRunbook {
    /// The runbook.
    pub fn runbook(&self) -> &Runbook {
        &self.runbook
    }
}

/// The result of checking one file.
#[derive(Debug)]
pub struct Outcome {
    /// Every diagnostic, sorted by place.
    pub diagnostics: Vec<Diagnostic>,
    /// The checked runbook when the file is a runbook without errors.
    pub checked: Option<CheckedRunbook>,
}

impl Outcome {
    /// Whether any diagnostic is an error.
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(Diagnostic::is_error)
    }
}

/// Loads, lowers and checks the file at `path`. `Err` is a file that cannot be read.
pub fn check_path(map: &mut SourceMap, path: &Path) -> Result<Outcome, crate::ir::load::ReadError> {
    let name = crate::syntax::source::display_path(path);
    let lowered = lower::lower_path(map, path, name)?;
    Ok(check(map, lowered))
}

/// Checks a lowered file.
pub fn check(map: &SourceMap, lowered: lower::Lowered) -> Outcome {
    let mut diagnostics = lowered.diagnostics;
    let Some(runbook) = lowered.runbook else {
        diagnostic::sort(&mut diagnostics);
        return Outcome {
            diagnostics,
            checked: None,
        };
    };
    let cycles = ordering::cycles(&runbook);
    let acyclic = cycles.is_empty();
    diagnostics.extend(cycles);
    // Ancestry questions (races, revise) only make sense on a DAG.
    if acyclic {
        diagnostics.extend(ordering::checkpoints(&runbook));
    }
    let uses = templates::check(&runbook, map, acyclic, &mut diagnostics);
    diagnostics.extend(permissions::check(&runbook));
    diagnostics.extend(usage::check(&runbook, &uses));
    diagnostics.extend(budget::check(&runbook));
    diagnostic::sort(&mut diagnostics);
    let errors = diagnostics.iter().any(Diagnostic::is_error);
    let checked = (!errors).then(|| CheckedRunbook {
        warnings: diagnostics.clone(),
        runbook,
    });
    Outcome {
        diagnostics,
        checked,
    }
}
