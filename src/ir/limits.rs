//! The values of an agent's limits (`max_turns`, `budget`, `model`) and the runbook's
//! `budget`: what a written token means, or what is wrong with it. Pure, so that the
//! rules are tested here and the lowering only turns a problem into a diagnostic.

/// What is wrong with a written limit: the message, the label and the help line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The diagnostic's message.
    pub message: String,
    /// The primary label.
    pub label: &'static str,
    /// What to write instead.
    pub help: String,
}

fn problem(message: String, label: &'static str, help: &str) -> Problem {
    Problem {
        message,
        label,
        help: help.to_string(),
    }
}

/// `max_turns N`: a whole number of at least 1.
pub fn max_turns(text: &str) -> Result<u32, Problem> {
    const HELP: &str = "write a whole number of model turns, 1 or more, e.g. `max_turns 20`";
    match text.parse::<u32>() {
        Ok(0) => Err(problem(
            "`max_turns 0` allows no turn at all".into(),
            "zero turns",
            HELP,
        )),
        Ok(n) => Ok(n),
        Err(_) => Err(problem(
            format!("`max_turns {text}` is not a number of turns"),
            "not a whole number",
            HELP,
        )),
    }
}

/// `budget AMOUNT`: US dollars, more than zero, with at most two decimals (cents).
pub fn budget(text: &str) -> Result<f64, Problem> {
    const HELP: &str =
        "write US dollars without a currency sign, with at most two decimals, e.g. `budget 2.50`";
    let (whole, cents) = match text.split_once('.') {
        Some((w, c)) => (w, Some(c)),
        None => (text, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = digits(whole) && cents.map_or(true, digits);
    if !well_formed {
        let message = if text.starts_with('-') {
            format!("a budget of `{text}` is negative")
        } else {
            format!("`{text}` is not an amount of US dollars")
        };
        return Err(problem(message, "not an amount", HELP));
    }
    if cents.is_some_and(|c| c.len() > 2) {
        return Err(problem(
            format!("a budget of `{text}` has more than two decimals"),
            "finer than a cent",
            HELP,
        ));
    }
    let value: f64 = text.parse().map_err(|_| {
        problem(
            format!("`{text}` is not an amount of US dollars"),
            "not an amount",
            HELP,
        )
    })?;
    if value <= 0.0 || !value.is_finite() {
        return Err(problem(
            format!("a budget of `{text}` allows nothing to run"),
            "zero",
            "write an amount above zero, e.g. `budget 2.50`, or leave out `budget`",
        ));
    }
    Ok(value)
}

/// `model "…"`: a name the tool gets as one command-line argument.
pub fn model(value: &str) -> Result<(), Problem> {
    if value.trim().is_empty() {
        return Err(problem(
            "`model` is empty".into(),
            "no model name",
            "write the model's name, e.g. `model \"claude-sonnet-4-5\"`, or leave out `model`",
        ));
    }
    if value.starts_with('-') {
        return Err(problem(
            format!("model `{value}` starts with `-`, so the tool would read it as an option"),
            "looks like a flag",
            "write only the model's name; the interpreter passes it with the tool's own model flag",
        ));
    }
    Ok(())
}

/// A budget as the language and the plan write it: dollars and cents.
pub fn dollars(value: f64) -> String {
    format!("{value:.2}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets() {
        assert_eq!(budget("2.50"), Ok(2.5));
        assert_eq!(budget("10"), Ok(10.0));
        assert_eq!(budget("0.01"), Ok(0.01));
        assert_eq!(budget("1.5"), Ok(1.5));
        for bad in ["0", "0.00", "-1", "2.505", "30m", "1.", ".5", "1e3", "2.5x"] {
            assert!(budget(bad).is_err(), "{bad}");
        }
        assert!(budget("-1").unwrap_err().message.contains("negative"));
        assert!(budget("2.505")
            .unwrap_err()
            .message
            .contains("two decimals"));
    }

    #[test]
    fn turns() {
        assert_eq!(max_turns("1"), Ok(1));
        assert_eq!(max_turns("40"), Ok(40));
        for bad in ["0", "-3", "2.5", "10m", "99999999999"] {
            assert!(max_turns(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn models() {
        assert!(model("gpt-5-codex").is_ok());
        assert!(model("").is_err());
        assert!(model("  ").is_err());
        assert!(model("--dangerously-skip-permissions").is_err());
    }

    #[test]
    fn dollars_have_cents() {
        assert_eq!(dollars(2.5), "2.50");
        assert_eq!(dollars(10.0), "10.00");
    }
}
