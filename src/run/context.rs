//! The template context (`params`, `steps`, `run`, `attempt`, `feedback`, `runbook`)
//! and rendering with strict undefined.

use crate::ir::Template;
use serde::Serialize;
use std::collections::BTreeMap;

/// How much of a step's stdout templates see.
pub const OUTPUT_CAP: usize = 64 * 1024;

/// What templates see of a step.
#[derive(Debug, Clone, Serialize, Default)]
pub struct StepView {
    /// Its stdout (capped, trimmed).
    pub output: String,
    /// Paths it changed.
    pub files: Vec<String>,
    /// `pending`, `succeeded`, `failed`, `skipped`…
    pub status: String,
}

#[derive(Serialize)]
struct RunView<'a> {
    id: &'a str,
    dir: &'a str,
}

#[derive(Serialize)]
struct RunbookView<'a> {
    name: &'a str,
    version: &'a str,
    title: &'a str,
}

#[derive(Serialize)]
struct Root<'a> {
    params: &'a serde_json::Value,
    steps: &'a BTreeMap<String, StepView>,
    run: RunView<'a>,
    runbook: RunbookView<'a>,
    attempt: u32,
    feedback: &'a str,
}

/// The fixed parts of the context for one run.
#[derive(Debug, Clone)]
pub struct Context {
    /// Parameter values.
    pub params: serde_json::Value,
    /// The run id.
    pub run_id: String,
    /// The run directory.
    pub run_dir: String,
    /// The runbook's name.
    pub name: String,
    /// Its version.
    pub version: String,
    /// Its title.
    pub title: String,
}

/// Renders templates with strict undefined.
pub struct Renderer {
    env: minijinja::Environment<'static>,
}

impl Default for Renderer {
    fn default() -> Self {
        let mut env = crate::ir::jinja::environment();
        // Prompts are text, not HTML.
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.set_keep_trailing_newline(true);
        // Booleans print as the language writes them (`true`), not as Jinja's `True`,
        // so that `test {{ params.flag }} = true` works in a shell line.
        env.set_formatter(|out, state, value| {
            if value.kind() == minijinja::value::ValueKind::Bool {
                return out
                    .write_str(if value.is_true() { "true" } else { "false" })
                    .map_err(Into::into);
            }
            minijinja::escape_formatter(out, state, value)
        });
        Renderer { env }
    }
}

impl Renderer {
    fn value(
        context: &Context,
        steps: &BTreeMap<String, StepView>,
        attempt: u32,
        feedback: &str,
    ) -> minijinja::Value {
        minijinja::Value::from_serialize(Root {
            params: &context.params,
            steps,
            run: RunView {
                id: &context.run_id,
                dir: &context.run_dir,
            },
            runbook: RunbookView {
                name: &context.name,
                version: &context.version,
                title: &context.title,
            },
            attempt,
            feedback,
        })
    }

    /// Renders a template.
    pub fn render(
        &self,
        template: &Template,
        context: &Context,
        steps: &BTreeMap<String, StepView>,
        attempt: u32,
        feedback: &str,
    ) -> Result<String, String> {
        if template.is_static() {
            return Ok(template.text.clone());
        }
        let value = Self::value(context, steps, attempt, feedback);
        self.env
            .render_str(&template.text, value)
            .map_err(|e| describe(&e))
    }

    /// Evaluates a `when` condition.
    pub fn condition(
        &self,
        template: &Template,
        context: &Context,
        steps: &BTreeMap<String, StepView>,
    ) -> Result<bool, String> {
        let value = Self::value(context, steps, 1, "");
        if template.expression {
            let expr = self
                .env
                .compile_expression(&template.text)
                .map_err(|e| describe(&e))?;
            return expr
                .eval(value)
                .map(|v| v.is_true())
                .map_err(|e| describe(&e));
        }
        let text = self
            .env
            .render_str(&template.text, value)
            .map_err(|e| describe(&e))?;
        Ok(!matches!(
            text.trim().to_ascii_lowercase().as_str(),
            "" | "false" | "0" | "no" | "off" | "none"
        ))
    }
}

fn describe(e: &minijinja::Error) -> String {
    match e.detail() {
        Some(d) => format!("{}: {d}", e.kind()),
        None => e.kind().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn template(text: &str) -> Template {
        Template {
            text: text.into(),
            file: crate::syntax::source::FileId(0),
            offsets: Default::default(),
            location: crate::syntax::source::Location {
                file: crate::syntax::source::FileId(0),
                span: Default::default(),
            },
            expression: false,
        }
    }

    fn context() -> Context {
        Context {
            params: serde_json::json!({"flag": false, "name": "x", "items": ["a", "b"]}),
            run_id: "RUN".into(),
            run_dir: "/tmp/run".into(),
            name: "demo".into(),
            version: "1".into(),
            title: "".into(),
        }
    }

    #[test]
    fn booleans_render_lowercase() {
        let r = Renderer::default();
        let out = r
            .render(
                &template("test {{ params.flag }} = false"),
                &context(),
                &BTreeMap::new(),
                1,
                "",
            )
            .unwrap();
        assert_eq!(out, "test false = false");
    }

    #[test]
    fn strict_undefined_is_an_error() {
        let r = Renderer::default();
        let err = r
            .render(
                &template("{{ params.nope }}"),
                &context(),
                &BTreeMap::new(),
                1,
                "",
            )
            .unwrap_err();
        assert!(err.contains("undefined"), "{err}");
    }

    #[test]
    fn text_is_not_html_escaped() {
        let r = Renderer::default();
        let mut steps = BTreeMap::new();
        steps.insert(
            "a".to_string(),
            StepView {
                output: "<b>&\"".into(),
                files: vec![],
                status: "succeeded".into(),
            },
        );
        let out = r
            .render(
                &template("{{ steps.a.output }} {{ attempt }} {{ feedback }}"),
                &context(),
                &steps,
                2,
                "fix it",
            )
            .unwrap();
        assert_eq!(out, "<b>&\" 2 fix it");
    }
}
