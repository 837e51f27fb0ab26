//! agents: how a step's work is carried out by a process.

pub mod leftover;
pub mod process;
pub mod report;
pub mod spawn;
pub mod tools;
