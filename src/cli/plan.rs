//! `runbook plan FILE`: the execution plan a reviewer approves before anything runs.

use super::run::{given_params, load_checked};
use super::{EXIT_OK, EXIT_USAGE};
use crate::plan::{self, Options};
use std::io::IsTerminal;
use std::path::PathBuf;

/// How the plan is printed.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// A migration plan to paste into a pull request (the default when stdout is not a terminal).
    Markdown,
    /// A compact terminal view (the default on a terminal).
    Text,
    /// The DAG as a Mermaid flowchart.
    Mermaid,
    /// The DAG as Graphviz DOT.
    Dot,
    /// One JSON document (schema `runbook-plan/1`, see docs/cli.md).
    Json,
}

/// When to color the text format.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Color {
    /// When stdout is a terminal and NO_COLOR is unset.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// Arguments of `runbook plan`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The runbook file.
    file: PathBuf,
    /// Set a parameter: --param NAME=VALUE (repeatable; typed). Unset required params are shown as such.
    #[arg(long = "param", value_name = "NAME=VALUE")]
    params: Vec<String>,
    /// Read parameters from a JSON or TOML file.
    #[arg(long = "params", value_name = "FILE")]
    params_file: Option<PathBuf>,
    /// Output format (default: text on a terminal, markdown otherwise).
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Include the rendered prompts and checkpoint questions.
    #[arg(long)]
    prompts: bool,
    /// Color the text format.
    #[arg(long, value_enum, default_value = "auto")]
    color: Color,
}

/// Runs the subcommand.
pub fn run(args: Args) -> i32 {
    let (checked, map) = match load_checked(&args.file) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let runbook = checked.runbook();
    let params = match given_params(runbook, args.params_file.as_deref(), &args.params) {
        Ok(p) => p,
        Err(message) => {
            eprintln!("error: {message}");
            return EXIT_USAGE;
        }
    };
    let defaults = given_params(runbook, None, &[]).unwrap_or_default();
    let mut given: Vec<String> = args
        .params
        .iter()
        .filter_map(|p| p.split_once('=').map(|(k, _)| k.trim().to_string()))
        .collect();
    if args.params_file.is_some() {
        given.extend(
            params
                .iter()
                .filter(|(k, v)| defaults.get(*k) != Some(v))
                .map(|(k, _)| k.clone()),
        );
    }
    let options = Options {
        params,
        given,
        prompts: args.prompts,
        file: crate::syntax::source::display_path(&args.file),
    };
    let plan = plan::build(&checked, &map, &options);
    let terminal = std::io::stdout().is_terminal();
    let format = args.format.unwrap_or(if terminal {
        Format::Text
    } else {
        Format::Markdown
    });
    let color = match args.color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => terminal && std::env::var_os("NO_COLOR").is_none(),
    };
    let text = match format {
        Format::Markdown => plan::markdown::render(&plan),
        Format::Text => plan::text::render(&plan, color),
        Format::Mermaid => plan::mermaid::render(&plan),
        Format::Dot => plan::dot::render(&plan),
        Format::Json => plan::json::render(&plan),
    };
    print!("{text}");
    EXIT_OK
}
