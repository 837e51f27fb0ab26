//! runbook: a declarative runbook language and its interpreter.
//!
//! The pipeline is the layout: `syntax` (text → AST with spans) → `ir` (resolved,
//! typed) → `check` (diagnostics) → `plan` → `run` → `record`, with `agents`,
//! `workspace` and `cli` beside them. Data flows one way.

pub mod agents;
pub mod check;
pub mod cli;
pub mod diagnostic;
pub mod fmt;
pub mod ir;
pub mod plan;
pub mod record;
pub mod run;
pub mod sandbox;
pub mod stdlib;
pub mod syntax;
pub mod workspace;
