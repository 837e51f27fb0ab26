//! Estimates: a duration as written and in seconds, and how a plan spells it out.

use crate::ir::value::DurationValue;
use serde::Serialize;

/// A phase's estimate or a total.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Estimate {
    /// As written (`4h`), or the short form of a sum (`4h30m`).
    pub text: String,
    /// Whole seconds.
    pub seconds: u64,
}

impl Estimate {
    /// The estimate a phase declares.
    pub fn of(duration: &DurationValue) -> Estimate {
        Estimate {
            text: duration.text.clone(),
            seconds: duration.duration.as_secs(),
        }
    }

    /// An estimate of `seconds`, written in the language's short form.
    pub fn from_seconds(seconds: u64) -> Estimate {
        let mut text = String::new();
        let mut rest = seconds;
        for (unit, size) in UNITS {
            let n = rest / size;
            rest %= size;
            if n > 0 {
                text.push_str(&format!("{n}{}", unit.short));
            }
        }
        if text.is_empty() {
            text.push_str("0s");
        }
        Estimate { text, seconds }
    }

    /// In words: `4 hours 30 minutes`.
    pub fn words(&self) -> String {
        let mut parts = Vec::new();
        let mut rest = self.seconds;
        for (unit, size) in UNITS {
            let n = rest / size;
            rest %= size;
            if n > 0 {
                let plural = if n == 1 { "" } else { "s" };
                parts.push(format!("{n} {}{plural}", unit.word));
            }
        }
        if parts.is_empty() {
            return "less than a second".into();
        }
        parts.join(" ")
    }
}

struct Unit {
    short: &'static str,
    word: &'static str,
}

const UNITS: &[(Unit, u64)] = &[
    (
        Unit {
            short: "d",
            word: "day",
        },
        86_400,
    ),
    (
        Unit {
            short: "h",
            word: "hour",
        },
        3_600,
    ),
    (
        Unit {
            short: "m",
            word: "minute",
        },
        60,
    ),
    (
        Unit {
            short: "s",
            word: "second",
        },
        1,
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_short_form() {
        let e = Estimate::from_seconds(4 * 3600 + 30 * 60);
        assert_eq!(e.text, "4h30m");
        assert_eq!(e.words(), "4 hours 30 minutes");
        assert_eq!(
            Estimate::from_seconds(86_400 + 60).words(),
            "1 day 1 minute"
        );
        assert_eq!(Estimate::from_seconds(40 * 86_400).text, "40d");
        assert_eq!(Estimate::from_seconds(0).text, "0s");
    }
}
