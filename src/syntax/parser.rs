//! The pest parser and the walk from its pairs to the [`ast`](super::ast).

use super::ast::*;
use super::source::Span;
use super::string;
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/runbook.pest"]
struct Grammar;

/// A syntax error: where parsing stopped and what would have been accepted there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where.
    pub span: Span,
    /// One sentence: `expected X, found Y`.
    pub message: String,
    /// A hint for the most common mistakes, if one applies.
    pub help: Option<String>,
}

/// Parses one file's text.
pub fn parse(text: &str) -> Result<File, SyntaxError> {
    let mut pairs = Grammar::parse(Rule::file, text).map_err(|e| convert_error(e, text))?;
    let file = pairs.next().expect("the file rule always yields one pair");
    let inner = file
        .into_inner()
        .filter(not_keyword)
        .next()
        .expect("file holds runbook, policy or module");
    match inner.as_rule() {
        Rule::runbook => runbook(inner).map(File::Runbook),
        Rule::policy => policy(inner).map(File::Policy),
        Rule::module => module(inner).map(File::Module),
        rule => unreachable!("file cannot hold {rule:?}"),
    }
}

/// Keyword tokens carry no value; the walk skips them.
fn not_keyword(pair: &Pair<Rule>) -> bool {
    !matches!(
        pair.as_rule(),
        Rule::k_runbook
            | Rule::k_policy
            | Rule::k_import
            | Rule::k_as
            | Rule::k_param
            | Rule::k_secret
            | Rule::k_agent
            | Rule::k_uses
            | Rule::k_phase
            | Rule::k_step
            | Rule::k_checkpoint
            | Rule::k_rollback
            | Rule::k_after
            | Rule::k_by
            | Rule::k_file
            | Rule::k_attempts
            | Rule::k_run
            | Rule::k_read
            | Rule::k_write
            | Rule::k_exec
            | Rule::k_network
            | Rule::k_mcp
            | Rule::k_env
            | Rule::k_timeout
            | Rule::k_estimate
            | Rule::k_prompt
            | Rule::k_sh
            | Rule::k_produces
            | Rule::k_until
            | Rule::k_when
            | Rule::k_on_failure
            | Rule::k_show
            | Rule::k_ask
            | Rule::k_revise
            | Rule::k_approvers
    )
}

fn span(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

fn ident(pair: Pair<Rule>) -> Ident {
    Ident {
        name: pair.as_str().to_string(),
        span: span(&pair),
    }
}

fn str_lit(pair: Pair<Rule>) -> Result<Str, SyntaxError> {
    string::parse(pair.as_str(), pair.as_span().start()).map_err(|e| {
        SyntaxError {
        span: e.span,
        message: e.message,
        help: Some(
            "the escapes are \\\" \\\\ \\n \\t \\r \\0; use \"\"\"…\"\"\" for text with backslashes"
                .into(),
        ),
    }
    })
}

fn token(pair: Pair<Rule>) -> Token {
    Token {
        text: pair.as_str().to_string(),
        span: span(&pair),
    }
}

fn literal(pair: Pair<Rule>) -> Result<Literal, SyntaxError> {
    Ok(match pair.as_rule() {
        Rule::string => Literal::Str(str_lit(pair)?),
        Rule::number => Literal::Number(token(pair)),
        Rule::boolean => Literal::Bool(pair.as_str() == "true", span(&pair)),
        Rule::path_ident | Rule::ident => Literal::Name(ident(pair)),
        Rule::list => Literal::List(list(pair)?),
        rule => unreachable!("not a literal: {rule:?}"),
    })
}

fn list(pair: Pair<Rule>) -> Result<List, SyntaxError> {
    let s = span(&pair);
    let items = pair
        .into_inner()
        .filter(not_keyword)
        .map(literal)
        .collect::<Result<_, _>>()?;
    Ok(List { items, span: s })
}

fn names(pair: Pair<Rule>) -> Vec<Ident> {
    pair.into_inner().filter(not_keyword).map(ident).collect()
}

/// The keyword of a field rule: its first word in the source.
fn key_of(pair: &Pair<Rule>) -> Ident {
    let text = pair.as_str();
    let len = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    let start = pair.as_span().start();
    Ident {
        name: text[..len].to_string(),
        span: Span::new(start, start + len),
    }
}

fn metadata(pair: Pair<Rule>) -> Result<Metadata, SyntaxError> {
    let mut inner = pair.into_inner().filter(not_keyword);
    let key = ident(inner.next().expect("metadata key"));
    let value = str_lit(inner.next().expect("metadata value"))?;
    Ok(Metadata { key, value })
}

fn module(pair: Pair<Rule>) -> Result<Module, SyntaxError> {
    let mut m = Module {
        imports: Vec::new(),
        agents: Vec::new(),
    };
    for item in pair.into_inner().filter(not_keyword) {
        match item.as_rule() {
            Rule::import => m.imports.push(import(item)?),
            Rule::agent => m.agents.push(agent(item)?),
            _ => {}
        }
    }
    Ok(m)
}

fn runbook(pair: Pair<Rule>) -> Result<Runbook, SyntaxError> {
    let s = span(&pair);
    let mut inner = pair.into_inner().filter(not_keyword);
    let name = ident(inner.next().expect("runbook name"));
    let mut items = Vec::new();
    for item in inner {
        items.push(match item.as_rule() {
            Rule::metadata => RunbookItem::Metadata(metadata(item)?),
            Rule::import => RunbookItem::Import(import(item)?),
            Rule::param => RunbookItem::Param(param(item)?),
            Rule::secret => {
                let name = ident(
                    item.into_inner()
                        .filter(not_keyword)
                        .next()
                        .expect("secret name"),
                );
                RunbookItem::Secret(Secret { name })
            }
            Rule::agent => RunbookItem::Agent(agent(item)?),
            Rule::phase => RunbookItem::Phase(phase(item)?),
            Rule::rollback => RunbookItem::Rollback(rollback(item)?),
            rule => unreachable!("runbook item {rule:?}"),
        });
    }
    Ok(Runbook {
        name,
        span: s,
        items,
    })
}

fn import(pair: Pair<Rule>) -> Result<Import, SyntaxError> {
    let s = span(&pair);
    let mut inner = pair.into_inner().filter(not_keyword);
    let path = str_lit(inner.next().expect("import path"))?;
    let alias = inner.find(|p| p.as_rule() == Rule::ident).map(ident);
    Ok(Import {
        path,
        alias,
        span: s,
    })
}

fn param(pair: Pair<Rule>) -> Result<Param, SyntaxError> {
    let s = span(&pair);
    let mut inner = pair.into_inner().filter(not_keyword);
    let name = ident(inner.next().expect("param name"));
    let ty = ident(
        inner
            .next()
            .expect("param type")
            .into_inner()
            .filter(not_keyword)
            .next()
            .expect("type name"),
    );
    let mut default = None;
    let mut help = None;
    let rest: Vec<_> = inner.collect();
    match rest.len() {
        0 => {}
        1 => {
            // A lone string after the type is the default only if written after `=`;
            // the grammar keeps `=` silent, so tell them apart by the source text.
            let p = rest.into_iter().next().expect("one item");
            let before = &p.get_input()[..p.as_span().start()];
            if before.trim_end().ends_with('=') {
                default = Some(literal(p)?);
            } else {
                help = Some(str_lit(p)?);
            }
        }
        _ => {
            let mut it = rest.into_iter();
            default = Some(literal(it.next().expect("default"))?);
            help = Some(str_lit(it.next().expect("help"))?);
        }
    }
    Ok(Param {
        name,
        ty,
        default,
        help,
        span: s,
    })
}

fn agent_field(pair: Pair<Rule>) -> Result<AgentField, SyntaxError> {
    let key = key_of(&pair);
    let rule = pair.as_rule();
    if rule == Rule::metadata {
        return Ok(AgentField::Metadata(metadata(pair)?));
    }
    let value = pair
        .into_inner()
        .filter(not_keyword)
        .next()
        .expect("field value");
    Ok(match rule {
        Rule::run_field => AgentField::Run(Field {
            key,
            value: str_lit(value)?,
        }),
        Rule::read_field => AgentField::Read(Field {
            key,
            value: list(value)?,
        }),
        Rule::write_field => AgentField::Write(Field {
            key,
            value: list(value)?,
        }),
        Rule::exec_field => AgentField::Exec(Field {
            key,
            value: list(value)?,
        }),
        Rule::mcp_field => AgentField::Mcp(Field {
            key,
            value: list(value)?,
        }),
        Rule::env_field => AgentField::Env(Field {
            key,
            value: list(value)?,
        }),
        Rule::network_field => AgentField::Network(Field {
            key,
            value: match value.as_rule() {
                Rule::network_mode => Network::Mode(value.as_str() == "on", span(&value)),
                _ => Network::Hosts(list(value)?),
            },
        }),
        Rule::timeout_field => AgentField::Timeout(Field {
            key,
            value: token(value),
        }),
        rule => unreachable!("agent field {rule:?}"),
    })
}

fn agent(pair: Pair<Rule>) -> Result<Agent, SyntaxError> {
    let s = span(&pair);
    let mut inner = pair.into_inner().filter(not_keyword);
    let name = ident(inner.next().expect("agent name"));
    let mut uses = None;
    let mut fields = Vec::new();
    for p in inner {
        match p.as_rule() {
            Rule::path_ident => uses = Some(ident(p)),
            Rule::agent_body => {
                for f in p.into_inner().filter(not_keyword) {
                    fields.push(agent_field(f)?);
                }
            }
            _ => {}
        }
    }
    Ok(Agent {
        name,
        uses,
        fields,
        span: s,
    })
}

fn policy(pair: Pair<Rule>) -> Result<Policy, SyntaxError> {
    let s = span(&pair);
    let fields = pair
        .into_inner()
        .filter(not_keyword)
        .map(agent_field)
        .collect::<Result<_, _>>()?;
    Ok(Policy { fields, span: s })
}

/// Splits `NAME ["title"] [after …] [by …]` heads shared by phases, steps and checkpoints.
struct Head {
    name: Ident,
    title: Option<Str>,
    after: Option<Vec<Ident>>,
    by: Option<Ident>,
}

fn head<'a>(
    inner: &mut std::iter::Peekable<impl Iterator<Item = Pair<'a, Rule>>>,
) -> Result<Head, SyntaxError> {
    let name = ident(inner.next().expect("name"));
    let mut h = Head {
        name,
        title: None,
        after: None,
        by: None,
    };
    while let Some(p) = inner.peek() {
        match p.as_rule() {
            Rule::string => h.title = Some(str_lit(inner.next().expect("peeked"))?),
            Rule::names => h.after = Some(names(inner.next().expect("peeked"))),
            Rule::after_clause => {
                let clause = inner.next().expect("peeked");
                h.after = clause.into_inner().filter(not_keyword).next().map(names);
            }
            Rule::by_clause => {
                let clause = inner.next().expect("peeked");
                h.by = clause.into_inner().filter(not_keyword).next().map(ident);
            }
            _ => break,
        }
    }
    Ok(h)
}

fn phase(pair: Pair<Rule>) -> Result<Phase, SyntaxError> {
    let s = span(&pair);
    let mut inner = pair.into_inner().filter(not_keyword).peekable();
    let h = head(&mut inner)?;
    let mut items = Vec::new();
    for p in inner {
        items.push(match p.as_rule() {
            Rule::metadata => PhaseItem::Metadata(metadata(p)?),
            Rule::estimate_field => PhaseItem::Estimate(Field {
                key: key_of(&p),
                value: token(
                    p.into_inner()
                        .filter(not_keyword)
                        .next()
                        .expect("estimate value"),
                ),
            }),
            Rule::step => PhaseItem::Step(step(p)?),
            Rule::checkpoint => PhaseItem::Checkpoint(checkpoint(p)?),
            Rule::rollback => PhaseItem::Rollback(rollback(p)?),
            rule => unreachable!("phase item {rule:?}"),
        });
    }
    Ok(Phase {
        name: h.name,
        title: h.title,
        after: h.after,
        items,
        span: s,
    })
}

fn strings(pair: Pair<Rule>) -> Result<Vec<Str>, SyntaxError> {
    match pair.as_rule() {
        Rule::string => Ok(vec![str_lit(pair)?]),
        _ => pair
            .into_inner()
            .filter(not_keyword)
            .map(|item| match item.as_rule() {
                Rule::string => str_lit(item),
                _ => Err(SyntaxError {
                    span: span(&item),
                    message: format!("expected a string, found `{}`", item.as_str()),
                    help: Some(format!("quote it: \"{}\"", item.as_str())),
                }),
            })
            .collect(),
    }
}

fn step(pair: Pair<Rule>) -> Result<Step, SyntaxError> {
    let s = span(&pair);
    let mut inner = pair.into_inner().filter(not_keyword).peekable();
    let h = head(&mut inner)?;
    let mut fields = Vec::new();
    for p in inner {
        let key = key_of(&p);
        fields.push(match p.as_rule() {
            Rule::metadata => StepField::Metadata(metadata(p)?),
            Rule::prompt_field => {
                let v = p
                    .into_inner()
                    .filter(not_keyword)
                    .next()
                    .expect("prompt value");
                let value = match v.as_rule() {
                    Rule::prompt_file => PromptSource::File(str_lit(
                        v.into_inner()
                            .filter(not_keyword)
                            .next()
                            .expect("file(path) holds a string"),
                    )?),
                    _ => PromptSource::Inline(str_lit(v)?),
                };
                StepField::Prompt(Field { key, value })
            }
            Rule::sh_field => StepField::Sh(Field {
                key,
                value: strings(p.into_inner().filter(not_keyword).next().expect("sh value"))?,
            }),
            Rule::produces_field => StepField::Produces(Field {
                key,
                value: strings(
                    p.into_inner()
                        .filter(not_keyword)
                        .next()
                        .expect("produces value"),
                )?,
            }),
            Rule::until_field => {
                let mut it = p.into_inner().filter(not_keyword);
                let command = str_lit(it.next().expect("until command"))?;
                let attempts = it.find(|p| p.as_rule() == Rule::number).map(token);
                StepField::Until(Field {
                    key,
                    value: Until { command, attempts },
                })
            }
            Rule::timeout_field => StepField::Timeout(Field {
                key,
                value: token(
                    p.into_inner()
                        .filter(not_keyword)
                        .next()
                        .expect("timeout value"),
                ),
            }),
            Rule::when_field => StepField::When(Field {
                key,
                value: str_lit(
                    p.into_inner()
                        .filter(not_keyword)
                        .next()
                        .expect("when value"),
                )?,
            }),
            Rule::on_failure_field => StepField::OnFailure(Field {
                key,
                value: ident(
                    p.into_inner()
                        .filter(not_keyword)
                        .next()
                        .expect("on_failure value"),
                ),
            }),
            Rule::rollback => StepField::Rollback(rollback(p)?),
            rule => unreachable!("step field {rule:?}"),
        });
    }
    // Most steps have one or two fields: drop the spare capacity (it was a fifth of
    // the peak memory of checking 10,000 steps).
    fields.shrink_to_fit();
    Ok(Step {
        name: h.name,
        title: h.title,
        by: h.by,
        after: h.after,
        fields,
        span: s,
    })
}

fn show_item(pair: Pair<Rule>) -> Result<ShowItem, SyntaxError> {
    let inner = pair
        .into_inner()
        .filter(not_keyword)
        .next()
        .expect("show item");
    Ok(match inner.as_rule() {
        Rule::string => ShowItem::Path(str_lit(inner)?),
        Rule::k_diff => ShowItem::Diff(span(&inner)),
        _ => ShowItem::Reference(ident(inner)),
    })
}

fn checkpoint(pair: Pair<Rule>) -> Result<Checkpoint, SyntaxError> {
    let s = span(&pair);
    let mut inner = pair.into_inner().filter(not_keyword).peekable();
    let h = head(&mut inner)?;
    let mut fields = Vec::new();
    for p in inner {
        let key = key_of(&p);
        fields.push(match p.as_rule() {
            Rule::metadata => CheckpointField::Metadata(metadata(p)?),
            Rule::show_field => {
                let v = p
                    .into_inner()
                    .filter(not_keyword)
                    .next()
                    .expect("show value");
                let items = match v.as_rule() {
                    Rule::show_list => v
                        .into_inner()
                        .filter(not_keyword)
                        .map(show_item)
                        .collect::<Result<_, _>>()?,
                    _ => vec![show_item(v)?],
                };
                CheckpointField::Show(Field { key, value: items })
            }
            Rule::ask_field => CheckpointField::Ask(Field {
                key,
                value: str_lit(
                    p.into_inner()
                        .filter(not_keyword)
                        .next()
                        .expect("ask value"),
                )?,
            }),
            Rule::revise_field => CheckpointField::Revise(Field {
                key,
                value: ident(
                    p.into_inner()
                        .filter(not_keyword)
                        .next()
                        .expect("revise value"),
                ),
            }),
            Rule::approvers_field => CheckpointField::Approvers(Field {
                key,
                value: list(
                    p.into_inner()
                        .filter(not_keyword)
                        .next()
                        .expect("approvers value"),
                )?,
            }),
            Rule::timeout_field => CheckpointField::Timeout(Field {
                key,
                value: token(
                    p.into_inner()
                        .filter(not_keyword)
                        .next()
                        .expect("timeout value"),
                ),
            }),
            rule => unreachable!("checkpoint field {rule:?}"),
        });
    }
    Ok(Checkpoint {
        name: h.name,
        title: h.title,
        after: h.after,
        fields,
        span: s,
    })
}

fn rollback(pair: Pair<Rule>) -> Result<Rollback, SyntaxError> {
    let s = span(&pair);
    let key = key_of(&pair);
    let mut sh = Vec::new();
    let mut timeout = None;
    for p in pair.into_inner().filter(not_keyword) {
        match p.as_rule() {
            Rule::sh_field => sh.extend(strings(
                p.into_inner().filter(not_keyword).next().expect("sh value"),
            )?),
            Rule::timeout_field => {
                timeout = Some(token(
                    p.into_inner().filter(not_keyword).next().expect("timeout"),
                ))
            }
            _ => {}
        }
    }
    Ok(Rollback {
        key,
        sh,
        timeout,
        span: s,
    })
}

/// What a grammar rule is called in an error message.
fn describe(rule: &Rule) -> String {
    let s = match rule {
        Rule::EOI => "end of file",
        Rule::ident | Rule::path_ident | Rule::names => "a name",
        Rule::string | Rule::plain_string | Rule::triple_string => "a string",
        Rule::number => "a number or duration",
        Rule::boolean => "`true` or `false`",
        Rule::list => "a list `[…]`",
        Rule::runbook | Rule::k_runbook => "`runbook`",
        Rule::policy | Rule::k_policy => "`policy`",
        Rule::module => "`import` or `agent`",
        Rule::import | Rule::k_import => "`import`",
        Rule::k_as => "`as`",
        Rule::param | Rule::k_param => "`param`",
        Rule::param_type => "a type",
        Rule::secret | Rule::k_secret => "`secret`",
        Rule::agent | Rule::k_agent => "`agent`",
        Rule::agent_body => "`{`",
        Rule::k_uses => "`uses`",
        Rule::phase | Rule::k_phase => "`phase`",
        Rule::step | Rule::k_step => "`step`",
        Rule::checkpoint | Rule::k_checkpoint => "`checkpoint`",
        Rule::rollback | Rule::k_rollback => "`rollback`",
        Rule::after_clause | Rule::k_after => "`after`",
        Rule::by_clause | Rule::k_by => "`by`",
        Rule::k_file | Rule::prompt_file => "`file(…)`",
        Rule::k_attempts => "`attempts`",
        Rule::k_diff => "`diff`",
        Rule::metadata | Rule::metadata_key => "`title`, `version` or `description`",
        Rule::run_field | Rule::k_run => "`run`",
        Rule::read_field | Rule::k_read => "`read`",
        Rule::write_field | Rule::k_write => "`write`",
        Rule::exec_field | Rule::k_exec => "`exec`",
        Rule::network_field | Rule::k_network => "`network`",
        Rule::network_mode => "`on` or `off`",
        Rule::mcp_field | Rule::k_mcp => "`mcp`",
        Rule::env_field | Rule::k_env => "`env`",
        Rule::timeout_field | Rule::k_timeout => "`timeout`",
        Rule::estimate_field | Rule::k_estimate => "`estimate`",
        Rule::prompt_field | Rule::k_prompt => "`prompt`",
        Rule::sh_field | Rule::k_sh => "`sh`",
        Rule::produces_field | Rule::k_produces => "`produces`",
        Rule::until_field | Rule::k_until => "`until`",
        Rule::when_field | Rule::k_when => "`when`",
        Rule::on_failure_field | Rule::k_on_failure => "`on_failure`",
        Rule::show_field | Rule::k_show => "`show`",
        Rule::show_list | Rule::show_item => "a path, `diff` or `steps.NAME.output`",
        Rule::ask_field | Rule::k_ask => "`ask`",
        Rule::revise_field | Rule::k_revise => "`revise`",
        Rule::approvers_field | Rule::k_approvers => "`approvers`",
        other => return format!("{other:?}"),
    };
    s.to_string()
}

/// What the text at `offset` is, for "found …".
fn found_at(text: &str, offset: usize) -> String {
    let rest = &text[offset.min(text.len())..];
    let Some(c) = rest.chars().next() else {
        return "end of file".into();
    };
    if c.is_ascii_alphanumeric() || c == '_' {
        let word: String = rest
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
            .take(40)
            .collect();
        return format!("`{word}`");
    }
    if c == '"' {
        return "a string".into();
    }
    format!("`{c}`")
}

fn convert_error(error: pest::error::Error<Rule>, text: &str) -> SyntaxError {
    let offset = match error.location {
        pest::error::InputLocation::Pos(p) => p,
        pest::error::InputLocation::Span((s, _)) => s,
    };
    let found = found_at(text, offset);
    let mut expected: Vec<String> = match &error.variant {
        pest::error::ErrorVariant::ParsingError { positives, .. } => {
            positives.iter().map(describe).collect()
        }
        pest::error::ErrorVariant::CustomError { message } => vec![message.clone()],
    };
    expected.sort();
    expected.dedup();
    let end = text[offset.min(text.len())..]
        .chars()
        .next()
        .map_or(offset, |c| offset + c.len_utf8());
    let message = match expected.len() {
        0 => format!("unexpected {found}"),
        1 => format!("expected {}, found {found}", expected[0]),
        _ => {
            let last = expected.pop().expect("two or more");
            format!("expected {} or {last}, found {found}", expected.join(", "))
        }
    };
    let help = help_for(text, offset, &found);
    SyntaxError {
        span: Span::new(offset, end),
        message,
        help,
    }
}

/// A targeted hint for frequent mistakes.
fn help_for(text: &str, offset: usize, found: &str) -> Option<String> {
    let rest = &text[offset.min(text.len())..];
    if rest.is_empty() {
        return Some("the file ends too early: is a `}` or a closing `\"\"\"` missing?".into());
    }
    if rest.starts_with('\'') {
        return Some("strings use double quotes: \"…\"".into());
    }
    if rest.starts_with("/*") {
        return Some("this block comment is not closed with `*/`".into());
    }
    if rest.starts_with('"') && !rest[1..].contains('"') {
        return Some("this string is not closed with `\"`".into());
    }
    let word = found.trim_matches('`');
    let known = [
        ("prompts", "prompt"),
        ("agents", "agent"),
        ("steps", "step"),
        ("depends_on", "after"),
        ("needs", "after"),
        ("retries", "until \"CMD\" attempts N"),
        ("run", "sh (in a step) or run (in an agent)"),
    ];
    known
        .iter()
        .find(|(wrong, _)| *wrong == word)
        .map(|(_, right)| format!("did you mean `{right}`?"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_minimal_runbook() {
        let f = parse("runbook r { phase p { step s { sh \"true\" } } }").unwrap();
        let File::Runbook(r) = f else { panic!() };
        assert_eq!(r.name.name, "r");
    }

    #[test]
    fn keyword_prefix_is_an_identifier() {
        let f = parse("runbook r { phase p { step stepper { sh \"true\" } } }").unwrap();
        let File::Runbook(r) = f else { panic!() };
        let RunbookItem::Phase(p) = &r.items[0] else {
            panic!()
        };
        let PhaseItem::Step(s) = &p.items[0] else {
            panic!()
        };
        assert_eq!(s.name.name, "stepper");
    }

    #[test]
    fn param_help_without_default() {
        let f = parse("runbook r { param v: string \"the version\" }").unwrap();
        let File::Runbook(r) = f else { panic!() };
        let RunbookItem::Param(p) = &r.items[0] else {
            panic!()
        };
        assert!(p.default.is_none());
        assert_eq!(p.help.as_ref().unwrap().value, "the version");
    }

    #[test]
    fn param_string_default() {
        let f = parse("runbook r { param v: string = \"x\" }").unwrap();
        let File::Runbook(r) = f else { panic!() };
        let RunbookItem::Param(p) = &r.items[0] else {
            panic!()
        };
        assert!(p.default.is_some());
        assert!(p.help.is_none());
    }

    #[test]
    fn error_names_expected_and_found() {
        let err = parse("runbook r {\n  phase p {\n    stepp s {}\n  }\n}").unwrap_err();
        assert!(err.message.contains("found `stepp`"), "{}", err.message);
        assert_eq!(err.span.start, 28);
    }

    #[test]
    fn truncation_never_panics() {
        let text = "runbook r { title \"t\" param p: int = 3 \"h\" agent a { run \"x -\" write [\"a/**\"] }\n phase p \"P\" { estimate 1h step s by a { prompt \"\"\"\n hi {{ params.p }}\n\"\"\" until \"true\" attempts 2 } checkpoint c { show [diff, \"x\"] revise s } } }";
        for i in 0..=text.len() {
            if text.is_char_boundary(i) {
                let _ = parse(&text[..i]);
            }
        }
    }
}
