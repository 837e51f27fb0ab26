//! Syntax: text to AST. Owns the pest grammar binding, string literal processing and
//! source spans; knows nothing of names, types or the DAG.

pub mod ast;
pub mod error;
pub mod parser;
pub mod source;
pub mod string;

pub use error::SyntaxError;
pub use parser::parse;
