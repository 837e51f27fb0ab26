//! The layout tree: the AST as the formatter prints it. Every declaration, field and
//! list element is an [`Item`] on its own line(s), blocks and lists are [`Container`]s,
//! fields are in canonical order, and every token keeps its source text (strings and
//! numbers are printed exactly as written, so their values cannot change).

use super::comments::Comment;
use crate::syntax::ast::{self, Literal};
use crate::syntax::source::Span;

/// A line (or, with a block or a broken list, several) of the output.
#[derive(Debug, Clone, Default)]
pub struct Item {
    /// The source it was built from, for attaching comments.
    pub span: Span,
    /// The text before the value when the item is a `key value` line whose values
    /// align with its neighbours' (a field's keyword; a param's declaration before its
    /// help text).
    pub key: Option<String>,
    /// Items align only with neighbours of the same class.
    pub class: AlignClass,
    /// What follows the key, separated by single spaces.
    pub head: Vec<Piece>,
    /// The `{ … }` body, if any.
    pub block: Option<Container>,
    /// Comments on the lines above it.
    pub leading: Vec<Comment>,
    /// Comments after it on its last line.
    pub trailing: Vec<Comment>,
    /// Whether an empty line precedes it (or its first leading comment) in the source.
    pub blank_before: bool,
}

/// Which neighbours an item's value aligns with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum AlignClass {
    /// Fields (`title`, `run`, `sh`, …): values after the keyword.
    #[default]
    Field,
    /// Params: help texts after the declaration.
    Param,
}

/// Part of an item's first line.
#[derive(Debug, Clone)]
pub enum Piece {
    /// Tokens as written.
    Text(String),
    /// A bracketed list, printed on one line when it fits and holds no comment.
    List(Container),
}

/// A `{ … }` block or a `[ … ]` list.
#[derive(Debug, Clone, Default)]
pub struct Container {
    /// The offset of the opening bracket.
    pub open: u32,
    /// The offset of the closing bracket.
    pub close: u32,
    /// The items, in canonical order.
    pub items: Vec<Item>,
    /// Comments after the opening bracket on its line.
    pub open_comments: Vec<Comment>,
    /// Comments after the last item.
    pub dangling: Vec<Comment>,
}

impl Item {
    fn new(span: Span, head: Vec<Piece>) -> Item {
        Item {
            span,
            head,
            ..Item::default()
        }
    }

    fn field(span: Span, key: &str, head: Vec<Piece>) -> Item {
        Item {
            span,
            key: Some(key.to_string()),
            head,
            ..Item::default()
        }
    }
}

/// Builds layout trees from one source text and the comments found in it.
pub struct Builder<'a> {
    source: &'a str,
    /// Comment spans in order, to skip when looking for brackets.
    comments: Vec<Span>,
}

impl<'a> Builder<'a> {
    /// A builder for `source`, whose comments are `comments`.
    pub fn new(source: &'a str, comments: &[Comment]) -> Builder<'a> {
        Builder {
            source,
            comments: comments.iter().map(|c| c.span).collect(),
        }
    }

    /// The items of a whole file, inside a container spanning the file.
    pub fn file(&self, file: &ast::File) -> Container {
        let items = match file {
            ast::File::Runbook(r) => vec![self.runbook(r)],
            ast::File::Policy(p) => vec![self.policy(p)],
            ast::File::Module(m) => {
                // A module keeps its order: the AST holds imports and agents apart, the
                // spans say how they were interleaved.
                let mut items: Vec<Item> = m.imports.iter().map(|i| self.import(i)).collect();
                items.extend(m.agents.iter().map(|a| self.agent(a)));
                items.extend(m.mcp_servers.iter().map(|s| self.mcp_server(s)));
                items.sort_by_key(|i| i.span.start);
                items
            }
        };
        Container {
            open: 0,
            close: self.source.len() as u32,
            items,
            ..Container::default()
        }
    }

    fn raw(&self, span: Span) -> String {
        self.source[span.range()].to_string()
    }

    fn text(&self, span: Span) -> Piece {
        Piece::Text(self.raw(span))
    }

    /// The first offset at or after `from` that is neither whitespace nor a comment.
    fn significant(&self, mut from: usize) -> usize {
        let bytes = self.source.as_bytes();
        loop {
            while from < bytes.len() && (bytes[from] as char).is_ascii_whitespace() {
                from += 1;
            }
            if self.source[from..].starts_with('\u{FEFF}') {
                from += '\u{FEFF}'.len_utf8();
                continue;
            }
            match self
                .comments
                .binary_search_by_key(&(from as u32), |c| c.start)
            {
                Ok(i) => from = self.comments[i].end as usize,
                Err(_) => return from,
            }
        }
    }

    /// The block that starts after `header_end` and ends where `span` ends, if the next
    /// significant character is its `{`.
    fn block(&self, header_end: u32, span: Span, items: Vec<Item>) -> Option<Container> {
        let open = self.significant(header_end as usize);
        if self.source.as_bytes().get(open) != Some(&b'{') || open >= span.end as usize {
            return None;
        }
        Some(Container {
            open: open as u32,
            close: span.end - 1,
            items,
            ..Container::default()
        })
    }

    fn runbook(&self, r: &ast::Runbook) -> Item {
        let mut items: Vec<(u8, Item)> = r
            .items
            .iter()
            .map(|item| match item {
                ast::RunbookItem::Metadata(m) => (metadata_rank(m), self.metadata(m)),
                ast::RunbookItem::Budget(f) => (3, self.token_field(f)),
                ast::RunbookItem::Import(i) => (10, self.import(i)),
                ast::RunbookItem::Param(p) => (11, self.param(p)),
                ast::RunbookItem::Secret(s) => (12, self.secret(s)),
                ast::RunbookItem::Mcp(s) => (13, self.mcp_server(s)),
                ast::RunbookItem::Agent(a) => (14, self.agent(a)),
                ast::RunbookItem::Phase(p) => (15, self.phase(p)),
                ast::RunbookItem::Rollback(b) => (16, self.rollback(b)),
            })
            .collect();
        items.sort_by_key(|(rank, _)| *rank);
        let head = vec![Piece::Text("runbook".into()), self.text(r.name.span)];
        let mut item = Item::new(r.span, head);
        item.block = self.block(
            r.name.span.end,
            r.span,
            items.into_iter().map(|(_, i)| i).collect(),
        );
        item
    }

    fn policy(&self, p: &ast::Policy) -> Item {
        let mut item = Item::new(p.span, vec![Piece::Text("policy".into())]);
        let header_end = p.span.start + "policy".len() as u32;
        item.block = self.block(header_end, p.span, self.agent_fields(&p.fields));
        item
    }

    fn metadata(&self, m: &ast::Metadata) -> Item {
        Item::field(
            m.key.span.join(m.value.span),
            &m.key.name,
            vec![self.text(m.value.span)],
        )
    }

    fn import(&self, i: &ast::Import) -> Item {
        let mut head = vec![Piece::Text("import".into()), self.text(i.path.span)];
        let mut end = i.path.span.end;
        if let Some(alias) = &i.alias {
            head.push(Piece::Text("as".into()));
            head.push(self.text(alias.span));
            end = alias.span.end;
        }
        // pest's span of a rule that ends in an optional part runs over the whitespace
        // and comments skipped while trying it: end at the last token instead.
        Item::new(
            Span {
                start: i.span.start,
                end,
            },
            head,
        )
    }

    fn param(&self, p: &ast::Param) -> Item {
        let end = [
            Some(p.ty.span.end),
            p.default.as_ref().map(|d| d.span().end),
            p.help.as_ref().map(|h| h.span.end),
        ]
        .into_iter()
        .flatten()
        .max()
        .unwrap_or(p.span.end);
        let span = Span {
            start: p.span.start,
            end,
        };
        let mut head = vec![
            Piece::Text("param".into()),
            Piece::Text(format!("{}:", p.name.name)),
            self.text(p.ty.span),
        ];
        let mut flat = true;
        if let Some(default) = &p.default {
            head.push(Piece::Text("=".into()));
            let piece = self.literal_piece(default);
            flat = match &piece {
                Piece::Text(t) => !t.contains('\n'),
                Piece::List(_) => self.flat_text(default).is_some(),
            };
            head.push(piece);
        }
        let Some(help) = &p.help else {
            return Item::new(span, head);
        };
        if !flat {
            head.push(self.text(help.span));
            return Item::new(span, head);
        }
        // `param NAME: TYPE = DEFAULT` is the key, so that help texts align.
        let mut key: Vec<String> = Vec::new();
        for piece in &head {
            match piece {
                Piece::Text(t) => key.push(t.clone()),
                Piece::List(_) => key.push(
                    p.default
                        .as_ref()
                        .and_then(|d| self.flat_text(d))
                        .unwrap_or_default(),
                ),
            }
        }
        Item {
            span,
            key: Some(key.join(" ")),
            class: AlignClass::Param,
            head: vec![self.text(help.span)],
            ..Item::default()
        }
    }

    /// A literal on one line, when it has no comment or line break inside.
    fn flat_text(&self, literal: &Literal) -> Option<String> {
        let span = literal.span();
        let commented = self
            .comments
            .iter()
            .any(|c| span.start <= c.start && c.end <= span.end);
        match literal {
            _ if commented => None,
            Literal::List(list) => {
                let items: Option<Vec<String>> =
                    list.items.iter().map(|i| self.flat_text(i)).collect();
                Some(format!("[{}]", items?.join(", ")))
            }
            other => {
                let text = self.raw(other.span());
                (!text.contains('\n')).then_some(text)
            }
        }
    }

    fn secret(&self, s: &ast::Secret) -> Item {
        // The AST keeps only the name's span; the keyword is the last `secret` before it.
        let start = self.source[..s.name.span.start as usize]
            .rfind("secret")
            .unwrap_or(s.name.span.start as usize);
        Item::new(
            Span::new(start, s.name.span.end as usize),
            vec![Piece::Text("secret".into()), self.text(s.name.span)],
        )
    }

    fn agent(&self, a: &ast::Agent) -> Item {
        let mut head = vec![Piece::Text("agent".into()), self.text(a.name.span)];
        let mut header_end = a.name.span.end;
        if let Some(uses) = &a.uses {
            head.push(Piece::Text("uses".into()));
            head.push(self.text(uses.span));
            header_end = uses.span.end;
        }
        let block = self.block(header_end, a.span, self.agent_fields(&a.fields));
        let end = if block.is_some() {
            a.span.end
        } else {
            header_end
        };
        let mut item = Item::new(Span::new(a.span.start as usize, end as usize), head);
        item.block = block;
        item
    }

    /// `mcp NAME { … }`.
    fn mcp_server(&self, m: &ast::McpServer) -> Item {
        let head = vec![Piece::Text("mcp".into()), self.text(m.name.span)];
        let mut item = Item::new(m.span, head);
        item.block = self.block(m.name.span.end, m.span, self.agent_fields(&m.fields));
        item
    }

    /// `KEY VALUE` where the value is one token (`budget 10.00`).
    fn token_field(&self, f: &ast::Field<ast::Token>) -> Item {
        Item::field(
            f.key.span.join(f.value.span),
            &f.key.name,
            vec![self.text(f.value.span)],
        )
    }

    fn agent_fields(&self, fields: &[ast::AgentField]) -> Vec<Item> {
        let mut items: Vec<(u8, Item)> = fields
            .iter()
            .map(|f| {
                let key = f.key();
                let (rank, value, end) = match f {
                    ast::AgentField::Metadata(m) => {
                        (metadata_rank(m), self.text(m.value.span), m.value.span.end)
                    }
                    ast::AgentField::Kind(f) => (10, self.text(f.value.span), f.value.span.end),
                    ast::AgentField::Run(f) => (11, self.text(f.value.span), f.value.span.end),
                    ast::AgentField::Model(f) => (12, self.text(f.value.span), f.value.span.end),
                    ast::AgentField::MaxTurns(f) => (13, self.text(f.value.span), f.value.span.end),
                    ast::AgentField::Budget(f) => (14, self.text(f.value.span), f.value.span.end),
                    ast::AgentField::Read(f) => (15, self.list(&f.value), f.value.span.end),
                    ast::AgentField::Write(f) => (16, self.list(&f.value), f.value.span.end),
                    ast::AgentField::Exec(f) => (17, self.list(&f.value), f.value.span.end),
                    ast::AgentField::Network(f) => match &f.value {
                        ast::Network::Mode(_, span) => (18, self.text(*span), span.end),
                        ast::Network::Hosts(list) => (18, self.list(list), list.span.end),
                    },
                    ast::AgentField::Mcp(f) => (19, self.list(&f.value), f.value.span.end),
                    ast::AgentField::Env(f) => (20, self.list(&f.value), f.value.span.end),
                    ast::AgentField::Timeout(f) => (21, self.text(f.value.span), f.value.span.end),
                };
                let span = Span {
                    start: key.span.start,
                    end,
                };
                (rank, Item::field(span, &key.name, vec![value]))
            })
            .collect();
        items.sort_by_key(|(rank, _)| *rank);
        items.into_iter().map(|(_, i)| i).collect()
    }

    fn phase(&self, p: &ast::Phase) -> Item {
        let mut head = vec![Piece::Text("phase".into()), self.text(p.name.span)];
        let mut header_end = p.name.span.end;
        if let Some(title) = &p.title {
            head.push(self.text(title.span));
            header_end = title.span.end;
        }
        if let Some(after) = &p.after {
            header_end = self.push_after(&mut head, after).max(header_end);
        }
        let mut items: Vec<(u8, Item)> = p
            .items
            .iter()
            .map(|item| match item {
                ast::PhaseItem::Metadata(m) => (metadata_rank(m), self.metadata(m)),
                ast::PhaseItem::Estimate(f) => (
                    10,
                    Item::field(
                        f.key.span.join(f.value.span),
                        &f.key.name,
                        vec![self.text(f.value.span)],
                    ),
                ),
                // Steps and checkpoints keep their order: a checkpoint is a barrier at
                // its place in the text.
                ast::PhaseItem::Step(s) => (11, self.step(s)),
                ast::PhaseItem::Checkpoint(c) => (11, self.checkpoint(c)),
                ast::PhaseItem::Rollback(b) => (12, self.rollback(b)),
            })
            .collect();
        items.sort_by_key(|(rank, _)| *rank);
        let mut item = Item::new(p.span, head);
        item.block = self.block(
            header_end,
            p.span,
            items.into_iter().map(|(_, i)| i).collect(),
        );
        item
    }

    /// Appends `after a, b` and returns where the last name ends.
    fn push_after(&self, head: &mut Vec<Piece>, after: &[ast::Ident]) -> u32 {
        head.push(Piece::Text("after".into()));
        let names: Vec<&str> = after.iter().map(|i| i.name.as_str()).collect();
        head.push(Piece::Text(names.join(", ")));
        let end = after.iter().map(|i| i.span.end).max().unwrap_or(0);
        // Past a trailing comma (`after a, b, {`): stopping before it, `block` found
        // `,` instead of `{` and the whole block was dropped from the output (found by
        // tests/grammar_proptest.rs).
        let next = self.significant(end as usize);
        if self.source.as_bytes().get(next) == Some(&b',') {
            next as u32 + 1
        } else {
            end
        }
    }

    fn step(&self, s: &ast::Step) -> Item {
        let mut head = vec![Piece::Text("step".into()), self.text(s.name.span)];
        let mut header_end = s.name.span.end;
        if let Some(title) = &s.title {
            head.push(self.text(title.span));
            header_end = title.span.end;
        }
        if let Some(by) = &s.by {
            head.push(Piece::Text("by".into()));
            head.push(self.text(by.span));
            header_end = header_end.max(by.span.end);
        }
        if let Some(after) = &s.after {
            header_end = self.push_after(&mut head, after).max(header_end);
        }
        let mut items: Vec<(u8, Item)> = s.fields.iter().map(|f| self.step_field(f)).collect();
        items.sort_by_key(|(rank, _)| *rank);
        let mut item = Item::new(s.span, head);
        item.block = self.block(
            header_end,
            s.span,
            items.into_iter().map(|(_, i)| i).collect(),
        );
        item
    }

    fn step_field(&self, field: &ast::StepField) -> (u8, Item) {
        let simple = |key: &ast::Ident, value: Span| {
            Item::field(key.span.join(value), &key.name, vec![self.text(value)])
        };
        match field {
            ast::StepField::Metadata(m) => (metadata_rank(m), self.metadata(m)),
            ast::StepField::When(f) => (10, simple(&f.key, f.value.span)),
            ast::StepField::Prompt(f) => match &f.value {
                ast::PromptSource::Inline(s) => (11, simple(&f.key, s.span)),
                ast::PromptSource::File(s) => {
                    let close = self.significant(s.span.end as usize) + 1;
                    let span = Span::new(f.key.span.start as usize, close);
                    let text = format!("file({})", self.raw(s.span));
                    (11, Item::field(span, "prompt", vec![Piece::Text(text)]))
                }
            },
            ast::StepField::Sh(f) => (12, self.strings_field(&f.key, &f.value)),
            ast::StepField::Produces(f) => (13, self.strings_field(&f.key, &f.value)),
            ast::StepField::Until(f) => {
                let mut head = vec![self.text(f.value.command.span)];
                let mut end = f.value.command.span.end;
                if let Some(attempts) = &f.value.attempts {
                    head.push(Piece::Text("attempts".into()));
                    head.push(self.text(attempts.span));
                    end = attempts.span.end;
                }
                let span = Span {
                    start: f.key.span.start,
                    end,
                };
                (14, Item::field(span, "until", head))
            }
            ast::StepField::Timeout(f) => (15, simple(&f.key, f.value.span)),
            ast::StepField::OnFailure(f) => (16, simple(&f.key, f.value.span)),
            ast::StepField::Rollback(b) => (17, self.rollback(b)),
        }
    }

    /// `sh` and `produces`: one string, or a list of them.
    fn strings_field(&self, key: &ast::Ident, values: &[ast::Str]) -> Item {
        let open = self.significant(key.span.end as usize);
        let bracketed = self.source.as_bytes().get(open) == Some(&b'[');
        if !bracketed {
            let value = values.first().map_or(key.span, |s| s.span);
            return Item::field(key.span.join(value), &key.name, vec![self.text(value)]);
        }
        let last = values.last().map_or(open + 1, |s| s.span.end as usize);
        let close = self.find_closing(last, b']');
        let items = values
            .iter()
            .map(|s| Item::new(s.span, vec![self.text(s.span)]))
            .collect();
        let list = Container {
            open: open as u32,
            close: close as u32,
            items,
            ..Container::default()
        };
        let span = Span::new(key.span.start as usize, close + 1);
        Item::field(span, &key.name, vec![Piece::List(list)])
    }

    /// The offset of `bracket` at or after `from`, past optional `,` and comments.
    fn find_closing(&self, mut from: usize, bracket: u8) -> usize {
        loop {
            let at = self.significant(from);
            match self.source.as_bytes().get(at) {
                Some(b',') => from = at + 1,
                Some(b) if *b == bracket => return at,
                _ => return at,
            }
        }
    }

    fn checkpoint(&self, c: &ast::Checkpoint) -> Item {
        let mut head = vec![Piece::Text("checkpoint".into()), self.text(c.name.span)];
        let mut header_end = c.name.span.end;
        if let Some(title) = &c.title {
            head.push(self.text(title.span));
            header_end = title.span.end;
        }
        if let Some(after) = &c.after {
            header_end = self.push_after(&mut head, after).max(header_end);
        }
        let mut items: Vec<(u8, Item)> = c
            .fields
            .iter()
            .map(|f| match f {
                ast::CheckpointField::Metadata(m) => (metadata_rank(m), self.metadata(m)),
                ast::CheckpointField::Show(f) => (10, self.show(&f.key, &f.value)),
                ast::CheckpointField::Ask(f) => (
                    11,
                    Item::field(
                        f.key.span.join(f.value.span),
                        "ask",
                        vec![self.text(f.value.span)],
                    ),
                ),
                ast::CheckpointField::Revise(f) => (
                    12,
                    Item::field(
                        f.key.span.join(f.value.span),
                        "revise",
                        vec![self.text(f.value.span)],
                    ),
                ),
                ast::CheckpointField::Approvers(f) => (
                    13,
                    Item::field(
                        f.key.span.join(f.value.span),
                        "approvers",
                        vec![self.list(&f.value)],
                    ),
                ),
                ast::CheckpointField::Timeout(f) => (
                    14,
                    Item::field(
                        f.key.span.join(f.value.span),
                        "timeout",
                        vec![self.text(f.value.span)],
                    ),
                ),
            })
            .collect();
        items.sort_by_key(|(rank, _)| *rank);
        let mut item = Item::new(c.span, head);
        item.block = self.block(
            header_end,
            c.span,
            items.into_iter().map(|(_, i)| i).collect(),
        );
        item
    }

    fn show(&self, key: &ast::Ident, values: &[ast::ShowItem]) -> Item {
        let span_of = |s: &ast::ShowItem| match s {
            ast::ShowItem::Path(s) => s.span,
            ast::ShowItem::Diff(span) => *span,
            ast::ShowItem::Reference(i) => i.span,
        };
        let open = self.significant(key.span.end as usize);
        let bracketed = self.source.as_bytes().get(open) == Some(&b'[');
        if !bracketed {
            let value = values.first().map_or(key.span, span_of);
            return Item::field(key.span.join(value), "show", vec![self.text(value)]);
        }
        let last = values.last().map_or(open + 1, |s| span_of(s).end as usize);
        let close = self.find_closing(last, b']');
        let items = values
            .iter()
            .map(|s| Item::new(span_of(s), vec![self.text(span_of(s))]))
            .collect();
        let list = Container {
            open: open as u32,
            close: close as u32,
            items,
            ..Container::default()
        };
        Item::field(
            Span::new(key.span.start as usize, close + 1),
            "show",
            vec![Piece::List(list)],
        )
    }

    fn rollback(&self, b: &ast::Rollback) -> Item {
        // The AST merges every `sh` of the block into one list: print one `sh` per
        // command, which lowers to the same list.
        let mut items: Vec<Item> =
            b.sh.iter()
                .map(|s| {
                    let span = Span {
                        start: self.sh_start(s.span.start),
                        end: s.span.end,
                    };
                    Item::field(span, "sh", vec![self.text(s.span)])
                })
                .collect();
        if let Some(t) = &b.timeout {
            // The AST keeps only the value: the item starts at its keyword, or a blank
            // line between the two counted as one before the field, and formatting was
            // not idempotent (found by tests/grammar_proptest.rs).
            let start = self
                .previous_token_end(t.span.start as usize)
                .saturating_sub("timeout".len());
            let span = Span::new(start, t.span.end as usize);
            items.push(Item::field(span, "timeout", vec![self.text(t.span)]));
        }
        let mut item = Item::new(b.span, vec![Piece::Text("rollback".into())]);
        item.block = self.block(b.key.span.end, b.span, items);
        item
    }

    /// Where the `sh` that introduces a rollback command starts: the keyword before it
    /// (or before its `[`), or the command itself when it continues a list.
    fn sh_start(&self, command: u32) -> u32 {
        let before = self.previous_token_end(command as usize);
        let keyword_end = match self.source.as_bytes().get(before.wrapping_sub(1)) {
            Some(b'[') => self.previous_token_end(before - 1),
            Some(b',') => return command,
            _ => before,
        };
        keyword_end.saturating_sub("sh".len()) as u32
    }

    /// The end of the last token before `offset`, skipping whitespace and comments.
    fn previous_token_end(&self, mut offset: usize) -> usize {
        loop {
            // The grammar's WHITESPACE, byte-order mark included: stopping after a BOM
            // gave an offset that `sh_start` moved back into it, and slicing there
            // panicked (found by tests/grammar_proptest.rs).
            let trimmed =
                self.source[..offset].trim_end_matches([' ', '\t', '\r', '\n', '\u{FEFF}']);
            offset = trimmed.len();
            match self
                .comments
                .binary_search_by_key(&(offset as u32), |c| c.end)
            {
                Ok(i) => offset = self.comments[i].start as usize,
                Err(_) => return offset,
            }
        }
    }

    fn list(&self, list: &ast::List) -> Piece {
        Piece::List(Container {
            open: list.span.start,
            close: list.span.end - 1,
            items: list
                .items
                .iter()
                .map(|l| Item::new(l.span(), vec![self.literal_piece(l)]))
                .collect(),
            ..Container::default()
        })
    }

    fn literal_piece(&self, literal: &Literal) -> Piece {
        match literal {
            Literal::List(l) => self.list(l),
            other => self.text(other.span()),
        }
    }
}

/// `title` before `version` before `description`.
fn metadata_rank(m: &ast::Metadata) -> u8 {
    match m.key.name.as_str() {
        "title" => 0,
        "version" => 1,
        _ => 2,
    }
}
