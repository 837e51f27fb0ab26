//! The pest parser and the walk from its pairs to the [`ast`](super::ast).

use super::ast::*;
use super::error::SyntaxError;
use super::source::Span;
use super::string;
use pest::iterators::Pair;
use pest::Parser as _;

#[derive(pest_derive::Parser)]
#[grammar = "../grammar/runbook.pest"]
struct Grammar;

/// Parses one file's text.
pub fn parse(text: &str) -> Result<File, SyntaxError> {
    let mut pairs =
        Grammar::parse(Rule::file, text).map_err(|e| super::error::from_pest(e, text))?;
    let file = pairs.next().expect("the file rule always yields one pair");
    let inner = file
        .into_inner()
        .find(not_keyword)
        .expect("file holds runbook, policy or module");
    match inner.as_rule() {
        Rule::runbook => runbook(inner).map(File::Runbook),
        Rule::policy => policy(inner).map(File::Policy),
        Rule::module => module(inner).map(File::Module),
        rule => unreachable!("file cannot hold {rule:?}"),
    }
}

/// Keyword and punctuation tokens carry no value; the walk skips them.
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
            | Rule::k_kind
            | Rule::k_model
            | Rule::k_max_turns
            | Rule::k_budget
            | Rule::open_brace
            | Rule::close_brace
            | Rule::close_bracket
            | Rule::comma
            | Rule::colon
            | Rule::equals
    )
}

fn span(pair: &Pair<Rule>) -> Span {
    let s = pair.as_span();
    Span::new(s.start(), s.end())
}

/// The span of a rule from its first to its last token. A rule that ends in an optional
/// part (`import "x" [as y]`) also holds the whitespace and comments pest skipped
/// before trying that part; this leaves them out.
fn content_span(pair: &Pair<Rule>) -> Span {
    let start = pair.as_span().start();
    let end = pair
        .clone()
        .into_inner()
        .last()
        .map_or(pair.as_span().end(), |last| last.as_span().end());
    Span::new(start, end)
}

fn ident(pair: Pair<Rule>) -> Ident {
    Ident {
        name: pair.as_str().to_string(),
        span: span(&pair),
    }
}

/// A string literal's value. (Fallible like the other walkers, though every string the
/// grammar accepts has a value.)
fn str_lit(pair: Pair<Rule>) -> Result<Str, SyntaxError> {
    Ok(string::parse(pair.as_str(), pair.as_span().start()))
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
        mcp_servers: Vec::new(),
    };
    for item in pair.into_inner().filter(not_keyword) {
        match item.as_rule() {
            Rule::import => m.imports.push(import(item)?),
            Rule::agent => m.agents.push(agent(item)?),
            Rule::mcp_server => m.mcp_servers.push(mcp_server(item)?),
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
                let name = ident(item.into_inner().find(not_keyword).expect("secret name"));
                RunbookItem::Secret(Secret { name })
            }
            Rule::agent => RunbookItem::Agent(agent(item)?),
            Rule::phase => RunbookItem::Phase(phase(item)?),
            Rule::rollback => RunbookItem::Rollback(rollback(item)?),
            Rule::budget_field => RunbookItem::Budget(Field {
                key: key_of(&item),
                value: token(item.into_inner().find(not_keyword).expect("budget value")),
            }),
            Rule::mcp_server => RunbookItem::Mcp(mcp_server(item)?),
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
    let s = content_span(&pair);
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
    let s = content_span(&pair);
    let has_equals = pair
        .clone()
        .into_inner()
        .any(|p| p.as_rule() == Rule::equals);
    let mut inner = pair.into_inner().filter(not_keyword);
    let name = ident(inner.next().expect("param name"));
    let ty = ident(
        inner
            .next()
            .expect("param type")
            .into_inner()
            .find(not_keyword)
            .expect("type name"),
    );
    let mut default = None;
    let mut help = None;
    let rest: Vec<_> = inner.collect();
    match rest.len() {
        0 => {}
        1 => {
            // A lone literal after the type is the default only if written after `=`.
            // Asked of the `=` rule, not of the text before the literal: a comment
            // between them (`= /* why */ 3`) made the default a help text (found by
            // tests/grammar_proptest.rs).
            let p = rest.into_iter().next().expect("one item");
            if has_equals {
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
    let value = pair.into_inner().find(not_keyword).expect("field value");
    Ok(match rule {
        Rule::kind_field => AgentField::Kind(Field {
            key,
            value: ident(value),
        }),
        Rule::model_field => AgentField::Model(Field {
            key,
            value: str_lit(value)?,
        }),
        Rule::max_turns_field => AgentField::MaxTurns(Field {
            key,
            value: token(value),
        }),
        Rule::budget_field => AgentField::Budget(Field {
            key,
            value: token(value),
        }),
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
    let s = content_span(&pair);
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

fn mcp_server(pair: Pair<Rule>) -> Result<McpServer, SyntaxError> {
    let s = span(&pair);
    let key = key_of(&pair);
    let mut inner = pair.into_inner().filter(not_keyword);
    let name = ident(inner.next().expect("mcp server name"));
    let fields = inner.map(agent_field).collect::<Result<_, _>>()?;
    Ok(McpServer {
        key,
        name,
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
                h.after = clause.into_inner().find(not_keyword).map(names);
            }
            Rule::by_clause => {
                let clause = inner.next().expect("peeked");
                h.by = clause.into_inner().find(not_keyword).map(ident);
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
                value: token(p.into_inner().find(not_keyword).expect("estimate value")),
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
                _ => {
                    let mut error = SyntaxError::new(
                        span(&item),
                        format!("expected a string, found `{}`", item.as_str()),
                    );
                    error.help = Some(format!("quote it: \"{}\"", item.as_str()));
                    Err(error)
                }
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
                let v = p.into_inner().find(not_keyword).expect("prompt value");
                let value = match v.as_rule() {
                    Rule::prompt_file => PromptSource::File(str_lit(
                        v.into_inner()
                            .find(not_keyword)
                            .expect("file(path) holds a string"),
                    )?),
                    _ => PromptSource::Inline(str_lit(v)?),
                };
                StepField::Prompt(Field { key, value })
            }
            Rule::sh_field => StepField::Sh(Field {
                key,
                value: strings(p.into_inner().find(not_keyword).expect("sh value"))?,
            }),
            Rule::produces_field => StepField::Produces(Field {
                key,
                value: strings(p.into_inner().find(not_keyword).expect("produces value"))?,
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
                value: token(p.into_inner().find(not_keyword).expect("timeout value")),
            }),
            Rule::when_field => StepField::When(Field {
                key,
                value: str_lit(p.into_inner().find(not_keyword).expect("when value"))?,
            }),
            Rule::on_failure_field => StepField::OnFailure(Field {
                key,
                value: ident(p.into_inner().find(not_keyword).expect("on_failure value")),
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
    let inner = pair.into_inner().find(not_keyword).expect("show item");
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
                let v = p.into_inner().find(not_keyword).expect("show value");
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
                value: str_lit(p.into_inner().find(not_keyword).expect("ask value"))?,
            }),
            Rule::revise_field => CheckpointField::Revise(Field {
                key,
                value: ident(p.into_inner().find(not_keyword).expect("revise value")),
            }),
            Rule::approvers_field => CheckpointField::Approvers(Field {
                key,
                value: list(p.into_inner().find(not_keyword).expect("approvers value"))?,
            }),
            Rule::timeout_field => CheckpointField::Timeout(Field {
                key,
                value: token(p.into_inner().find(not_keyword).expect("timeout value")),
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
                p.into_inner().find(not_keyword).expect("sh value"),
            )?),
            Rule::timeout_field => {
                timeout = Some(token(p.into_inner().find(not_keyword).expect("timeout")))
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
    fn param_default_after_a_comment() {
        let f = parse("runbook r { param n: int = /* why */ -3 }").unwrap();
        let File::Runbook(r) = f else { panic!() };
        let RunbookItem::Param(p) = &r.items[0] else {
            panic!()
        };
        assert!(p.help.is_none());
        assert!(matches!(&p.default, Some(Literal::Number(t)) if t.text == "-3"));
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
