//! The template dialect of the language: minijinja with strict undefined, plus the
//! filters the language adds. `check` compiles templates with it and `run` renders them
//! with it, so that both accept the same filters.

use minijinja::value::{Value, ValueKind};
use minijinja::{Environment, Error, ErrorKind, UndefinedBehavior};

/// The filters the language adds to minijinja's own.
pub const FILTERS: [&str; 1] = ["shell_quote"];

/// A minijinja environment with strict undefined and the language's filters.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_filter("shell_quote", shell_quote_filter);
    env
}

/// `shell_quote`: a value as one word of a POSIX shell command line (a list as one word
/// per item, separated by spaces), whatever characters it holds.
fn shell_quote_filter(value: Value) -> Result<String, Error> {
    match value.kind() {
        ValueKind::Seq | ValueKind::Iterable => {
            let items = value.try_iter()?;
            Ok(items
                .map(|item| shell_quote(&word(&item)))
                .collect::<Vec<_>>()
                .join(" "))
        }
        ValueKind::Map | ValueKind::Plain | ValueKind::Invalid => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "shell_quote takes a string, a number or a list, not {}",
                value.kind()
            ),
        )),
        _ => Ok(shell_quote(&word(&value))),
    }
}

/// How a value prints in a template (booleans as the language writes them).
fn word(value: &Value) -> String {
    if value.kind() == ValueKind::Bool {
        return if value.is_true() { "true" } else { "false" }.to_string();
    }
    if value.kind() == ValueKind::None {
        return String::new();
    }
    value.to_string()
}

/// `text` single-quoted for a POSIX shell: each `'` becomes `'\''`.
pub fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(template: &str, ctx: Value) -> Result<String, Error> {
        let env = environment();
        env.render_str(template, ctx)
    }

    #[test]
    fn quotes_strings_numbers_and_lists_for_the_shell() {
        let ctx = minijinja::context! {
            text => "it's $(rm -rf ~); `x` \"y\" \\ \n z",
            empty => "",
            n => 3,
            flag => true,
            files => vec!["a b.txt", "c'd"],
        };
        assert_eq!(
            render("{{ text | shell_quote }}", ctx.clone()).unwrap(),
            "'it'\\''s $(rm -rf ~); `x` \"y\" \\ \n z'"
        );
        assert_eq!(
            render("{{ empty | shell_quote }}", ctx.clone()).unwrap(),
            "''"
        );
        assert_eq!(render("{{ n | shell_quote }}", ctx.clone()).unwrap(), "'3'");
        assert_eq!(
            render("{{ flag | shell_quote }}", ctx.clone()).unwrap(),
            "'true'"
        );
        assert_eq!(
            render("{{ files | shell_quote }}", ctx.clone()).unwrap(),
            "'a b.txt' 'c'\\''d'"
        );
        let err = render("{{ {'a': 1} | shell_quote }}", ctx).unwrap_err();
        assert!(err.to_string().contains("not map"), "{err}");
    }

    #[test]
    fn a_quoted_value_is_one_word_to_sh() {
        let hostile = "a'b; touch /tmp/runbook-never-created; echo 'c";
        let line = format!("printf %s {}", shell_quote(hostile));
        let out = std::process::Command::new("/bin/sh")
            .args(["-c", &line])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), hostile);
    }
}
