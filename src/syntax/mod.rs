//! Syntax: text to AST. Owns the pest grammar binding, string literal processing and
//! source spans; knows nothing of names, types or the DAG.

pub mod ast;
pub mod parser;
pub mod source;
pub mod string;

pub use parser::{parse, SyntaxError};
